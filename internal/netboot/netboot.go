// Package netboot serves network boot from the grid: zgrid's hub answers
// GET /boot/{farm}.ipxe with an iPXE script that loads the kernel and
// initramfs of the current release of the farm's channel (vmlinuz and
// initramfs.img, as `zosctl release add` stores them) with the kernel
// command line `make image` bakes in (farm=, farm_token=, grid=). The
// release is chosen from the hub's own release repository after it has
// been verified through TUF (internal/release) against a trusted root, so
// only artifacts that signed targets name are ever offered. What iPXE then
// fetches is not verified by iPXE (see SECURITY.md).
package netboot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/release"
)

// Artifact names of a bootable release.
const (
	KernelName    = "vmlinuz"
	InitramfsName = "initramfs.img"
)

// DefaultChannel is the channel of a farm that chose none.
const DefaultChannel = "production"

// Farms finds a farm's record (registry.Client).
type Farms interface {
	Farm(ctx context.Context, id uint32) (registry.Farm, error)
}

var _ Farms = (*registry.Client)(nil)

// Config of the boot server.
type Config struct {
	// ReleaseDir is the hub's release repository (DIR/release: metadata/
	// and targets/ as internal/flist/hub stores them).
	ReleaseDir string
	// TrustDir keeps the metadata verified so far (rollback and freeze
	// protection across requests and restarts).
	TrustDir string
	// Root is the release root trusted first; nil trusts the repository's
	// first root (1.root.json) as published.
	Root []byte
	// Grid is the NATS URL booted nodes get; "" means nats://HOST:GridPort
	// with HOST the one the machine reached the hub at.
	Grid     string
	GridPort int
	// Args are extra kernel arguments (console=...).
	Args []string
}

// Server answers boot requests.
type Server struct {
	cfg   Config
	farms Farms
	log   *slog.Logger
	mu    sync.Mutex // serializes TUF refreshes (they write TrustDir)
}

// New makes a boot server.
func New(cfg Config, farms Farms, log *slog.Logger) (*Server, error) {
	if cfg.ReleaseDir == "" || cfg.TrustDir == "" {
		return nil, errors.New("netboot: release and trust directories are required")
	}
	if cfg.Grid == "" && (cfg.GridPort <= 0 || cfg.GridPort > 65535) {
		return nil, errors.New("netboot: a grid URL or the grid's port is required")
	}
	if cfg.Root != nil {
		if _, err := metadata.Root().FromBytes(cfg.Root); err != nil {
			return nil, fmt.Errorf("netboot: the trusted release root is not TUF root metadata: %w", err)
		}
	}
	if cfg.Args == nil {
		cfg.Args = []string{"console=tty1", "console=ttyS0", "quiet", "tsc_early_khz=2600000"}
	}
	return &Server{cfg: cfg, farms: farms, log: log}, nil
}

// Boot is what one farm's machines boot.
type Boot struct {
	Farm      uint32
	FarmToken string
	Grid      string
	Channel   string
	Version   string
	Kernel    string // URL
	Initramfs string // URL
	// UpdateHub and UpdateRoot (sha256:HEX of the root the release was
	// verified against) let the booted node update itself from here.
	UpdateHub  string
	UpdateRoot string
	Args       []string
}

// Script is the iPXE script of b.
func Script(b Boot) string {
	args := append([]string(nil), b.Args...)
	args = append(args, "farm="+strconv.FormatUint(uint64(b.Farm), 10))
	if b.FarmToken != "" {
		args = append(args, "farm_token="+b.FarmToken)
	}
	args = append(args, "grid="+b.Grid, "update_channel="+b.Channel)
	if b.UpdateHub != "" && b.UpdateRoot != "" {
		args = append(args, "update_hub="+b.UpdateHub, "update_root="+b.UpdateRoot)
	}
	var s strings.Builder
	s.WriteString("#!ipxe\n")
	fmt.Fprintf(&s, "echo Zero-OS %s (%s) for farm %d\n", b.Version, b.Channel, b.Farm)
	fmt.Fprintf(&s, "kernel %s %s\n", b.Kernel, strings.Join(args, " "))
	fmt.Fprintf(&s, "initrd %s\n", b.Initramfs)
	s.WriteString("boot\n")
	return s.String()
}

// ServeHTTP answers GET /boot/{farm}.ipxe[?farm_token=TOKEN].
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "GET only", http.StatusMethodNotAllowed)
		return
	}
	b, code, err := s.boot(r)
	if err != nil {
		s.log.Warn("netboot_refused", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
		http.Error(w, err.Error(), code)
		return
	}
	s.log.Info("netboot_script", "farm", b.Farm, "channel", b.Channel, "version", b.Version, "remote", r.RemoteAddr)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	fmt.Fprint(w, Script(b))
}

// boot resolves a request into the farm's boot, or an HTTP status and why.
func (s *Server) boot(r *http.Request) (Boot, int, error) {
	name := strings.TrimPrefix(r.URL.Path, "/boot/")
	id, ok := strings.CutSuffix(name, ".ipxe")
	n, err := strconv.ParseUint(id, 10, 32)
	if !ok || err != nil || n == 0 {
		return Boot{}, http.StatusNotFound, fmt.Errorf("%q is not /boot/FARM.ipxe", r.URL.Path)
	}
	b := Boot{Farm: uint32(n), Args: s.cfg.Args}
	if tok := r.URL.Query().Get("farm_token"); tok != "" {
		t, err := registry.ParseFarmToken(tok)
		if err != nil {
			return Boot{}, http.StatusBadRequest, err
		}
		if t.FarmID != b.Farm {
			return Boot{}, http.StatusBadRequest, fmt.Errorf("farm token is for farm %d, not %d", t.FarmID, b.Farm)
		}
		b.FarmToken = tok
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	farm, err := s.farms.Farm(ctx, b.Farm)
	if errors.Is(err, registry.ErrNotFound) {
		return Boot{}, http.StatusNotFound, fmt.Errorf("no farm %d", b.Farm)
	}
	if err != nil {
		return Boot{}, http.StatusBadGateway, fmt.Errorf("reading farm %d: %w", b.Farm, err)
	}
	b.Channel = farm.Channel
	if b.Channel == "" {
		b.Channel = DefaultChannel
	}
	rel, root, err := s.latest(b.Channel)
	if err != nil {
		return Boot{}, http.StatusServiceUnavailable, err
	}
	b.Version = rel.Version
	host := r.Host
	if host == "" {
		return Boot{}, http.StatusBadRequest, errors.New("no Host header")
	}
	sum := sha256.Sum256(root)
	b.UpdateHub, b.UpdateRoot = "http://"+host, "sha256:"+hex.EncodeToString(sum[:])
	for _, a := range rel.Artifacts {
		u := "http://" + host + release.TargetsPath + rel.Channel + "/" + rel.Version + "/" + a.SHA256 + "." + a.Name
		switch a.Name {
		case KernelName:
			b.Kernel = u
		case InitramfsName:
			b.Initramfs = u
		}
	}
	b.Grid = s.cfg.Grid
	if b.Grid == "" {
		h, _, err := net.SplitHostPort(host)
		if err != nil {
			h = host
		}
		b.Grid = "nats://" + net.JoinHostPort(h, strconv.Itoa(s.cfg.GridPort))
	}
	return b, 0, nil
}

// latest is the newest verified release of channel that carries a kernel
// and an initramfs, and the root it was verified against.
func (s *Server) latest(channel string) (release.Release, []byte, error) {
	root := s.cfg.Root
	if root == nil {
		b, err := os.ReadFile(filepath.Join(s.cfg.ReleaseDir, "metadata", "1.root.json"))
		if err != nil {
			return release.Release{}, nil, errors.New("no release repository published on this hub")
		}
		root = b
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := release.Refresh(release.ClientConfig{Hub: "http://hub.local", Root: root, Dir: s.cfg.TrustDir,
		HTTP: &http.Client{Transport: localRepo{http.NewFileTransport(http.Dir(s.cfg.ReleaseDir))}, Timeout: 30 * time.Second}})
	if err != nil {
		return release.Release{}, nil, err
	}
	rs := c.Releases(channel)
	for i := len(rs) - 1; i >= 0; i-- {
		var k, in bool
		for _, a := range rs[i].Artifacts {
			k = k || a.Name == KernelName
			in = in || a.Name == InitramfsName
		}
		if k && in {
			return rs[i], root, nil
		}
	}
	return release.Release{}, nil, fmt.Errorf("channel %q has no release with %s and %s", channel, KernelName, InitramfsName)
}

// localRepo reads the hub's release URLs (/api/release/...) from its
// directory, for the TUF client.
type localRepo struct{ files http.RoundTripper }

func (l localRepo) RoundTrip(r *http.Request) (*http.Response, error) {
	p, ok := strings.CutPrefix(r.URL.Path, "/api/release/")
	if !ok {
		return nil, fmt.Errorf("not a release path: %s", r.URL.Path)
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = "/" + p
	return l.files.RoundTrip(r2)
}
