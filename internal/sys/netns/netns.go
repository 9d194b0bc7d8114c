// Package netns creates, enters and removes named network namespaces
// (bind mounts under /run/netns, as iproute2 makes them). The network
// manager and the test harness use it; nothing here changes the namespace
// of the calling thread once a function returns.
package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	vns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Dir is where named namespaces are bind-mounted: where vishvananda/netns
// (Create) mounts them. iproute2's /var/run/netns is the same directory
// where /var/run links to /run (Debian); the Zero-OS image has no such
// link, and a namespace made under /run/netns was not found under
// /var/run/netns.
const Dir = "/run/netns"

// Path returns the file of namespace name.
func Path(name string) string { return filepath.Join(Dir, name) }

// Exists reports whether namespace name exists.
func Exists(name string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(Path(name), &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// Create makes namespace name. It fails if it exists.
func Create(name string) error {
	if name == "" || strings.ContainsAny(name, "/\x00") || len(name) > 200 {
		return fmt.Errorf("invalid namespace name %q", name)
	}
	if Exists(name) {
		return fmt.Errorf("creating namespace %s: %w", name, os.ErrExist)
	}
	// NewNamed moves the calling thread into the new namespace.
	h := vns.None()
	err := onThread(func() error {
		var err error
		h, err = vns.NewNamed(name)
		return err
	})
	if h.IsOpen() {
		h.Close()
	}
	if err != nil {
		_ = os.Remove(Path(name))
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return nil
}

// Delete removes namespace name; a missing namespace is not an error. The
// kernel frees it (and its links) once no process or socket uses it.
func Delete(name string) error {
	p := Path(name)
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmounting namespace %s: %w", name, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing namespace %s: %w", name, err)
	}
	return nil
}

// Open returns a handle on namespace name, "" meaning the caller's.
func Open(name string) (vns.NsHandle, error) {
	if name == "" {
		h, err := vns.Get()
		if err != nil {
			return vns.None(), fmt.Errorf("getting current namespace: %w", err)
		}
		return h, nil
	}
	h, err := vns.GetFromPath(Path(name))
	if err != nil {
		return vns.None(), fmt.Errorf("opening namespace %s: %w", name, err)
	}
	return h, nil
}

// Do runs f on a locked thread inside namespace name ("" runs f as is).
// Sockets f opens and processes it starts belong to that namespace.
func Do(name string, f func() error) error {
	if name == "" {
		return f()
	}
	target, err := Open(name)
	if err != nil {
		return err
	}
	defer target.Close()
	return onThread(func() error {
		if err := vns.Set(target); err != nil {
			return fmt.Errorf("entering namespace %s: %w", name, err)
		}
		return f()
	})
}

// onThread runs f on a locked OS thread, which f may move to another
// namespace, and moves the thread back to the namespace it started in.
// Every switch of this package goes through it. A thread that cannot go
// back stays locked, so that it ends with the goroutine instead of
// serving others in the wrong namespace.
func onThread(f func() error) error {
	runtime.LockOSThread()
	orig, err := vns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("getting current namespace: %w", err)
	}
	defer orig.Close()
	ferr := f()
	if err := vns.Set(orig); err != nil {
		return errors.Join(ferr, fmt.Errorf("returning to the original namespace: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// Run runs a command inside namespace name and returns its combined
// output; the error carries the argv and the output.
func Run(name string, stdin string, argv ...string) (string, error) {
	var out []byte
	err := Do(name, func() error {
		cmd := exec.Command(argv[0], argv[1:]...)
		if stdin != "" {
			cmd.Stdin = strings.NewReader(stdin)
		}
		var err error
		out, err = cmd.CombinedOutput()
		return err
	})
	if err != nil {
		return string(out), fmt.Errorf("running %q in namespace %q: %w: %s", argv, name, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Sysctl writes value to /proc/sys/<key> inside namespace name (key with
// slashes, e.g. "net/ipv4/ip_forward").
func Sysctl(name, key, value string) error {
	return Do(name, func() error {
		if err := os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644); err != nil {
			return fmt.Errorf("setting %s=%s in namespace %q: %w", key, value, name, err)
		}
		return nil
	})
}

// Start starts cmd inside namespace name; the process stays there.
func Start(name string, cmd *exec.Cmd) error {
	if err := Do(name, cmd.Start); err != nil {
		return fmt.Errorf("starting %q in namespace %q: %w", cmd.Args, name, err)
	}
	return nil
}

// List returns the named namespaces whose name starts with prefix.
func List(prefix string) ([]string, error) {
	ents, err := os.ReadDir(Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", Dir, err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}
