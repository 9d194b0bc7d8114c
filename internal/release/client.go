package release

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/fetcher"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// ClientConfig of a node's release client.
type ClientConfig struct {
	Hub  string // http(s)://host:port of the grid's hub
	Root []byte // the root metadata trusted first (shipped with the node)
	Dir  string // where the trusted metadata is kept between checks (rollback and freeze protection)
	// HTTP client (timeouts); a 30 s one when nil.
	HTTP *http.Client
	// Now is the reference time of expiry checks (time.Now when nil).
	Now func() time.Time
}

// Artifact is one verified file of a release.
type Artifact struct {
	Name   string
	Path   string // the TUF target path CHANNEL/VERSION/NAME
	Length int64
	SHA256 string
	target *metadata.TargetFiles
}

// Release is a version of a channel as the signed targets describe it.
type Release struct {
	Channel, Version string
	Artifacts        []Artifact // sorted by name
	// Rollout is the release's staged rollout (nil: every node); the
	// strictest of its artifacts' when they differ.
	Rollout *Rollout
}

// Client finds and downloads releases through TUF.
type Client struct {
	cfg ClientConfig
	up  *updater.Updater
}

// ErrNoRelease is returned when a channel has no release.
var ErrNoRelease = errors.New("no release in channel")

// Refresh fetches and verifies the hub's current metadata (root chain,
// timestamp, snapshot, targets) against what is trusted already, and
// returns a client over it. Unsigned, wrongly signed, expired and older
// (replayed) metadata are refused here.
func Refresh(cfg ClientConfig) (*Client, error) {
	if cfg.Hub == "" || len(cfg.Root) == 0 || cfg.Dir == "" {
		return nil, errors.New("release client needs a hub, a trusted root and a directory")
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	mdir := filepath.Join(cfg.Dir, "metadata")
	if err := os.MkdirAll(mdir, 0o700); err != nil {
		return nil, fmt.Errorf("creating release metadata directory: %w", err)
	}
	// A root trusted earlier (maybe rotated since) takes the shipped one's
	// place; if it cannot be read whole (a write cut by a power loss: go-tuf
	// does not write atomically), the shipped root starts the chain again.
	var up *updater.Updater
	err := errors.New("no trusted root stored")
	if b, rerr := os.ReadFile(filepath.Join(mdir, "root.json")); rerr == nil {
		up, err = newUpdater(cfg, mdir, b)
	}
	if err != nil {
		up, err = newUpdater(cfg, mdir, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("release client: %w", err)
	}
	if cfg.Now != nil {
		up.UnsafeSetRefTime(cfg.Now())
	}
	if err := up.Refresh(); err != nil {
		return nil, fmt.Errorf("verifying release metadata: %w", err)
	}
	return &Client{cfg: cfg, up: up}, nil
}

// newUpdater makes a TUF updater over the hub trusting root (the shipped
// root when nil).
func newUpdater(cfg ClientConfig, mdir string, root []byte) (*updater.Updater, error) {
	if root == nil {
		root = cfg.Root
	}
	base := strings.TrimRight(cfg.Hub, "/")
	uc, err := config.New(base+strings.TrimRight(MetadataPath, "/"), root)
	if err != nil {
		return nil, err
	}
	uc.LocalMetadataDir = mdir
	uc.LocalTargetsDir = filepath.Join(cfg.Dir, "targets")
	uc.RemoteTargetsURL = base + strings.TrimRight(TargetsPath, "/")
	uc.DisableLocalCache = false
	f := fetcher.NewDefaultFetcher()
	f.SetHTTPClient(cfg.HTTP)
	f.SetRetry(0, 1)
	uc.Fetcher = f
	return updater.New(uc)
}

// Releases lists a channel's releases, newest last.
func (c *Client) Releases(channel string) []Release {
	byVersion := map[string]*Release{}
	for tp, tf := range c.up.GetTopLevelTargets() {
		if tf.Custom == nil {
			continue
		}
		var cu Custom
		if json.Unmarshal(*tf.Custom, &cu) != nil || cu.Channel != channel || !ValidName(cu.Version) {
			continue
		}
		// The path must say what the custom metadata says.
		parts := strings.Split(tp, "/")
		if len(parts) != 3 || parts[0] != channel || parts[1] != cu.Version || !ValidName(parts[2]) {
			continue
		}
		r := byVersion[cu.Version]
		if r == nil {
			r = &Release{Channel: channel, Version: cu.Version, Rollout: cu.Rollout}
			byVersion[cu.Version] = r
		} else if cu.Rollout != nil && (r.Rollout == nil || cu.Rollout.Paused || cu.Rollout.Percent < r.Rollout.Percent) {
			r.Rollout = cu.Rollout
		}
		r.Artifacts = append(r.Artifacts, Artifact{Name: parts[2], Path: tp, Length: tf.Length,
			SHA256: fmt.Sprintf("%x", []byte(tf.Hashes["sha256"])), target: tf})
	}
	out := make([]Release, 0, len(byVersion))
	for _, r := range byVersion {
		slices.SortFunc(r.Artifacts, func(a, b Artifact) int { return strings.Compare(a.Name, b.Name) })
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b Release) int { return CompareVersions(a.Version, b.Version) })
	return out
}

// Latest returns the channel's newest release.
func (c *Client) Latest(channel string) (Release, error) {
	rs := c.Releases(channel)
	if len(rs) == 0 {
		return Release{}, fmt.Errorf("%w %q", ErrNoRelease, channel)
	}
	return rs[len(rs)-1], nil
}

// Fetch downloads an artifact and checks its length and SHA-256 against
// the signed targets; a tampered or cut artifact is refused.
func (c *Client) Fetch(a Artifact) ([]byte, error) {
	if a.target == nil {
		return nil, errors.New("artifact not from this client")
	}
	// The download goes to memory and the caller writes it where it
	// belongs: give a path under the targets directory that nothing reads.
	tmp := filepath.Join(c.cfg.Dir, "targets", "download.tmp")
	if err := os.MkdirAll(filepath.Dir(tmp), 0o700); err != nil {
		return nil, err
	}
	defer os.Remove(tmp)
	_, data, err := c.up.DownloadTarget(a.target, tmp, "")
	if err != nil {
		return nil, fmt.Errorf("downloading %s: %w", a.Path, err)
	}
	return data, nil
}

// CompareVersions orders release versions: dot-separated numbers after an
// optional "v" compare as numbers, anything else as text.
func CompareVersions(a, b string) int {
	as := strings.Split(strings.TrimPrefix(a, "v"), ".")
	bs := strings.Split(strings.TrimPrefix(b, "v"), ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y string
		if i < len(as) {
			x = as[i]
		}
		if i < len(bs) {
			y = bs[i]
		}
		xn, xerr := strconv.ParseUint(x, 10, 64)
		yn, yerr := strconv.ParseUint(y, 10, 64)
		switch {
		case xerr == nil && yerr == nil:
			if xn != yn {
				if xn < yn {
					return -1
				}
				return 1
			}
		case x != y:
			return strings.Compare(x, y)
		}
	}
	return 0
}
