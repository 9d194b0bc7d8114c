// Package wg runs WireGuard devices for the network manager: the interface
// lives in one network namespace (the network resource's), the UDP sockets
// in another (the node's). Kernel WireGuard is used where the kernel has it
// (the boot image); elsewhere userspace wireguard-go, with its TUN offloads
// (virtio net header, TCP/UDP GSO and GRO) and batched UDP I/O
// (sendmmsg/recvmmsg, UDP GSO/GRO), and a UAPI socket under
// /var/run/wireguard that lets `wg show` see the device. See Mode.
package wg

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/zos-go/zos/internal/sys/netns"
)

// MTU of the devices (WireGuard over IPv4/IPv6 UDP on a 1500 link).
const MTU = 1420

// Peer is a WireGuard peer.
type Peer struct {
	PublicKey  [32]byte
	Endpoint   netip.AddrPort // zero: the peer connects to us
	AllowedIPs []netip.Prefix
	Keepalive  int // seconds, 0 for none
}

// Config is a device's configuration.
type Config struct {
	PrivateKey [32]byte
	ListenPort uint16
	Peers      []Peer
}

// UAPI renders c as a wireguard UAPI "set" request replacing every peer.
func (c Config) UAPI() string {
	var b strings.Builder
	fmt.Fprintf(&b, "private_key=%s\nlisten_port=%d\nreplace_peers=true\n", hex.EncodeToString(c.PrivateKey[:]), c.ListenPort)
	for _, p := range c.Peers {
		fmt.Fprintf(&b, "public_key=%s\nreplace_allowed_ips=true\n", hex.EncodeToString(p.PublicKey[:]))
		if p.Endpoint.IsValid() {
			fmt.Fprintf(&b, "endpoint=%s\n", p.Endpoint)
		}
		if p.Keepalive > 0 {
			fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", p.Keepalive)
		}
		for _, a := range p.AllowedIPs {
			fmt.Fprintf(&b, "allowed_ip=%s\n", a)
		}
	}
	return b.String()
}

// userDevice is a running wireguard-go device.
type userDevice struct {
	name string
	dev  *device.Device
	uapi net.Listener
	done chan struct{} // closed when the UAPI accept loop ends
	once sync.Once
}

// nsBind opens the UDP sockets of a device inside a namespace.
type nsBind struct {
	conn.Bind
	ns string
}

func (b *nsBind) Open(port uint16) (fns []conn.ReceiveFunc, actual uint16, err error) {
	derr := netns.Do(b.ns, func() error {
		fns, actual, err = b.Bind.Open(port)
		return nil
	})
	if derr != nil {
		return nil, 0, derr
	}
	return fns, actual, err
}

// startUser creates TUN interface name inside namespace tunNS, its sockets
// in sockNS ("" for the caller's), and serves the UAPI socket
// /var/run/wireguard/<name>.sock. The device is down until Configure.
// tun.CreateTUN asks for IFF_VNET_HDR and turns on TCP (and UDP) segmentation
// offloads when the kernel accepts them, and conn.StdNetBind batches its
// reads and writes (recvmmsg/sendmmsg, UDP GRO/GSO where supported).
func startUser(name, tunNS, sockNS string, log *slog.Logger) (*userDevice, error) {
	var td tun.Device
	err := netns.Do(tunNS, func() error {
		var err error
		td, err = tun.CreateTUN(name, MTU)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("creating tun %s in namespace %q: %w", name, tunNS, err)
	}
	logger := &device.Logger{
		Verbosef: func(format string, args ...any) { log.Debug("wireguard", "msg", fmt.Sprintf(format, args...)) },
		Errorf: func(format string, args ...any) {
			msg := fmt.Sprintf(format, args...)
			if strings.Contains(msg, "MTU") {
				// The TUN lives in another namespace than the thread
				// reading MTU updates: expected, and the MTU is fixed.
				log.Debug("wireguard", "msg", msg)
				return
			}
			log.Warn("wireguard_error", "msg", msg)
		},
	}
	var dev *device.Device
	// NewDevice reads the MTU by interface name: do it in the TUN's namespace.
	_ = netns.Do(tunNS, func() error {
		dev = device.NewDevice(td, &nsBind{Bind: conn.NewStdNetBind(), ns: sockNS}, logger)
		return nil
	})
	l, err := listenUAPI(name)
	if err != nil {
		dev.Close()
		return nil, err
	}
	d := &userDevice{name: name, dev: dev, uapi: l, done: make(chan struct{})}
	go d.serve()
	return d, nil
}

func (d *userDevice) serve() {
	defer close(d.done)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := d.uapi.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.dev.IpcHandle(c)
		}()
	}
}

func (d *userDevice) configure(c Config) error {
	if err := d.dev.IpcSet(c.UAPI()); err != nil {
		return fmt.Errorf("configuring %s: %w", d.name, err)
	}
	if err := d.dev.Up(); err != nil {
		return fmt.Errorf("bringing %s up (listen port %d): %w", d.name, c.ListenPort, err)
	}
	return nil
}

// close stops the device: the TUN interface disappears, the sockets and
// the UAPI socket are closed.
func (d *userDevice) close() error {
	var err error
	d.once.Do(func() {
		err = d.uapi.Close()
		d.dev.Close()
		<-d.done
		// The listener unlinks the socket on Close; make sure.
		if rerr := os.Remove(socketPath(d.name)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	})
	return err
}

// SocketDir is where UAPI sockets live; `wg` looks there.
const SocketDir = "/var/run/wireguard"

func socketPath(name string) string { return SocketDir + "/" + name + ".sock" }

// listenUAPI listens on the UAPI socket of name, replacing a stale one.
// (wireguard-go's own UAPI listener leaks a goroutine on Close.)
func listenUAPI(name string) (*net.UnixListener, error) {
	if err := os.MkdirAll(SocketDir, 0o755); err != nil {
		return nil, fmt.Errorf("making %s: %w", SocketDir, err)
	}
	p := socketPath(name)
	if c, err := net.Dial("unix", p); err == nil {
		c.Close()
		return nil, fmt.Errorf("UAPI socket %s is in use", p)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing stale UAPI socket: %w", err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listening on UAPI socket %s: %w", p, err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("protecting UAPI socket %s: %w", p, err)
	}
	l.SetUnlinkOnClose(true)
	return l, nil
}
