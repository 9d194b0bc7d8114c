// Command zgrid runs the grid plane: an embedded NATS server with JetStream
// (or a connection to an existing NATS cluster), the registry service, the
// relay's client authentication and the explorer, in one process.
//
// Synopsis:
//
//	zgrid run --data DIR [--listen 127.0.0.1] [--port 4222] [--http-port 8080]
//	          [--monitor-port 0] [--nats URL,...] [--replicas N]
//	          [--name NAME --cluster-port P --routes URL,...]
//	          [--cluster-ca FILE --cluster-cert FILE --cluster-key FILE] [--auth=true]
//	          [--system-key FILE] [--log-level info]
//
// --nats uses an existing NATS cluster (a Debian nats-server, or other zgrid
// processes) instead of the embedded server. --cluster-port and --routes
// make the embedded server a member of a cluster of zgrid processes; use
// --replicas 3 there and the same --system-key file on every member: routes
// authenticate with credentials derived from it, over TLS with certificates
// of a CA derived from it (or of the operator's CA with --cluster-ca,
// --cluster-cert and --cluster-key). --http-port 0 disables the explorer.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "run" {
		fmt.Fprintln(os.Stderr, "usage: zgrid run --data DIR [options] (zgrid run -h for options)")
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
	err = run(ctx, cfg, newLogger(cfg.LogLevel))
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "zgrid: %v\n", err)
		os.Exit(1)
	}
}

// parseFlags reads the flags of zgrid run into a validated Config.
func parseFlags(args []string, stderr io.Writer) (Config, error) {
	fs := flag.NewFlagSet("zgrid run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	var natsURLs, routes string
	fs.StringVar(&cfg.DataDir, "data", "", "data directory (JetStream store, system key); required")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1", "address of the NATS client, cluster and HTTP listeners")
	fs.IntVar(&cfg.Port, "port", 4222, "NATS client port")
	fs.IntVar(&cfg.HTTPPort, "http-port", 8080, "explorer HTTP port (0: no explorer)")
	fs.IntVar(&cfg.HubPort, "hub", 0, "flist hub HTTP port (0: no hub); data under DATA/hub")
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
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.NATS = splitList(natsURLs)
	cfg.Routes = splitList(routes)
	return cfg, cfg.Validate()
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
