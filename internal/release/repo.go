// Package release makes, signs, publishes and checks Zero-OS releases with
// The Update Framework (go-tuf v2). A release is a set of artifacts (zos,
// vminit, optionally the boot kernel and initramfs) with a version and a
// channel ("production", "testing"), each artifact a TUF target
// CHANNEL/VERSION/NAME whose custom metadata names the version and channel.
// The four top-level roles (root, targets, snapshot, timestamp) carry keys,
// thresholds and expiry, so a node refuses unsigned, wrongly signed,
// expired, replayed-older and tampered releases.
//
// Release managers use Repo (zosctl release init|add|sign|publish) on a
// working directory; the grid's hub (internal/flist/hub) stores and serves
// what Publish uploads; nodes use Client (internal/node/update).
package release

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/zos-go/zos/internal/atomicfile"
)

// The roles of a repository.
var roles = []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP}

// Expiry of each role's metadata when signed (Config zero values).
const (
	DefaultRootExpiry      = 365 * 24 * time.Hour
	DefaultTargetsExpiry   = 90 * 24 * time.Hour
	DefaultSnapshotExpiry  = 7 * 24 * time.Hour
	DefaultTimestampExpiry = 24 * time.Hour
)

// Config of a repository's signing: expiry per role and the clock.
type Config struct {
	RootExpiry, TargetsExpiry, SnapshotExpiry, TimestampExpiry time.Duration
	Now                                                        func() time.Time
}

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.RootExpiry, DefaultRootExpiry)
	def(&c.TargetsExpiry, DefaultTargetsExpiry)
	def(&c.SnapshotExpiry, DefaultSnapshotExpiry)
	def(&c.TimestampExpiry, DefaultTimestampExpiry)
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Custom is a target's custom metadata: the release it belongs to.
type Custom struct {
	Version string   `json:"version"`
	Channel string   `json:"channel"`
	Rollout *Rollout `json:"rollout,omitempty"`
}

// InitOptions shape a new repository's keys.
type InitOptions struct {
	RootKeys, RootThreshold       int // keys made for root and how many must sign (1, 1 when 0)
	TargetsKeys, TargetsThreshold int // the same for targets (1, 1 when 0)
}

// Repo is a release manager's working directory:
//
//	DIR/keys/ROLE-N.key        ed25519 seeds, hex (0600); keep root's offline
//	DIR/metadata/N.root.json   every root version (clients walk them)
//	DIR/metadata/ROLE.json     the current targets, snapshot and timestamp
//	DIR/targets/CH/VER/NAME    the artifacts
type Repo struct {
	dir string
	cfg Config

	root      *metadata.Metadata[metadata.RootType]
	targets   *metadata.Metadata[metadata.TargetsType]
	snapshot  *metadata.Metadata[metadata.SnapshotType]
	timestamp *metadata.Metadata[metadata.TimestampType]
}

var (
	// ErrThreshold is returned when a role has fewer valid signatures than
	// its threshold.
	ErrThreshold = errors.New("not signed by enough keys")
	nameRe       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$`)
)

// ValidName says whether s may be a channel, a version or an artifact name.
func ValidName(s string) bool { return nameRe.MatchString(s) && !strings.Contains(s, "..") }

func (r *Repo) metaDir() string { return filepath.Join(r.dir, "metadata") }
func (r *Repo) keyDir() string  { return filepath.Join(r.dir, "keys") }

// Init makes a new repository in dir (which must not hold one): keys for
// every role, root signed by all its keys, empty targets, snapshot and
// timestamp signed.
func Init(dir string, opt InitOptions, cfg Config) (*Repo, error) {
	cfg.defaults()
	if opt.RootKeys <= 0 {
		opt.RootKeys = 1
	}
	if opt.TargetsKeys <= 0 {
		opt.TargetsKeys = 1
	}
	if opt.RootThreshold <= 0 {
		opt.RootThreshold = 1
	}
	if opt.TargetsThreshold <= 0 {
		opt.TargetsThreshold = 1
	}
	if opt.RootThreshold > opt.RootKeys || opt.TargetsThreshold > opt.TargetsKeys {
		return nil, errors.New("a threshold is over its number of keys")
	}
	if _, err := os.Stat(filepath.Join(dir, "metadata", "1.root.json")); err == nil {
		return nil, fmt.Errorf("%s already holds a release repository", dir)
	}
	r := &Repo{dir: dir, cfg: cfg}
	for _, d := range []string{r.keyDir(), r.metaDir(), filepath.Join(dir, "targets")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("creating %s: %w", d, err)
		}
	}
	now := cfg.Now().UTC()
	r.root = metadata.Root(now.Add(cfg.RootExpiry))
	r.targets = metadata.Targets(now.Add(cfg.TargetsExpiry))
	r.snapshot = metadata.Snapshot(now.Add(cfg.SnapshotExpiry))
	r.timestamp = metadata.Timestamp(now.Add(cfg.TimestampExpiry))
	count := map[string]int{metadata.ROOT: opt.RootKeys, metadata.TARGETS: opt.TargetsKeys, metadata.SNAPSHOT: 1, metadata.TIMESTAMP: 1}
	for _, role := range roles {
		for i := 1; i <= count[role]; i++ {
			_, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return nil, fmt.Errorf("making a %s key: %w", role, err)
			}
			if err := atomicfile.WriteFile(filepath.Join(r.keyDir(), fmt.Sprintf("%s-%d.key", role, i)), []byte(hex.EncodeToString(priv.Seed())+"\n"), 0o600); err != nil {
				return nil, fmt.Errorf("writing a %s key: %w", role, err)
			}
			k, err := metadata.KeyFromPublicKey(priv.Public())
			if err != nil {
				return nil, err
			}
			if err := r.root.Signed.AddKey(k, role); err != nil {
				return nil, fmt.Errorf("adding a %s key: %w", role, err)
			}
		}
	}
	r.root.Signed.Roles[metadata.ROOT].Threshold = opt.RootThreshold
	r.root.Signed.Roles[metadata.TARGETS].Threshold = opt.TargetsThreshold
	keys, err := r.loadKeys(nil)
	if err != nil {
		return nil, err
	}
	if err := signWith(r.root, r.root, metadata.ROOT, keys); err != nil {
		return nil, err
	}
	if err := signWith(r.targets, r.root, metadata.TARGETS, keys); err != nil {
		return nil, err
	}
	if err := r.resignOnline(keys); err != nil {
		return nil, err
	}
	return r, r.save()
}

// Open reads the repository in dir.
func Open(dir string, cfg Config) (*Repo, error) {
	cfg.defaults()
	r := &Repo{dir: dir, cfg: cfg}
	n, err := r.latestRoot()
	if err != nil {
		return nil, err
	}
	if r.root, err = metadata.Root().FromFile(filepath.Join(r.metaDir(), fmt.Sprintf("%d.root.json", n))); err != nil {
		return nil, fmt.Errorf("reading root: %w", err)
	}
	if r.targets, err = metadata.Targets().FromFile(filepath.Join(r.metaDir(), "targets.json")); err != nil {
		return nil, fmt.Errorf("reading targets: %w", err)
	}
	if r.snapshot, err = metadata.Snapshot().FromFile(filepath.Join(r.metaDir(), "snapshot.json")); err != nil {
		return nil, fmt.Errorf("reading snapshot: %w", err)
	}
	if r.timestamp, err = metadata.Timestamp().FromFile(filepath.Join(r.metaDir(), "timestamp.json")); err != nil {
		return nil, fmt.Errorf("reading timestamp: %w", err)
	}
	return r, nil
}

// latestRoot finds the highest N of DIR/metadata/N.root.json.
func (r *Repo) latestRoot() (int64, error) {
	ents, err := os.ReadDir(r.metaDir())
	if err != nil {
		return 0, fmt.Errorf("opening release repository: %w", err)
	}
	var n int64
	for _, e := range ents {
		var v int64
		if _, err := fmt.Sscanf(e.Name(), "%d.root.json", &v); err == nil && v > n {
			n = v
		}
	}
	if n == 0 {
		return 0, fmt.Errorf("%s holds no root metadata (zosctl release init)", r.dir)
	}
	return n, nil
}

// Dir is the repository's directory.
func (r *Repo) Dir() string { return r.dir }

// Root returns the current root metadata's bytes: what nodes trust first.
func (r *Repo) Root() ([]byte, error) { return r.root.ToBytes(true) }

// Add stages the release channel/version of files (artifact name -> local
// path) as targets; targets' version goes up and its signatures are
// cleared until Sign. An artifact already released under that
// channel/version is refused (a release is immutable).
func (r *Repo) Add(channel, version string, files map[string]string) error {
	if !ValidName(channel) || !ValidName(version) {
		return fmt.Errorf("bad channel %q or version %q", channel, version)
	}
	if len(files) == 0 {
		return errors.New("a release needs at least one artifact")
	}
	custom, _ := json.Marshal(Custom{Version: version, Channel: channel})
	raw := json.RawMessage(custom)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !ValidName(name) {
			return fmt.Errorf("bad artifact name %q", name)
		}
		tp := path.Join(channel, version, name)
		if _, ok := r.targets.Signed.Targets[tp]; ok {
			return fmt.Errorf("%s is released already", tp)
		}
	}
	for _, name := range names {
		tp := path.Join(channel, version, name)
		dst := filepath.Join(r.dir, "targets", channel, version, name)
		data, err := os.ReadFile(files[name])
		if err != nil {
			return fmt.Errorf("reading artifact %s: %w", name, err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := atomicfile.WriteFile(dst, data, 0o644); err != nil {
			return fmt.Errorf("copying artifact %s: %w", name, err)
		}
		tf, err := metadata.TargetFile().FromBytes(tp, data, "sha256")
		if err != nil {
			return fmt.Errorf("hashing artifact %s: %w", name, err)
		}
		tf.Custom = &raw
		r.targets.Signed.Targets[tp] = tf
	}
	r.targets.Signed.Version++
	r.targets.Signed.Expires = r.cfg.Now().UTC().Add(r.cfg.TargetsExpiry)
	r.targets.ClearSignatures()
	return r.save()
}

// Sign signs targets with the given key files (all of DIR/keys when none)
// that targets trusts; once targets has its threshold, snapshot and
// timestamp are made anew and signed with the online keys in DIR/keys. It
// returns how many valid targets signatures there are and the threshold.
func (r *Repo) Sign(keyFiles ...string) (have, want int, err error) {
	keys, err := r.loadKeys(keyFiles)
	if err != nil {
		return 0, 0, err
	}
	if err := signWith(r.targets, r.root, metadata.TARGETS, keys); err != nil {
		return 0, 0, err
	}
	have, want = r.validSigs(metadata.TARGETS)
	if have >= want {
		online, err := r.loadKeys(nil)
		if err != nil {
			return 0, 0, err
		}
		if err := r.resignOnline(online); err != nil {
			return have, want, err
		}
	}
	return have, want, r.save()
}

// resignOnline makes snapshot and timestamp anew over the current targets.
func (r *Repo) resignOnline(keys []ed25519.PrivateKey) error {
	now := r.cfg.Now().UTC()
	r.snapshot.Signed.Meta[metadata.TARGETS+".json"] = metadata.MetaFile(r.targets.Signed.Version)
	r.snapshot.Signed.Version++
	r.snapshot.Signed.Expires = now.Add(r.cfg.SnapshotExpiry)
	r.snapshot.ClearSignatures()
	if err := signWith(r.snapshot, r.root, metadata.SNAPSHOT, keys); err != nil {
		return err
	}
	r.timestamp.Signed.Meta["snapshot.json"] = metadata.MetaFile(r.snapshot.Signed.Version)
	r.timestamp.Signed.Version++
	r.timestamp.Signed.Expires = now.Add(r.cfg.TimestampExpiry)
	r.timestamp.ClearSignatures()
	return signWith(r.timestamp, r.root, metadata.TIMESTAMP, keys)
}

// Refresh re-signs snapshot and timestamp with new expiry (a periodic job
// of the online keys, so nodes do not see a frozen repository as current).
func (r *Repo) Refresh() error {
	keys, err := r.loadKeys(nil)
	if err != nil {
		return err
	}
	if err := r.resignOnline(keys); err != nil {
		return err
	}
	return r.save()
}

// Verify checks the repository as a client would before publishing: every
// role signed by its threshold, unexpired, and snapshot and timestamp
// naming the current targets and snapshot.
func (r *Repo) Verify() error {
	now := r.cfg.Now()
	if err := r.root.VerifyDelegate(metadata.ROOT, r.root); err != nil {
		return fmt.Errorf("root: %w: %v", ErrThreshold, err)
	}
	checks := []struct {
		role    string
		meta    any
		expired bool
	}{
		{metadata.TARGETS, r.targets, r.targets.Signed.IsExpired(now)},
		{metadata.SNAPSHOT, r.snapshot, r.snapshot.Signed.IsExpired(now)},
		{metadata.TIMESTAMP, r.timestamp, r.timestamp.Signed.IsExpired(now)},
	}
	if r.root.Signed.IsExpired(now) {
		return errors.New("root metadata expired")
	}
	for _, c := range checks {
		if err := r.root.VerifyDelegate(c.role, c.meta); err != nil {
			return fmt.Errorf("%s: %w (zosctl release sign): %v", c.role, ErrThreshold, err)
		}
		if c.expired {
			return fmt.Errorf("%s metadata expired (zosctl release sign)", c.role)
		}
	}
	if m := r.snapshot.Signed.Meta[metadata.TARGETS+".json"]; m == nil || m.Version != r.targets.Signed.Version {
		return errors.New("snapshot does not name the current targets (zosctl release sign)")
	}
	if m := r.timestamp.Signed.Meta["snapshot.json"]; m == nil || m.Version != r.snapshot.Signed.Version {
		return errors.New("timestamp does not name the current snapshot (zosctl release sign)")
	}
	return nil
}

// validSigs counts role's valid signatures on its current metadata.
func (r *Repo) validSigs(role string) (have, want int) {
	want = r.root.Signed.Roles[role].Threshold
	var payload any
	switch role {
	case metadata.TARGETS:
		payload = r.targets
	default:
		return 0, want
	}
	// VerifyDelegate only says yes or no: count by trying each signature alone.
	sigs := r.targets.Signatures
	defer func() { r.targets.Signatures = sigs }()
	for _, s := range sigs {
		r.targets.Signatures = []metadata.Signature{s}
		saved := r.root.Signed.Roles[role].Threshold
		r.root.Signed.Roles[role].Threshold = 1
		if r.root.VerifyDelegate(role, payload) == nil {
			have++
		}
		r.root.Signed.Roles[role].Threshold = saved
	}
	return have, want
}

// save writes the metadata whole.
func (r *Repo) save() error {
	write := func(name string, b []byte, err error) error {
		if err != nil {
			return fmt.Errorf("encoding %s: %w", name, err)
		}
		if err := atomicfile.WriteFile(filepath.Join(r.metaDir(), name), b, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
		return nil
	}
	b, err := r.root.ToBytes(true)
	if err := write(fmt.Sprintf("%d.root.json", r.root.Signed.Version), b, err); err != nil {
		return err
	}
	b, err = r.targets.ToBytes(true)
	if err := write("targets.json", b, err); err != nil {
		return err
	}
	b, err = r.snapshot.ToBytes(true)
	if err := write("snapshot.json", b, err); err != nil {
		return err
	}
	b, err = r.timestamp.ToBytes(true)
	return write("timestamp.json", b, err)
}

// loadKeys reads key files (all of DIR/keys when none are named).
func (r *Repo) loadKeys(files []string) ([]ed25519.PrivateKey, error) {
	if len(files) == 0 {
		ents, err := os.ReadDir(r.keyDir())
		if err != nil {
			return nil, fmt.Errorf("reading keys: %w", err)
		}
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".key") {
				files = append(files, filepath.Join(r.keyDir(), e.Name()))
			}
		}
	}
	var keys []ed25519.PrivateKey
	for _, f := range files {
		k, err := LoadKey(f)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// LoadKey reads an ed25519 seed written as hex.
func LoadKey(file string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading key: %w", err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("key %s: not a hex ed25519 seed", file)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// signable is the metadata types Sign works on.
type signable interface {
	Sign(signature.Signer) (*metadata.Signature, error)
}

// signWith signs m with those of keys that root trusts for role, replacing
// an earlier signature by the same key.
func signWith[T metadata.Roles](m *metadata.Metadata[T], root *metadata.Metadata[metadata.RootType], role string, keys []ed25519.PrivateKey) error {
	trusted := map[string]bool{}
	for _, id := range root.Signed.Roles[role].KeyIDs {
		trusted[id] = true
	}
	for _, k := range keys {
		pk, err := metadata.KeyFromPublicKey(k.Public())
		if err != nil {
			return err
		}
		id, err := pk.ID()
		if err != nil {
			return err
		}
		if !trusted[id] {
			continue
		}
		kept := m.Signatures[:0]
		for _, s := range m.Signatures {
			if s.KeyID != id {
				kept = append(kept, s)
			}
		}
		m.Signatures = kept
		signer, err := signature.LoadSigner(k, crypto.Hash(0))
		if err != nil {
			return fmt.Errorf("loading %s signer: %w", role, err)
		}
		var s signable = m
		if _, err := s.Sign(signer); err != nil {
			return fmt.Errorf("signing %s: %w", role, err)
		}
	}
	return nil
}
