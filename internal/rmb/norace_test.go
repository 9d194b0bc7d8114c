//go:build !race

package rmb

const raceEnabled = false
