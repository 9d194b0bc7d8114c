// Package boot is zos as PID 1 of the Zero-OS image: it mounts the pseudo
// file systems, loads the kernel modules, sets the clock, brings up the NIC
// with a link by DHCP, reads its settings from the kernel command line,
// starts the node (as a child process it restarts when it dies), draws a
// read-only status console, reaps orphans and powers off cleanly. Kernel
// work goes through internal/sys/{pid1,kmod,netcfg,dhcp}; cmd/zos calls
// Init (PID 1) and RunNode (the node child).
package boot

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/zos-go/zos/internal/egress"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/release"
)

// Run modes (runmode=).
var runModes = map[string]bool{"dev": true, "qa": true, "test": true, "prod": true}

// Config is what the kernel command line (over the image's baked-in
// defaults) says. FarmToken (farm_token=) is the farmer's consent that
// the node joins the farm; without farm=, the token names the farm.
type Config struct {
	Farm      uint32
	FarmToken string
	Grid      string
	RunMode   string
	Debug     bool
	// UpdateHub (update_hub=http://HOST:PORT), UpdateRoot (update_root=:
	// sha256:HEX of the release root the hub serves as 1.root.json, or
	// the path of a root baked into the image) and UpdateChannel
	// (update_channel=, when the farm chose none) turn on self-update;
	// without a hub and a root the node runs the version it booted.
	UpdateHub     string
	UpdateRoot    string
	UpdateChannel string
	// UpdateEvery (update_every=, a Go duration: how often the channel
	// is checked) and UpdateGate (update_gate=: how long a new version
	// has to come up healthy) tune self-update; 0 takes the defaults.
	// Init holds a trial to UpdateGate too (update.GuardBound).
	UpdateEvery time.Duration
	UpdateGate  time.Duration
	// NewIdentity (new_identity) and RecreateMissingDisks
	// (recreate_missing_disks) are node.Config's recovery switches, so a
	// farmer recovers a booted node by booting it once with them.
	NewIdentity          bool
	RecreateMissingDisks bool
	// Location (location=COUNTRY[,CITY], quoted when a name has spaces)
	// is where the node stands; a location its farmer sets wins over it.
	Location string
	// EgressAllow (egress_allow=PREFIX[,PREFIX...]: prefixes, addresses,
	// "private" or "loopback") is node.Config's EgressAllow: private
	// addresses tenants' flists may still be read from (a farm's LAN hub,
	// a test grid's hub at the QEMU host). Kept as the validated words so
	// that Config stays comparable.
	EgressAllow string
}

// DefaultRunMode is the run mode without runmode=.
const DefaultRunMode = "prod"

// Validate reports what keeps the node from starting.
func (c Config) Validate() error {
	var errs []error
	if c.Farm == 0 {
		errs = append(errs, errors.New("no farm: boot with farm_token=TOKEN (zosctl farm token FARM, then zosctl image build --farm-token TOKEN)"))
	}
	if c.Grid == "" {
		errs = append(errs, errors.New("no grid: boot with grid=nats://HOST:PORT (zosctl image build --grid URL)"))
	}
	return errors.Join(errs...)
}

// SplitCmdline splits a kernel command line into words, honouring double
// quotes as the kernel does (`a="b c"` is one word).
func SplitCmdline(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, have := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			have = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}

// ParseCmdline reads defaults then the command line (later words win) into
// a Config. Invalid values are reported in the returned errors and
// ignored: a bad word never stops the boot.
func ParseCmdline(defaults, cmdline string) (Config, []error) {
	cfg := Config{RunMode: DefaultRunMode}
	var errs []error
	var tokenFarm uint32 // the farm of cfg.FarmToken
	for _, w := range append(SplitCmdline(defaults), SplitCmdline(cmdline)...) {
		k, v, hasValue := strings.Cut(w, "=")
		switch k {
		case "farm", "farmer_id":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || n == 0 {
				errs = append(errs, fmt.Errorf("kernel command line: %s=%q is not a farm id", k, v))
				continue
			}
			cfg.Farm = uint32(n)
			if cfg.FarmToken != "" && tokenFarm != cfg.Farm {
				errs = append(errs, fmt.Errorf("kernel command line: %s=%d: farm_token of farm %d ignored", k, n, tokenFarm))
				cfg.FarmToken = ""
			}
		case "farm_token":
			t, err := registry.ParseFarmToken(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("kernel command line: farm_token: %w", err))
				continue
			}
			// A token names its farm: it counts as farm= too.
			cfg.FarmToken, cfg.Farm, tokenFarm = v, t.FarmID, t.FarmID
		case "grid":
			if err := checkGrid(v); err != nil {
				errs = append(errs, fmt.Errorf("kernel command line: grid=%q: %w", v, err))
				continue
			}
			cfg.Grid = v
		case "runmode":
			if !runModes[v] {
				errs = append(errs, fmt.Errorf("kernel command line: runmode=%q is not dev, qa, test or prod", v))
				continue
			}
			cfg.RunMode = v
		case "zos-debug":
			cfg.Debug = flagOn(hasValue, v)
		case "location":
			if _, err := registry.ParseLocation(v); err != nil {
				errs = append(errs, fmt.Errorf("kernel command line: location=%q: %w", v, err))
				continue
			}
			cfg.Location = v
		case "egress_allow":
			if _, err := egress.ParseAllow(strings.Split(v, ",")); err != nil {
				errs = append(errs, fmt.Errorf("kernel command line: egress_allow=%q: %w", v, err))
				continue
			}
			cfg.EgressAllow = v
		case "new_identity":
			cfg.NewIdentity = flagOn(hasValue, v)
		case "recreate_missing_disks":
			cfg.RecreateMissingDisks = flagOn(hasValue, v)
		case "update_hub":
			if err := checkHub(v); err != nil {
				errs = append(errs, fmt.Errorf("kernel command line: update_hub=%q: %w", v, err))
				continue
			}
			cfg.UpdateHub = v
		case "update_root":
			if err := checkRoot(v); err != nil {
				errs = append(errs, fmt.Errorf("kernel command line: update_root=%q: %w", v, err))
				continue
			}
			cfg.UpdateRoot = v
		case "update_channel":
			if !release.ValidName(v) {
				errs = append(errs, fmt.Errorf("kernel command line: update_channel=%q is not a channel name", v))
				continue
			}
			cfg.UpdateChannel = v
		case "update_every", "update_gate":
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Second || d > 24*time.Hour {
				errs = append(errs, fmt.Errorf("kernel command line: %s=%q is not a duration from 1s to 24h", k, v))
				continue
			}
			if k == "update_every" {
				cfg.UpdateEvery = d
			} else {
				cfg.UpdateGate = d
			}
		}
	}
	return cfg, errs
}

// flagOn reads a switch: bare, =1 or =true turn it on, anything else off.
func flagOn(hasValue bool, v string) bool { return !hasValue || v == "1" || v == "true" }

// checkHub accepts an http(s) URL with a host and nothing after the port.
func checkHub(v string) error {
	u, err := url.Parse(v)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
	if u.Hostname() == "" {
		return errors.New("no host")
	}
	if strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return errors.New("want http(s)://HOST[:PORT] only")
	}
	return nil
}

// RootHashPrefix starts an update_root= that pins the hub's first root by
// its SHA-256.
const RootHashPrefix = "sha256:"

// checkRoot accepts sha256:HEX (64 hex digits) or an absolute path.
func checkRoot(v string) error {
	if h, ok := strings.CutPrefix(v, RootHashPrefix); ok {
		if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
			return errors.New("want sha256: and 64 hex digits")
		}
		return nil
	}
	if !strings.HasPrefix(v, "/") || strings.Contains(v, "..") {
		return errors.New("want sha256:HEX or the absolute path of a root.json in the image")
	}
	return nil
}

// checkGrid accepts NATS URLs, comma separated.
func checkGrid(v string) error {
	if v == "" {
		return errors.New("empty")
	}
	for _, u := range strings.Split(v, ",") {
		p, err := url.Parse(u)
		if err != nil {
			return err
		}
		if p.Scheme != "nats" && p.Scheme != "tls" {
			return fmt.Errorf("scheme %q is not nats or tls", p.Scheme)
		}
		if p.Hostname() == "" {
			return errors.New("no host")
		}
		if port := p.Port(); port != "" {
			if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
				return fmt.Errorf("bad port %q", port)
			}
		}
	}
	return nil
}
