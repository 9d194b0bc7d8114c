package release

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
)

// Rollout is a release's staged rollout, signed with it (targets custom
// metadata), so only the release managers' keys can widen, narrow or
// pause it: test farms first, then a share of the other nodes.
type Rollout struct {
	// Farms take the release whatever the share (the test farms).
	Farms []uint32 `json:"farms,omitempty"`
	// Percent of the other nodes take it (0-100), chosen by a hash of
	// the node and the version: the same nodes as the share grows.
	Percent int `json:"percent"`
	// Paused stops the release reaching any more nodes.
	Paused bool `json:"paused,omitempty"`
}

// Admits says whether the node of farm takes version under r. A release
// without a rollout (nil) goes to every node.
func (r *Rollout) Admits(farm, node uint32, version string) bool {
	if r == nil {
		return true
	}
	if r.Paused {
		return false
	}
	if slices.Contains(r.Farms, farm) {
		return true
	}
	return bucket(node, version) < r.Percent
}

// bucket places a node in 0-99 for a version.
func bucket(node uint32, version string) int {
	h := sha256.Sum256([]byte(strconv.FormatUint(uint64(node), 10) + "/" + version))
	return int(binary.BigEndian.Uint32(h[:4]) % 100)
}

// SetRollout sets (nil: clears) the rollout of channel/version; targets'
// version goes up and its signatures are cleared until Sign.
func (r *Repo) SetRollout(channel, version string, ro *Rollout) error {
	if ro != nil && (ro.Percent < 0 || ro.Percent > 100) {
		return fmt.Errorf("rollout percent %d out of 0-100", ro.Percent)
	}
	found := false
	for tp, tf := range r.targets.Signed.Targets {
		if path.Dir(tp) != path.Join(channel, version) {
			continue
		}
		custom, _ := json.Marshal(Custom{Version: version, Channel: channel, Rollout: ro})
		raw := json.RawMessage(custom)
		tf.Custom = &raw
		found = true
	}
	if !found {
		return errors.New("no such release " + path.Join(channel, version))
	}
	r.targets.Signed.Version++
	r.targets.Signed.Expires = r.cfg.Now().UTC().Add(r.cfg.TargetsExpiry)
	r.targets.ClearSignatures()
	return r.save()
}
