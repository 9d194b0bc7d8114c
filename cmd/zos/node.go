package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/gridsync"
	"github.com/zos-go/zos/internal/node/node"
	"github.com/zos-go/zos/internal/node/storage"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/resp"
)

// diskFlags collects repeated --disk TYPE:SIZE flags.
type diskFlags []storage.HostedDisk

func (d *diskFlags) String() string { return fmt.Sprint(*d) }
func (d *diskFlags) Set(v string) error {
	disk, err := storage.ParseHostedDisk(v)
	if err != nil {
		return err
	}
	*d = append(*d, disk)
	return nil
}

// runNode is `zos node`: the node in hosted mode on an existing Linux host.
//
//	zos node --data DIR --grid nats://HOST:4222 --farm-token TOKEN --disk ssd:20G --disk hdd:50G
//	         [--farm ID] [--recreate-missing-disks] [--new-identity] [--disk-check-every 30s] [--qsfs-repair-every 10m]
//	         [--location COUNTRY[,CITY]] [--metrics 127.0.0.1:9100 [--metrics-allow-remote]] [--reserved-mem SIZE] [--listen IP] [--zdb-port 9900] [--uptime-every 40m]
//	         [--egress-allow PREFIX|private|loopback]... [--wake-to IPv4:PORT]... [--planetary-peer URI]... [--grid-key HEX] [--usage-every 1h]
//	         [--update-hub URL --update-root root.json [--update-channel CH] [--update-every D] [--update-gate D]]
func runNode(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("zos node", flag.ContinueOnError)
	var cfg node.Config
	var disks diskFlags
	var reserved, logLevel string
	fs.StringVar(&cfg.DataDir, "data", "", "directory of the node's disks and pools (required)")
	fs.StringVar(&cfg.Grid, "grid", "nats://127.0.0.1:4222", "NATS URL(s) of the grid, comma separated")
	farm := fs.Uint("farm", 0, "farm id to register under (default: the farm token's)")
	fs.StringVar(&cfg.FarmToken, "farm-token", "", "the farmer's consent to join the farm (zosctl farm token FARM); not needed to register again in the node's farm")
	fs.Var(&disks, "disk", "hosted disk TYPE:SIZE (ssd:20G, hdd:50G), repeatable")
	fs.BoolVar(&cfg.ScanHost, "scan-host", false, "claim the machine's free physical disks (real nodes only)")
	fs.BoolVar(&cfg.RecreateMissingDisks, "recreate-missing-disks", false, "make a hosted disk file that went missing or shrank again, empty (its data is lost); without it its pool is shown failed")
	fs.BoolVar(&cfg.NewIdentity, "new-identity", false, "when the node's key is lost although it had pools, take a new key and register as a new node")
	fs.DurationVar(&cfg.DiskCheckEvery, "disk-check-every", 30*time.Second, "how often the pools' health is checked")
	fs.DurationVar(&cfg.QSFSRepairEvery, "qsfs-repair-every", 10*time.Minute, "how often each qsfs checks every shard and rebuilds missing or corrupt ones")
	fs.StringVar(&cfg.Metrics, "metrics", "", "serve Prometheus metrics on HOST:PORT at /metrics (off by default; loopback only unless --metrics-allow-remote)")
	fs.BoolVar(&cfg.MetricsAllowRemote, "metrics-allow-remote", false, "let --metrics listen beyond loopback (put a firewall in front: metrics show what the node runs)")
	location := fs.String("location", "", "where the node stands, COUNTRY[,CITY] (a location the farmer sets wins over it)")
	fs.StringVar(&reserved, "reserved-mem", "", "memory kept for the system (default max(10% RAM, 2G))")
	fs.StringVar(&cfg.ListenIP, "listen", "127.0.0.1", "address workloads are served on")
	fs.IntVar(&cfg.ZDBPort, "zdb-port", resp.ZDBPort, "port of the 0-db server")
	fs.StringVar(&cfg.Prefix, "prefix", "", "prefix of kernel objects, when several nodes share a host")
	fs.StringVar(&cfg.NetNS, "netns", "", "namespace standing for the node's root namespace and uplink (several nodes on one host)")
	fs.StringVar(&cfg.GatewayListen, "gateway-listen", "", "make the node a gateway, its TLS front listening on this address (e.g. :443)")
	fs.StringVar(&cfg.ACMEDirectory, "acme", "", "ACME directory URL the gateway gets certificates from")
	fs.BoolVar(&cfg.GatewaySelfSigned, "gateway-self-signed", false, "without --acme, serve self-signed certificates (tests only)")
	fs.DurationVar(&cfg.UptimeEvery, "uptime-every", 40*time.Minute, "uptime report period")
	fs.DurationVar(&cfg.ResyncEvery, "resync-every", time.Hour, "contract resync period")
	fs.IntVar(&cfg.Workers, "workers", 4, "deployments provisioned at once")
	fs.StringVar(&cfg.VMKernel, "vm-kernel", "", "guest kernel: the directory of its Debian package (zos kernel fetch --dir DIR) or an unpacked tree (lib/modules/VERSION, vmlinux-VERSION); without it the node runs no VMs")
	fs.StringVar(&cfg.Vminit, "vminit", "", "guest init binary (default: vminit next to zos)")
	fs.StringVar(&cfg.Accel, "accel", "auto", "VM accelerator: auto (kvm after a canary boot, else tcg), kvm or tcg")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	clockOffset := fs.Duration("clock-offset", 0, "move the node's clock by this much (tests of clock skew only)")
	upd := addUpdateFlags(fs)
	egressAllow := (*egressFlag)(&cfg.EgressAllow)
	fs.Var(egressAllow, "egress-allow", "let tenants' flists and zlogs reach this prefix, address, \"private\" or \"loopback\" (tests, private farms), repeatable; default: public addresses only")
	fs.Func("planetary-peer", "public yggdrasil peer URI (tcp://HOST:PORT, tls://, quic://), repeatable: run the planetary overlay", func(v string) error {
		cfg.PlanetaryPeers = append(cfg.PlanetaryPeers, v)
		return nil
	})
	fs.Func("wake-to", "where Wake-on-LAN packets for the farm's nodes go, IPv4:PORT (a LAN's broadcast, port 9), repeatable; default: the broadcast of each IPv4 LAN here", func(v string) error {
		ap, err := netip.ParseAddrPort(v)
		if err != nil || !ap.Addr().Is4() {
			return fmt.Errorf("want IPv4:PORT, got %q", v)
		}
		cfg.WakeTargets = append(cfg.WakeTargets, ap)
		return nil
	})
	fs.DurationVar(&cfg.UsageReportEvery, "usage-every", time.Hour, "how often each contract's usage window ends and is reported to the grid (at most a day)")
	fs.Func("grid-key", "the grid's billing key (hex) that signs contract state changes; default: the one kept, else asked once", func(v string) error {
		k, err := gridsync.ParseGridKey(v)
		cfg.GridKey = k
		return err
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if *farm > 1<<32-1 || (*farm == 0 && cfg.FarmToken == "") {
		return fmt.Errorf("--farm-token or --farm is required")
	}
	cfg.FarmID = uint32(*farm)
	cfg.Disks = disks
	if off := *clockOffset; off != 0 {
		cfg.Now = func() time.Time { return time.Now().Add(off) }
	}
	loc, err := registry.ParseLocation(*location)
	if err != nil {
		return fmt.Errorf("--location: %w", err)
	}
	cfg.Location = loc
	if reserved != "" {
		n, err := gridtypes.ParseSize(reserved)
		if err != nil {
			return fmt.Errorf("--reserved-mem: %w", err)
		}
		cfg.ReservedMem = n
	}
	if cfg.DataDir != "" {
		abs, err := filepath.Abs(cfg.DataDir)
		if err != nil {
			return err
		}
		cfg.DataDir = abs
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	err = runNodeUpdating(ctx, cfg, upd, args, log)
	if errors.Is(err, node.ErrStandby) {
		// Hosted standby: the process ends; the host powers the machine
		// down or not, and starts the node again to wake it.
		log.Info("standby_exit")
		return nil
	}
	return err
}
