package qemu

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultVirtiofsd is the virtiofs daemon of Debian's qemu-system-common.
const DefaultVirtiofsd = "/usr/lib/qemu/virtiofsd"

// VirtiofsXattrMap maps every extended attribute the guest names to
// user.virtiofs.<name> on the host and hides the host's own: a guest keeps
// its xattrs (file capabilities, trusted.*, user.*) in its own files, but
// can never set or read one the host acts on (trusted.overlay.* that
// overlayfs would follow, security.capability the host kernel would
// honour).
const VirtiofsXattrMap = ":prefix:all::user.virtiofs.::bad:all:::"

// VirtiofsdArgv is the argv (without the binary) of a virtiofsd serving
// dir on socket. It runs in the foreground, one per share, and exits when
// the VM disconnects. Once QEMU connects it sandboxes itself
// (sandbox=namespace: new mount, pid and net namespaces, pivot_root into
// dir, seccomp, capabilities cut to file ownership and mknod; stated, not
// left to the default), and guest xattrs go through VirtiofsXattrMap.
func VirtiofsdArgv(socket, dir string) []string {
	return []string{"--socket-path=" + socket, "-o", "source=" + dir, "-o", "sandbox=namespace", "-o", "cache=auto",
		"-o", "xattrmap=" + VirtiofsXattrMap, "-o", "log_level=warn"}
}

// StartVirtiofsd starts a virtiofsd for dir and waits until its socket
// exists (QEMU must not start before).
func StartVirtiofsd(ctx context.Context, bin, socket, dir string, log *slog.Logger) (*Process, error) {
	if bin == "" {
		bin = DefaultVirtiofsd
	}
	if !filepath.IsAbs(socket) || !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("starting virtiofsd: socket %q and dir %q must be absolute", socket, dir)
	}
	if strings.ContainsAny(dir, ",\n") {
		return nil, fmt.Errorf("starting virtiofsd: shared dir %q: commas and newlines are not allowed", dir)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("starting virtiofsd: shared dir %s is not a directory", dir)
	}
	os.Remove(socket)
	p, err := startProcess(bin, VirtiofsdArgv(socket, dir), "")
	if err != nil {
		return nil, fmt.Errorf("starting virtiofsd: %w", err)
	}
	log.Info("virtiofsd_started", "pid", p.Pid, "dir", dir)
	for {
		if _, err := os.Stat(socket); err == nil {
			return p, nil
		}
		select {
		case <-p.Done():
			return nil, fmt.Errorf("starting virtiofsd: %w", p.Err())
		case <-ctx.Done():
			p.Kill()
			return nil, fmt.Errorf("starting virtiofsd %s %s: no socket: %w", bin, strings.Join(p.Argv, " "), ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}
