package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/zos-go/zos/internal/node/vm/guest"
	"github.com/zos-go/zos/internal/sys/kmod"
	"github.com/zos-go/zos/internal/sys/mount"
	"github.com/zos-go/zos/internal/sys/netcfg"
	"github.com/zos-go/zos/internal/sys/pid1"
	"github.com/zos-go/zos/internal/sys/proc"
	"github.com/zos-go/zos/internal/sys/switchroot"
)

// newRoot is where the root share is mounted before switching to it.
const newRoot = "/newroot"

// run boots the guest up to the entrypoint and returns its exit code.
func run(log *slog.Logger) (int, error) {
	if err := pid1.MountPseudo(); err != nil {
		// cgroup2 or devpts may be missing in a small kernel: go on.
		log.Warn("pseudo_mounts", "err", err)
	}
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return 0, fmt.Errorf("reading the kernel command line: %w", err)
	}
	cmdline := guest.ParseCmdline(string(b))
	list := cmdline[guest.ParamModules]
	if list == "" {
		list = guest.ModulesFile
	}
	if err := loadModules(list, "", log); err != nil {
		return 0, err
	}
	if err := mountRoot(cmdline, func() error { return loadModules(list, guest.Group9P, log) }, log); err != nil {
		return 0, err
	}
	cfg, err := readConfig(cmdline)
	if err != nil {
		return 0, err
	}
	if len(cfg.Disks) > 0 {
		if err := loadModules(list, guest.GroupDisk, log); err != nil {
			return 0, err
		}
		if err := mountDisks(cfg.Disks, "/sys/block", log); err != nil {
			return 0, err
		}
	}
	for _, m := range cfg.Mounts {
		target := filepath.Join(newRoot, m.Mountpoint)
		if err := os.MkdirAll(target, 0o755); err != nil {
			return 0, fmt.Errorf("creating mountpoint %s: %w", m.Mountpoint, err)
		}
		if err := (mount.Mounter{}).Mount(m.Tag, target, "virtiofs", ""); err != nil {
			return 0, err
		}
	}
	if err := configureNetwork(cfg, log); err != nil {
		return 0, err
	}
	if cfg.Hostname != "" {
		if err := proc.SetHostname(cfg.Hostname); err != nil {
			log.Warn("hostname", "err", err)
		}
	}
	if err := writeSSHKey(newRoot, cfg.Env["SSH_KEY"]); err != nil {
		log.Warn("ssh_key", "err", err)
	}
	// The power button is watched from here on (PID 1 for good); an
	// exec'ed init watches it itself.
	var power <-chan struct{}
	if !cfg.Init {
		power = watchPowerButton(context.Background(), log)
	}
	if err := switchroot.Into(newRoot); err != nil {
		return 0, err
	}
	env := append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "TERM=linux"}, cfg.Environ()...)
	if cfg.Init {
		log.Info("exec_init", "path", cfg.Entrypoint[0])
		return 0, proc.Exec(cfg.Entrypoint, env)
	}
	return supervise(cfg, env, power, log)
}

// mountDisks mounts each disk, found by its serial under sysBlock, at its
// mountpoint in the new root. A disk may show up a little after its
// driver loads: it is waited for briefly.
func mountDisks(disks []guest.Disk, sysBlock string, log *slog.Logger) error {
	deadline := time.Now().Add(5 * time.Second)
	for _, d := range disks {
		var dev string
		for {
			dev = findDisk(sysBlock, d.Serial)
			if dev != "" || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if dev == "" {
			return fmt.Errorf("disk %s for %s: no virtio disk with that serial", d.Serial, d.Mountpoint)
		}
		fstype := d.FSType
		if fstype == "" {
			fstype = "btrfs"
		}
		target := filepath.Join(newRoot, d.Mountpoint)
		if err := (mount.Mounter{}).Mount("/dev/"+dev, target, fstype, ""); err != nil {
			return fmt.Errorf("disk %s: %w", d.Serial, err)
		}
		log.Debug("disk_mounted", "dev", dev, "mountpoint", d.Mountpoint, "fstype", fstype)
	}
	return nil
}

// findDisk returns the name (vda, ...) of the virtio disk whose serial is
// serial, or "".
func findDisk(sysBlock, serial string) string {
	ents, _ := os.ReadDir(sysBlock)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "vd") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(sysBlock, e.Name(), "serial"))
		if err == nil && strings.TrimSpace(string(b)) == serial {
			return e.Name()
		}
	}
	return ""
}

// loadModules loads the modules of group in the list file, in order. A
// missing list means a kernel with the drivers built in.
func loadModules(list, group string, log *slog.Logger) error {
	f, err := os.Open(list)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening module list: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		p, g := f[0], ""
		if len(f) > 1 {
			g = f[1]
		}
		if g != group {
			continue
		}
		if err := kmod.Load(p); err != nil {
			return err
		}
		n++
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading module list: %w", err)
	}
	log.Debug("modules_loaded", "group", group, "count", n)
	return nil
}

// mountRoot mounts the root share: virtiofs unless rootfstype=9p, and 9p
// with the same tag when virtiofs fails (load9p loads its modules first).
// The device may appear a little after its driver loads, so mounting is
// retried briefly.
func mountRoot(cmdline guest.Cmdline, load9p func() error, log *slog.Logger) error {
	tag := cmdline[guest.ParamRoot]
	if tag == "" {
		return errors.New("no root= on the kernel command line")
	}
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", newRoot, err)
	}
	types := []string{"virtiofs", "9p"}
	if cmdline[guest.ParamRootFSType] == "9p" {
		types = []string{"9p", "virtiofs"}
	}
	data := map[string]string{"9p": "trans=virtio,version=9p2000.L,msize=524288,cache=loose"}
	var errs []error
	loaded9p := false
	deadline := time.Now().Add(5 * time.Second)
	for {
		errs = errs[:0]
		for _, t := range types {
			if t == "9p" && !loaded9p {
				loaded9p = true
				if err := load9p(); err != nil {
					errs = append(errs, err)
					continue
				}
			}
			err := (mount.Mounter{}).Mount(tag, newRoot, t, data[t])
			if err == nil {
				log.Debug("root_mounted", "tag", tag, "fstype", t)
				return nil
			}
			errs = append(errs, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mounting the root share %q: %w", tag, errors.Join(errs...))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readConfig takes the config from the command line, else from the root.
func readConfig(cmdline guest.Cmdline) (*guest.Config, error) {
	if s := cmdline[guest.ParamConfig]; s != "" {
		return guest.Decode(s)
	}
	b, err := os.ReadFile(filepath.Join(newRoot, guest.ConfigFile))
	if err != nil {
		return nil, fmt.Errorf("no %s on the command line and no config in the root: %w", guest.ParamConfig, err)
	}
	return guest.Parse(b)
}

// configureIPv6 sets an interface's IPv6 address, its IPv6 routes (the
// planetary link's 200::/7) and IPv6 default router (the node routes the
// address to the VM's tap: no router advertisement comes).
func configureIPv6(i guest.Interface) error {
	p, err := netip.ParsePrefix(i.Address6)
	if err != nil {
		return fmt.Errorf("interface %s address6: %w", i.Name, err)
	}
	if err := netcfg.AddAddr6(i.Name, p); err != nil {
		return err
	}
	for _, r := range i.Routes6 {
		dst, err := netip.ParsePrefix(r.Dst)
		if err != nil {
			return fmt.Errorf("interface %s route6 %s: %w", i.Name, r.Dst, err)
		}
		via, err := netip.ParseAddr(r.Via)
		if err != nil {
			return fmt.Errorf("interface %s route6 via %s: %w", i.Name, r.Via, err)
		}
		if err := netcfg.AddRoute6(i.Name, dst, via); err != nil {
			return err
		}
	}
	if i.Gateway6 == "" {
		return nil
	}
	gw, err := netip.ParseAddr(i.Gateway6)
	if err != nil {
		return fmt.Errorf("interface %s gateway6: %w", i.Name, err)
	}
	return netcfg.AddDefaultRoute6(i.Name, gw)
}

// configureNetwork brings lo and the configured interfaces up, sets their
// addresses and default routes, and writes resolv.conf into the root.
func configureNetwork(cfg *guest.Config, log *slog.Logger) error {
	if err := netcfg.Up("lo"); err != nil {
		log.Warn("loopback", "err", err)
	}
	links, _ := netcfg.Links("/sys/class/net")
	for _, i := range cfg.Interfaces {
		for _, l := range links {
			if i.MAC != "" && strings.EqualFold(l.MAC, i.MAC) {
				i.Name = l.Name
			}
		}
		if err := netcfg.Up(i.Name); err != nil {
			return err
		}
		if i.Address6 != "" {
			if err := configureIPv6(i); err != nil {
				return err
			}
		}
		if i.Address == "" {
			continue
		}
		ip, ipn, err := net.ParseCIDR(i.Address)
		if err != nil {
			return fmt.Errorf("interface %s: %w", i.Name, err)
		}
		if err := netcfg.SetAddr(i.Name, ip, ipn.Mask); err != nil {
			return err
		}
		if i.Gateway != "" {
			if err := netcfg.AddDefaultRoute(i.Name, net.ParseIP(i.Gateway)); err != nil {
				return err
			}
		}
		for _, r := range i.Routes {
			_, dst, err := net.ParseCIDR(r.Dst)
			if err != nil {
				return fmt.Errorf("interface %s route %s: %w", i.Name, r.Dst, err)
			}
			if err := netcfg.AddRoute(i.Name, dst, net.ParseIP(r.Via)); err != nil {
				return err
			}
		}
	}
	if len(cfg.DNS) > 0 {
		etc := filepath.Join(newRoot, "etc")
		if st, err := os.Stat(etc); err == nil && st.IsDir() {
			var b strings.Builder
			for _, d := range cfg.DNS {
				fmt.Fprintf(&b, "nameserver %s\n", d)
			}
			rc := filepath.Join(etc, "resolv.conf")
			os.Remove(rc) // may be a dangling symlink
			if err := os.WriteFile(rc, []byte(b.String()), 0o644); err != nil {
				return fmt.Errorf("writing resolv.conf: %w", err)
			}
		}
	}
	return nil
}

// writeSSHKey appends key to root's authorized_keys when the image has a
// /root (and the key is not there yet).
func writeSSHKey(root, key string) error {
	key = strings.TrimSpace(key)
	if key == "" {
		return nil
	}
	home := filepath.Join(root, "root")
	if st, err := os.Stat(home); err != nil || !st.IsDir() {
		return nil
	}
	dir := filepath.Join(home, ".ssh")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	p := filepath.Join(dir, "authorized_keys")
	old, _ := os.ReadFile(p)
	for _, l := range strings.Split(string(old), "\n") {
		if strings.TrimSpace(l) == key {
			return nil
		}
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening %s: %w", p, err)
	}
	defer f.Close()
	if len(old) > 0 && !strings.HasSuffix(string(old), "\n") {
		key = "\n" + key
	}
	if _, err := f.WriteString(key + "\n"); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}
