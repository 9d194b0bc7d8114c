package main

import (
	"io"
	"testing"

	"github.com/zos-go/zos/internal/natsd"
)

func TestParseStoreReserve(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"auto", 0, true},
		{"0", natsd.NoReserve, true},
		{"0MiB", natsd.NoReserve, true},
		{"1048576", 1 << 20, true},
		{"512KiB", 512 << 10, true},
		{"64MiB", 64 << 20, true},
		{"2GiB", 2 << 30, true},
		{"", 0, false},
		{"-1", 0, false},
		{"64MB", 0, false},
		{"MiB", 0, false},
		{"9999999999GiB", 0, false},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseReserve(tt.in)
			if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
				t.Fatalf("parseReserve(%q): got %d, %v, want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
	cfg, err := parseFlags([]string{"--data", "d", "--store-reserve", "8MiB"}, io.Discard)
	if err != nil || cfg.StoreReserve != 8<<20 {
		t.Fatalf("--store-reserve 8MiB: got %d, %v, want %d", cfg.StoreReserve, err, 8<<20)
	}
	if _, err := parseFlags([]string{"--data", "d", "--store-reserve", "lots"}, io.Discard); err == nil {
		t.Fatal("--store-reserve lots: got nil, want an error")
	}
}
