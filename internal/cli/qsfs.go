package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/nodeapi"
)

func qsfsCommand() *command {
	return &command{name: "qsfs", summary: "quantum-safe file systems", subs: []*command{
		{name: "status", usage: "CONTRACT [--name qs]", summary: "show a qsfs's path and its metrics: backends up, bytes stored, cache, upload backlog", run: qsfsStatus},
	}}
}

// deployQSFS deploys a qsfs over the 0-db namespaces of a zdb deployment:
// its workloads named meta* are the meta backends, each other one a group
// of its own. The keys are made here, random; they live in the qsfs
// deployment (zosctl deployment get --json shows them).
func deployQSFS(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("deploy qsfs", flag.ContinueOnError)
	f := addPlacedDeployFlags(fs, env)
	zdbs := fs.Uint64("zdbs", 0, "contract of the zdb deployment holding the backends (required)")
	cache := fs.String("cache", "1G", "local cache size")
	name := fs.String("name", "qs", "workload name")
	minimal := fs.Uint("minimal", 0, "shards that rebuild the data (default: data backends - 1)")
	expected := fs.Uint("expected", 0, "shards written (default: the data backends)")
	if _, err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if *zdbs == 0 {
		return usageError("--zdbs is required (the contract of the zdb deployment)")
	}
	size, err := parseSizeFlag("cache", *cache)
	if err != nil {
		return err
	}
	if !f.pickLater() {
		if _, err := f.nodeID(); err != nil {
			return err
		}
	}
	return withSession(ctx, env, f, func(ctx context.Context, s *session) error {
		c, err := s.nodeContract(ctx, *zdbs)
		if err != nil {
			return err
		}
		var zd gridtypes.Deployment
		if err := s.callNode(ctx, c.NodeID, nodeapi.CmdGet, nodeapi.ContractRequest{ContractID: *zdbs}, &zd); err != nil {
			return fmt.Errorf("getting the zdb deployment: %w", err)
		}
		conf, err := qsfsConfig(&zd, uint32(*minimal), uint32(*expected))
		if err != nil {
			return err
		}
		wl := gridtypes.Workload{Name: *name, Type: gridtypes.QuantumSafeFSType}
		if err := wl.SetData(&gridtypes.QuantumSafeFS{Cache: gridtypes.Unit(size), Config: conf}); err != nil {
			return err
		}
		d := &gridtypes.Deployment{Workloads: []gridtypes.Workload{wl}}
		node := uint32(*f.node)
		if f.pickLater() {
			if node, err = s.pickNode(ctx, env, f, d, nil); err != nil {
				return err
			}
		}
		return s.deploy(ctx, env, f, node, d)
	})
}

// qsfsConfig builds a qsfs config over zd's zdb workloads, with new keys.
func qsfsConfig(zd *gridtypes.Deployment, minimal, expected uint32) (gridtypes.QuantumSafeConfig, error) {
	var conf gridtypes.QuantumSafeConfig
	for _, wl := range zd.Workloads {
		if wl.Type != gridtypes.ZDBType {
			continue
		}
		if !wl.Result.State.IsOkay() {
			return conf, fmt.Errorf("zdb %s is %s, not running", wl.Name, wl.Result.State)
		}
		var z gridtypes.ZDB
		var r gridtypes.ZDBResult
		if err := json.Unmarshal(wl.Data, &z); err != nil {
			return conf, fmt.Errorf("zdb %s: %w", wl.Name, err)
		}
		if err := wl.Result.Unmarshal(&r); err != nil || len(r.IPs) == 0 {
			return conf, fmt.Errorf("zdb %s: no address in its result", wl.Name)
		}
		b := gridtypes.ZdbBackend{Address: net.JoinHostPort(r.IPs[0], strconv.Itoa(int(r.Port))), Namespace: r.Namespace, Password: z.Password}
		if strings.HasPrefix(wl.Name, "meta") {
			conf.Meta.Config.Backends = append(conf.Meta.Config.Backends, b)
		} else {
			conf.Groups = append(conf.Groups, gridtypes.ZdbGroup{Backends: []gridtypes.ZdbBackend{b}})
		}
	}
	n := uint32(len(conf.Groups))
	if len(conf.Meta.Config.Backends) == 0 || n < 2 {
		return conf, fmt.Errorf("deployment %d has %d data and %d meta zdbs; want at least 2 data and 1 meta (named meta*)", zd.ContractID, n, len(conf.Meta.Config.Backends))
	}
	if expected == 0 {
		expected = n
	}
	if minimal == 0 {
		minimal = expected - 1
	}
	conf.MinimalShards, conf.ExpectedShards = minimal, expected
	conf.RedundantGroups, conf.RedundantNodes = 1, 1
	conf.Meta.Type = "zdb"
	conf.Meta.Config.Prefix = "qsfs"
	conf.Compression.Algorithm = "snappy"
	for _, k := range []*gridtypes.Encryption{&conf.Encryption, &conf.Meta.Config.Encryption} {
		k.Algorithm = "AES"
		k.Key = make([]byte, 32)
		if _, err := rand.Read(k.Key); err != nil {
			return conf, err
		}
	}
	return conf, nil
}

// qsfsFigures are the metrics qsfs status prints, in order.
var qsfsFigures = []struct{ metric, label string }{
	{"qsfs_objects", "objects"},
	{"qsfs_stored_bytes", "bytes stored"},
	{"qsfs_cache_bytes", "cache used"},
	{"qsfs_cache_max_bytes", "cache size"},
	{"qsfs_upload_backlog_bytes", "upload backlog (bytes)"},
	{"qsfs_shards_missing_total", "shards found missing"},
	{"qsfs_shards_corrupt_total", "shards found corrupt"},
	{"qsfs_shards_repaired_total", "shards repaired"},
}

func qsfsStatus(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("qsfs status", flag.ContinueOnError)
	f := addGridFlags(fs, env)
	name := fs.String("name", "qs", "the qsfs workload's name")
	id, err := oneIDArg(fs, env, args, "contract id", 64)
	if err != nil {
		return err
	}
	s, c, err := nodeContract(ctx, f, id)
	if err != nil {
		return err
	}
	var d gridtypes.Deployment
	err = s.callNode(ctx, c.NodeID, nodeapi.CmdGet, nodeapi.ContractRequest{ContractID: id}, &d)
	s.Close()
	if err != nil {
		return err
	}
	wl := d.Get(*name)
	if wl == nil || wl.Type != gridtypes.QuantumSafeFSType {
		return fmt.Errorf("deployment %d has no qsfs named %q", d.ContractID, *name)
	}
	if !wl.Result.State.IsOkay() {
		return fmt.Errorf("qsfs %s is %s: %s", *name, wl.Result.State, wl.Result.Error)
	}
	var r gridtypes.QuantumSafeFSResult
	if err := wl.Result.Unmarshal(&r); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "path %s\nmetrics %s\n", r.Path, r.MetricsEndpoint)
	m, err := scrapeMetrics(ctx, r.MetricsEndpoint)
	if err != nil {
		return fmt.Errorf("reading the metrics (reachable from the node's network only): %w", err)
	}
	up, total := 0, 0
	for k, v := range m {
		if strings.HasPrefix(k, "qsfs_backend_up{") {
			total++
			if v == "1" {
				up++
			}
		}
	}
	fmt.Fprintf(env.Stdout, "backends up %d of %d\n", up, total)
	for _, f := range qsfsFigures {
		fmt.Fprintf(env.Stdout, "%s %s\n", f.label, m[f.metric])
	}
	return nil
}

// scrapeMetrics reads a Prometheus text page into sample -> value.
func scrapeMetrics(ctx context.Context, url string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 1<<20))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			out[line[:i]] = line[i+1:]
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no metrics in the answer")
	}
	return out, sc.Err()
}
