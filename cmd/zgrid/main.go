// Command zgrid runs the grid plane: an embedded NATS server with JetStream
// (or a connection to an existing NATS cluster), the registry service, the
// relay's client authentication and the explorer, in one process.
//
// Synopsis:
//
//	zgrid run --data DIR [--listen 127.0.0.1] [--port 4222] [--http-port 8080]
//	          [--metrics 127.0.0.1:9101 [--metrics-allow-remote]]
//	          [--monitor-port 0] [--nats URL,...] [--replicas N]
//	          [--name NAME --cluster-port P --routes URL,...]
//	          [--cluster-ca FILE --cluster-cert FILE --cluster-key FILE] [--auth=true]
//	          [--system-key FILE] [--store-reserve auto] [--log-level info]
//	          [--hub PORT [--release-twins ID,...] [--boot-grid URL] [--boot-root FILE]]
//	zgrid lab up --nodes N --dir DIR [--zos PATH] [--ssd 8G] [--hdd 3G] [--node-arg ARG]...
//	zgrid lab down --dir DIR
//
// --nats uses an existing NATS cluster (a Debian nats-server, or other zgrid
// processes) instead of the embedded server. --cluster-port and --routes
// make the embedded server a member of a cluster of zgrid processes; use
// --replicas 3 there and the same --system-key file on every member: routes
// authenticate with credentials derived from it, over TLS with certificates
// of a CA derived from it (or of the operator's CA with --cluster-ca,
// --cluster-cert and --cluster-key). --http-port 0 disables the explorer.
//
// --store-reserve is the free space kept on the file system of the
// embedded server's store (DATA/jetstream): below it the registry refuses
// every write at once ("grid store full: N MiB free, reserve M MiB") and
// keeps serving reads; zgrid logs store_low and store_ok as it crosses it,
// the explorer's /stats shows it, and writes resume by themselves once
// there is room. "auto" keeps the smaller of 64 MiB and 5% of the file
// system, "0" none; else a size (512KiB, 64MiB, 1GiB or bytes).
//
// The grid itself is internal/gridd; this command parses its flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/zos-go/zos/internal/gridd"
	"github.com/zos-go/zos/internal/natsd"
)

func main() {
	if len(os.Args) >= 2 && os.Args[1] == "lab" {
		if err := runLab(os.Args[2:], os.Stdout, os.Stderr); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				os.Exit(0)
			}
			fmt.Fprintf(os.Stderr, "zgrid lab: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) < 2 || os.Args[1] != "run" {
		fmt.Fprintln(os.Stderr, "usage: zgrid run --data DIR [options] (zgrid run -h for options)")
		fmt.Fprintln(os.Stderr, "       zgrid lab up --nodes N --dir DIR | zgrid lab down --dir DIR (a grid and N nodes on this machine, root)")
		os.Exit(2)
	}
	cfg, err := parseFlags(os.Args[2:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "zgrid: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = gridd.Run(ctx, cfg, newLogger(cfg.LogLevel))
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "zgrid: %v\n", err)
		os.Exit(1)
	}
}

// parseFlags reads the flags of zgrid run into a validated Config.
func parseFlags(args []string, stderr io.Writer) (gridd.Config, error) {
	fs := flag.NewFlagSet("zgrid run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg gridd.Config
	var natsURLs, routes string
	fs.StringVar(&cfg.DataDir, "data", "", "data directory (JetStream store, system key); required")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1", "address of the NATS client, cluster and HTTP listeners")
	fs.IntVar(&cfg.Port, "port", 4222, "NATS client port")
	fs.IntVar(&cfg.HTTPPort, "http-port", 8080, "explorer HTTP port (0: no explorer)")
	fs.IntVar(&cfg.HubPort, "hub", 0, "flist hub HTTP port (0: no hub); data under DATA/hub")
	fs.Func("release-twins", "comma-separated twin ids that may publish releases to the hub (default: none)", func(v string) error {
		for _, f := range splitList(v) {
			n, err := strconv.ParseUint(f, 10, 32)
			if err != nil || n == 0 {
				return fmt.Errorf("bad twin id %q", f)
			}
			cfg.ReleaseTwins = append(cfg.ReleaseTwins, uint32(n))
		}
		return nil
	})
	fs.Func("treasury-twins", "comma-separated twin ids that may deposit to balances (default: none)", func(v string) error {
		for _, f := range splitList(v) {
			n, err := strconv.ParseUint(f, 10, 32)
			if err != nil || n == 0 {
				return fmt.Errorf("bad twin id %q", f)
			}
			cfg.TreasuryTwins = append(cfg.TreasuryTwins, uint32(n))
		}
		return nil
	})
	fs.DurationVar(&cfg.BillingPeriod, "billing-period", time.Hour, "how often contracts are billed (one leader in a cluster)")
	fs.DurationVar(&cfg.GracePeriod, "grace-period", 14*24*time.Hour, "how long a contract that cannot pay is kept paused before it is deleted")
	fs.StringVar(&cfg.BootGrid, "boot-grid", "", "grid URL network-booted nodes get from the hub's /boot/FARM.ipxe (default: nats://HOST:PORT, HOST as they reached the hub)")
	fs.Func("boot-root", "release root.json (zosctl release init: DIR/metadata/1.root.json) the boot server trusts; by default the first root published to the hub", func(v string) error {
		b, err := os.ReadFile(v)
		if err != nil {
			return err
		}
		cfg.BootRoot = b
		return nil
	})
	fs.IntVar(&cfg.MonitorPort, "monitor-port", 0, "NATS monitoring HTTP port (0: off)")
	fs.StringVar(&natsURLs, "nats", "", "comma-separated URLs of an existing NATS cluster (no embedded server)")
	fs.IntVar(&cfg.Replicas, "replicas", 1, "replicas of the registry's buckets and stream")
	fs.StringVar(&cfg.Name, "name", "", "server name, unique in a cluster (default from the port)")
	fs.StringVar(&cfg.ClusterName, "cluster-name", "zgrid", "cluster name")
	fs.IntVar(&cfg.ClusterPort, "cluster-port", 0, "route port of a cluster of zgrid processes (0: no cluster)")
	fs.StringVar(&routes, "routes", "", "comma-separated nats-route://host:port of the cluster members (no credentials: they come from the system key)")
	fs.StringVar(&cfg.ClusterCA, "cluster-ca", "", "PEM CA certificates of the routes, instead of the CA derived from the system key")
	fs.StringVar(&cfg.ClusterCert, "cluster-cert", "", "PEM route certificate of this member, signed by --cluster-ca")
	fs.StringVar(&cfg.ClusterKey, "cluster-key", "", "PEM key of --cluster-cert")
	fs.BoolVar(&cfg.Auth, "auth", true, "embedded server: clients authenticate with their twin key (relay rules)")
	fs.StringVar(&cfg.SystemKey, "system-key", "", "key file of this grid's own connections (default DATA/system.key; share it across a cluster)")
	fs.Func("store-reserve", "free space kept on the store's file system, below which writes are refused: auto (min of 64MiB and 5%), 0 (none) or a size (64MiB)", func(v string) error {
		n, err := parseReserve(v)
		cfg.StoreReserve = n
		return err
	})
	fs.StringVar(&cfg.Metrics, "metrics", "", "serve Prometheus metrics on HOST:PORT at /metrics (off by default; loopback only unless --metrics-allow-remote)")
	fs.BoolVar(&cfg.MetricsAllowRemote, "metrics-allow-remote", false, "let --metrics listen beyond loopback (put a firewall in front: metrics show the grid's traffic)")
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return gridd.Config{}, err
	}
	if fs.NArg() > 0 {
		return gridd.Config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.NATS = splitList(natsURLs)
	cfg.Routes = splitList(routes)
	return cfg, cfg.Validate()
}

// parseReserve reads --store-reserve into natsd.Config.StoreReserve: 0
// for auto, natsd.NoReserve for none, else bytes.
func parseReserve(v string) (int64, error) {
	switch v {
	case "auto":
		return 0, nil
	case "0":
		return natsd.NoReserve, nil
	}
	num, unit := v, int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			num, unit = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/unit {
		return 0, fmt.Errorf("%q: want auto, 0 or a size such as 512KiB, 64MiB, 1GiB or bytes", v)
	}
	if n == 0 {
		return natsd.NoReserve, nil
	}
	return n * unit, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
