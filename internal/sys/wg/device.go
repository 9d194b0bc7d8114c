package wg

import (
	"errors"
	"fmt"
	"log/slog"
)

// Mode chooses the WireGuard implementation of a device.
type Mode string

const (
	// Auto uses kernel WireGuard when the kernel has it and wireguard-go
	// otherwise.
	Auto Mode = ""
	// Kernel uses kernel WireGuard only.
	Kernel Mode = "kernel"
	// Userspace uses wireguard-go only.
	Userspace Mode = "userspace"
)

// ParseMode parses "auto" (or ""), "kernel" or "userspace".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "", "auto":
		return Auto, nil
	case string(Kernel), string(Userspace):
		return Mode(s), nil
	}
	return Auto, fmt.Errorf("wireguard mode %q: want auto, kernel or userspace", s)
}

// ErrKernelUnsupported: the kernel has no WireGuard (no module, or module
// loading is not supported).
var ErrKernelUnsupported = errors.New("kernel has no wireguard")

// impl is one implementation's device.
type impl interface {
	configure(Config) error
	close() error
}

// Device is a running WireGuard device, kernel or userspace.
type Device struct {
	impl
	kind Mode
}

// Kind says which implementation runs the device: Kernel or Userspace.
func (d *Device) Kind() Mode { return d.kind }

// Configure replaces the device's key, port and peers and brings it up.
func (d *Device) Configure(c Config) error { return d.configure(c) }

// Close removes the device: its interface disappears and its sockets close.
func (d *Device) Close() error { return d.close() }

// Start creates WireGuard interface name inside namespace tunNS with its UDP
// sockets in sockNS ("" for the caller's): a kernel one where the kernel has
// WireGuard, wireguard-go otherwise (Auto). The device is down until
// Configure.
func Start(name, tunNS, sockNS string, log *slog.Logger) (*Device, error) {
	return StartMode(Auto, name, tunNS, sockNS, log)
}

// StartMode is Start with the implementation chosen by mode.
func StartMode(mode Mode, name, tunNS, sockNS string, log *slog.Logger) (*Device, error) {
	d, err := choose(mode,
		func() (impl, error) { return startKernel(name, tunNS, sockNS) },
		func() (impl, error) { return startUser(name, tunNS, sockNS, log) },
		func(err error) { log.Debug("kernel wireguard unavailable, using wireguard-go", "wg", name, "err", err) })
	if err != nil {
		return nil, err
	}
	log.Info("wireguard device", "wg", name, "kind", string(d.kind))
	return d, nil
}

// choose starts a device with kernel or user as mode says: Auto tries the
// kernel first and falls back to userspace only when the kernel has no
// WireGuard (fallback is told why); any other kernel error is returned.
func choose(mode Mode, kernel, user func() (impl, error), fallback func(error)) (*Device, error) {
	switch mode {
	case Kernel:
		i, err := kernel()
		if err != nil {
			return nil, err
		}
		return &Device{i, Kernel}, nil
	case Userspace:
		i, err := user()
		if err != nil {
			return nil, err
		}
		return &Device{i, Userspace}, nil
	case Auto:
		i, err := kernel()
		if err == nil {
			return &Device{i, Kernel}, nil
		}
		if !errors.Is(err, ErrKernelUnsupported) {
			return nil, err
		}
		fallback(err)
		i, err = user()
		if err != nil {
			return nil, err
		}
		return &Device{i, Userspace}, nil
	}
	return nil, fmt.Errorf("wireguard mode %q: want auto, kernel or userspace", mode)
}
