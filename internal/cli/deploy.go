package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/nodeapi"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/rmb"
	"github.com/zos-go/zos/internal/wait"
)

func deployCommand() *command {
	return &command{name: "deploy", summary: "deploy workloads on a node (without --node: one that fits) and wait until they run; a failed deployment is canceled", subs: []*command{
		{name: "zdb", usage: "[--node N | --farm ID --country C --city C] --size SIZE [--mode user|seq] [--password P] [--public] [--name NAME] [--keep-on-error]", summary: "deploy a 0-db namespace", run: deployZDB},
		{name: "volume", usage: "[--node N | --farm ID --country C --city C] --size SIZE [--name NAME] [--keep-on-error]", summary: "deploy a volume", run: deployVolume},
		{name: "vm", usage: "[--node N | --farm ID --country C --city C] --flist URL --network NAME [--name vm] [--cpu 1] [--memory 512M] [--size SIZE] [--entrypoint CMD] [--env K=V]... [--disk SIZE:/mnt]... [--volume SIZE:/mnt]... [--ip A.B.C.D] [--public-ip] [--public-ip6] [--planetary] [--keep-on-error]",
			summary: "deploy a micro-VM booted from a flist, with new disks and volumes", run: deployVM},
		{name: "qsfs", usage: "[--node N | --farm ID --country C --city C] --zdbs CONTRACT [--cache 1G] [--minimal M] [--expected E] [--name qs] [--keep-on-error]",
			summary: "deploy a qsfs over the 0-db namespaces of a zdb deployment (meta* ones hold the metadata)", run: deployQSFS},
		gatewayCommand(),
		{name: "file", usage: "[--node N | --farm ID --country C --city C] [--keep-on-error] FILE", summary: "deploy a deployment from a JSON or YAML file (also: zosctl deploy -f FILE)", run: deployFile},
	}}
}

// deployFlags are the flags of every deploy command.
type deployFlags struct {
	gridFlags
	node    *uint
	timeout *time.Duration
	// place constrains the node picked without --node; nil: the command
	// needs --node.
	place *placeFlags
	// keep keeps the contract of a deployment that failed.
	keep *bool
}

func addDeployFlags(fs *flag.FlagSet, env *Env) deployFlags {
	return deployFlags{
		gridFlags: addGridFlags(fs, env),
		node:      fs.Uint("node", 0, "node id (required)"),
		timeout:   fs.Duration("timeout", 10*time.Minute, "how long to wait for the workloads"),
	}
}

func (f deployFlags) nodeID() (uint32, error) {
	if p := f.place; p != nil && *f.node != 0 && (len(p.farms) > 0 || p.country != "" || p.city != "") {
		return 0, usageError("--farm, --country and --city choose a node: give them or --node, not both")
	}
	return requiredID("node", *f.node)
}

// addPlacedDeployFlags are the flags of deploy commands that pick a node
// when --node is not given, and cancel what they created when the
// deployment fails.
func addPlacedDeployFlags(fs *flag.FlagSet, env *Env) deployFlags {
	f := addDeployFlags(fs, env)
	f.place = addPlaceFlags(fs)
	f.keep = fs.Bool("keep-on-error", false, "keep the contract of a deployment that fails (to inspect it)")
	return f
}

// pickLater reports whether the node is to be picked (no --node given).
func (f deployFlags) pickLater() bool { return *f.node == 0 && f.place != nil }

// requiredID checks the value of a required id flag: given, and an id
// (32 bits).
func requiredID(name string, v uint) (uint32, error) {
	if v == 0 || v > 1<<32-1 {
		return 0, usageError("--%s is required (a positive 32-bit id)", name)
	}
	return uint32(v), nil
}

func parseSizeFlag(name, v string) (uint64, error) {
	if v == "" {
		return 0, usageError("--%s is required", name)
	}
	n, err := gridtypes.ParseSize(v)
	if err != nil {
		return 0, fmt.Errorf("--%s: %w", name, err)
	}
	return n, nil
}

func deployZDB(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("deploy zdb", flag.ContinueOnError)
	f := addPlacedDeployFlags(fs, env)
	size := fs.String("size", "", "namespace size, e.g. 10G (required)")
	mode := fs.String("mode", gridtypes.ZDBModeUser, "user or seq")
	password := fs.String("password", "", "namespace password")
	public := fs.Bool("public", false, "readable without the password")
	name := fs.String("name", "zdb", "workload name")
	if _, err := parseFlags(fs, env, args); err != nil {
		return err
	}
	n, err := parseSizeFlag("size", *size)
	if err != nil {
		return err
	}
	wl := gridtypes.Workload{Name: *name, Type: gridtypes.ZDBType}
	if err := wl.SetData(&gridtypes.ZDB{Size: n, Mode: *mode, Password: *password, Public: *public}); err != nil {
		return err
	}
	return deployWorkloads(ctx, env, f, &gridtypes.Deployment{Workloads: []gridtypes.Workload{wl}})
}

func deployVolume(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("deploy volume", flag.ContinueOnError)
	f := addPlacedDeployFlags(fs, env)
	size := fs.String("size", "", "volume size, e.g. 5G (required)")
	name := fs.String("name", "vol", "workload name")
	if _, err := parseFlags(fs, env, args); err != nil {
		return err
	}
	n, err := parseSizeFlag("size", *size)
	if err != nil {
		return err
	}
	wl := gridtypes.Workload{Name: *name, Type: gridtypes.VolumeType}
	if err := wl.SetData(&gridtypes.Volume{Size: n}); err != nil {
		return err
	}
	return deployWorkloads(ctx, env, f, &gridtypes.Deployment{Workloads: []gridtypes.Workload{wl}})
}

func deployFile(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("deploy file", flag.ContinueOnError)
	f := addPlacedDeployFlags(fs, env)
	file := fs.String("f", "", "deployment file (JSON or YAML)")
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return err
	}
	if *file == "" && len(pos) == 1 {
		*file = pos[0]
	}
	if *file == "" {
		return usageError("a deployment file is required")
	}
	d, err := readDeployment(env, *file)
	if err != nil {
		return err
	}
	return deployWorkloads(ctx, env, f, d)
}

// deployWorkloads completes d (twin, versions, signature requirement),
// signs it, creates its contract, sends it to the node and waits, all
// within --timeout. Through a grid or node restart it asks again; at the
// end it says what the node holds, or what it last knew.
func deployWorkloads(ctx context.Context, env *Env, f deployFlags, d *gridtypes.Deployment) error {
	if f.pickLater() {
		return withSession(ctx, env, f, func(ctx context.Context, s *session) error {
			if err := complete(d, s.twin.ID); err != nil {
				return err // what is wrong with it, before where it could go
			}
			node, err := s.pickNode(ctx, env, f, d, nil)
			if err != nil {
				return err
			}
			return s.deploy(ctx, env, f, node, d)
		})
	}
	node, err := f.nodeID()
	if err != nil {
		return err
	}
	return withSession(ctx, env, f, func(ctx context.Context, s *session) error {
		return s.deploy(ctx, env, f, node, d)
	})
}

// deploy is deployWorkloads within its session.
func (s *session) deploy(ctx context.Context, env *Env, f deployFlags, node uint32, d *gridtypes.Deployment) error {
	if err := complete(d, s.twin.ID); err != nil {
		return err
	}
	if err := d.Sign(s.twin.ID, s.key); err != nil {
		return err
	}
	hash, err := d.Hash()
	if err != nil {
		return err
	}
	capa, err := d.Capacity()
	if err != nil {
		return err
	}
	c, err := s.createContract(ctx, env, f, node, hash, d.Metadata, uint32(capa.IPV4U))
	if err != nil {
		return fmt.Errorf("creating contract: %w", err)
	}
	d.ContractID = c.ID
	progress(env, *f.json, "contract %d created on node %d\n", c.ID, node)
	r := &retrier{env: env, quiet: *f.json, what: fmt.Sprintf("sending the deployment to node %d", node)}
	err = r.do(ctx, func() error {
		err := s.callNode(ctx, node, nodeapi.CmdDeploy, d, nil)
		if r.total > 0 && alreadyDone(err) {
			return nil // an earlier attempt reached the node
		}
		return err
	})
	if err != nil {
		return s.rollback(env, f, c.ID, fmt.Errorf("sending the deployment: %w", err))
	}
	err = s.wait(ctx, env, f, node, d.ContractID, 0)
	if fe := (*failedError)(nil); errors.As(err, &fe) {
		return s.rollback(env, f, c.ID, err)
	}
	return err
}

// failedError is the error of a deployment whose workloads reached a
// final state other than ok.
type failedError struct{ msg string }

func (e *failedError) Error() string { return e.msg }

// rollback cancels the contract of a deployment that failed, unless
// --keep-on-error asks to keep it, and says which.
func (s *session) rollback(env *Env, f deployFlags, contract uint64, cause error) error {
	if f.keep != nil && *f.keep {
		return fmt.Errorf("%w\ncontract %d kept (--keep-on-error): see `zosctl deployment get %d`, cancel it with `zosctl contract cancel %d`",
			cause, contract, contract, contract)
	}
	return s.abandon(env, f, contract, cause)
}

// complete fills in what zosctl sets on a deployment for twin (its twin,
// versions 0, no results, the twin as the one signer unless the file asks
// for others) and validates it.
func complete(d *gridtypes.Deployment, twin uint32) error {
	d.TwinID = twin
	d.Version = 0
	for i := range d.Workloads {
		d.Workloads[i].Version = 0
		d.Workloads[i].Result = gridtypes.Result{}
	}
	if len(d.SignatureRequirement.Requests) == 0 {
		d.SignatureRequirement = gridtypes.SignatureRequirement{
			Requests:       []gridtypes.SignatureRequest{{TwinID: twin, Weight: 1}},
			WeightRequired: 1,
		}
	}
	d.SignatureRequirement.Signatures = nil
	if err := d.Valid(); err != nil {
		return fmt.Errorf("invalid deployment: %w", err)
	}
	return nil
}

// createContract creates the contract of a deployment, through a grid
// restart: an unanswered request is sent again as signed (the registry
// applies it at most once), and when the registry says it applied it
// already, or that it is too old to apply, the contract is looked up by
// the deployment's hash. A spent nonce with no contract behind it (the
// grid stopped between recording the one and writing the other) is looked
// up again after a request's time, then signed anew.
func (s *session) createContract(ctx context.Context, env *Env, f deployFlags, node uint32, hash, metadata string, ips uint32) (registry.Contract, error) {
	r := &retrier{env: env, quiet: *f.json, what: "creating the contract"}
	p, err := s.reg.PrepareNodeContract(node, hash, metadata, ips)
	if err != nil {
		return registry.Contract{}, err
	}
	orphaned := false // a spent nonce without a contract was seen once
	for {
		c, err := s.reg.SendNodeContract(ctx, p)
		switch {
		case err == nil:
			r.ok()
			return c, nil
		case transient(err) && ctx.Err() == nil:
			if !r.failed(ctx, err) {
				return c, fmt.Errorf("%w\n(the grid did not answer: it may have made the contract; see `zosctl contract list --node %d`)", err, node)
			}
			continue
		case transient(err):
			return c, fmt.Errorf("%w\n(the grid did not answer: it may have made the contract; see `zosctl contract list --node %d`)", err, node)
		case r.total > 0 && (errors.Is(err, registry.ErrReplay) || errors.Is(err, registry.ErrExpired)):
			// The answer to an earlier attempt was lost.
			found, ferr := s.contractByHash(ctx, r, node, hash)
			if ferr != nil {
				return c, fmt.Errorf("%w; looking for the contract an earlier attempt made: %w", err, ferr)
			}
			if found.ID != 0 {
				r.ok()
				return found, nil
			}
			if errors.Is(err, registry.ErrReplay) && !orphaned {
				// The grid recorded the request's nonce but holds no
				// contract: it stopped between the two (a crash), or it
				// is still working on it. Past the time a request may
				// take, look once more; none then is none.
				orphaned = true
				progress(env, *f.json, "creating the contract: the grid took the request but holds no contract for it; looking again in %s\n", registry.DefaultTimeout)
				if !wait.Sleep(ctx, registry.DefaultTimeout) {
					return c, fmt.Errorf("%w: the grid took the request but holds no contract for it; deploy again", err)
				}
				continue
			}
			// Never applied (and too old to send again, or its nonce spent
			// by a grid that stopped before making the contract): sign anew.
			if p, err = s.reg.PrepareNodeContract(node, hash, metadata, ips); err != nil {
				return c, err
			}
			orphaned = false
			r.total = 0
		default:
			return c, err
		}
	}
}

// contractByHash returns the newest active contract of the session's twin
// on node for a deployment hash (zero when there is none).
func (s *session) contractByHash(ctx context.Context, r *retrier, node uint32, hash string) (registry.Contract, error) {
	var found registry.Contract
	err := r.do(ctx, func() error {
		cs, err := s.reg.Contracts(ctx, registry.ContractFilter{TwinID: s.twin.ID, NodeID: node, State: registry.StateCreated, Type: registry.TypeNode})
		for _, c := range cs {
			if c.DeploymentHash == hash && c.ID > found.ID {
				found = c
			}
		}
		return err
	})
	return found, err
}

// abandon cancels the contract of a deployment that could not be sent
// (the node, seeing the cancellation, removes whatever it got), and says
// what became of it.
func (s *session) abandon(env *Env, f deployFlags, contract uint64, cause error) error {
	ctx, cancel := context.WithTimeout(context.Background(), gridTimeout)
	defer cancel()
	r := &retrier{env: env, quiet: *f.json, what: fmt.Sprintf("canceling contract %d", contract)}
	err := r.do(ctx, func() error {
		err := s.reg.CancelContract(ctx, contract)
		if r.total > 0 && errors.Is(err, registry.ErrCanceled) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("%w\ncontract %d is still active and could not be canceled (%v): cancel it with `zosctl contract cancel %d`", cause, contract, err, contract)
	}
	return fmt.Errorf("%w\ncontract %d canceled", cause, contract)
}

// progress prints a progress line unless the output is JSON.
func progress(env *Env, asJSON bool, format string, a ...any) {
	if !asJSON {
		fmt.Fprintf(env.Stderr, format, a...)
	}
}

// waitMS is how long one zos.deployment.wait call asks the node to wait.
const waitMS = 5000

// wait asks the node until every workload of the deployment, at version
// minVersion or later, reached a final state, showing progress, then
// prints the results. The node answers zos.deployment.wait as soon as the
// deployment settled (an event, no polling interval to overshoot); one that
// answers early without a settled deployment (it has too many waits
// running) is asked again after a growing delay, and one that does not
// know the command (an older node) is polled with zos.deployment.get. A
// call that fails transiently (the node or the grid restarting) is asked
// again until ctx ends; then the error says what was last seen and how to
// look again.
func (s *session) wait(ctx context.Context, env *Env, f deployFlags, node uint32, contract uint64, minVersion uint32) error {
	seen := map[string]string{}
	live := env.terminal() && !*f.json
	var d gridtypes.Deployment
	var last []string // the states last seen
	r := &retrier{env: env, quiet: *f.json, what: fmt.Sprintf("waiting for node %d", node)}
	delay := 100 * time.Millisecond
	canWait := true
	for {
		t0 := time.Now()
		var err error
		if canWait {
			err = s.callNode(ctx, node, nodeapi.CmdWait, nodeapi.WaitRequest{ContractID: contract, Version: minVersion, WaitMS: waitMS}, &d)
			if errors.Is(err, rmb.ErrUnknownCommand) {
				canWait = false
				continue
			}
		} else {
			err = s.callNode(ctx, node, nodeapi.CmdGet, nodeapi.ContractRequest{ContractID: contract}, &d)
		}
		switch {
		case err == nil:
			r.ok()
		case transient(err) && ctx.Err() == nil:
			if !r.failed(ctx, err) {
				return unsure(node, contract, last, err)
			}
			continue
		case transient(err):
			return unsure(node, contract, last, err)
		default:
			return fmt.Errorf("contract %d: %w\n(see `zosctl deployment get %d`)", contract, err, contract)
		}
		done := d.Version >= minVersion
		var lines []string
		last = last[:0]
		for _, wl := range d.Workloads {
			st := string(wl.Result.State)
			if wl.Result.State.IsAny(gridtypes.StateInit, "") || d.Version < minVersion {
				done = false
				st = "deploying"
			}
			line := fmt.Sprintf("  %-20s %-18s %s", wl.Name, wl.Type, st)
			if wl.Result.Error != "" {
				line += ": " + wl.Result.Error
			}
			lines = append(lines, line)
			last = append(last, wl.Name+" "+st)
			if !live && !*f.json && seen[wl.Name] != st {
				fmt.Fprintln(env.Stderr, strings.TrimSpace(line))
			}
			seen[wl.Name] = st
		}
		if live {
			fmt.Fprintf(env.Stderr, "\r\033[K%s", strings.Join(lines, " |"))
		}
		if done {
			if live {
				fmt.Fprintln(env.Stderr)
			}
			return printResults(env, *f.json, &d)
		}
		if pause := delay - time.Since(t0); pause > 0 {
			select {
			case <-ctx.Done():
				return unsure(node, contract, last, ctx.Err())
			case <-time.After(pause):
			}
		}
		delay = min(delay*2, 2*time.Second)
	}
}

// unsure is the error of a wait that ran out of time: what is known.
func unsure(node uint32, contract uint64, last []string, err error) error {
	return fmt.Errorf("contract %d on node %d: no final state before the timeout (%s): %w\n(the contract is active: see `zosctl deployment get %d`, or cancel it with `zosctl deployment cancel %d`)",
		contract, node, lastSeen(last), err, contract, contract)
}

// lastSeen describes the workload states last seen.
func lastSeen(last []string) string {
	if len(last) == 0 {
		return "no answer from the node yet"
	}
	return "last seen: " + strings.Join(last, ", ")
}

// printResults prints the workloads' results and fails if any is not ok.
func printResults(env *Env, asJSON bool, d *gridtypes.Deployment) error {
	var failed []string
	for _, wl := range d.Workloads {
		if !wl.Result.State.IsOkay() {
			failed = append(failed, fmt.Sprintf("%s: %s %s", wl.Name, wl.Result.State, wl.Result.Error))
		}
	}
	if asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(d); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(env.Stdout, "contract %d, twin %d, version %d\n", d.ContractID, d.TwinID, d.Version)
		for _, wl := range d.Workloads {
			fmt.Fprintf(env.Stdout, "%s (%s): %s\n", wl.Name, wl.Type, describe(&wl))
		}
	}
	if len(failed) > 0 {
		sort.Strings(failed)
		return &failedError{msg: fmt.Sprintf("deployment %d failed: %s", d.ContractID, strings.Join(failed, "; "))}
	}
	return nil
}

// describe renders a workload's result for people.
func describe(wl *gridtypes.Workload) string {
	r := &wl.Result
	if !r.State.IsOkay() {
		return fmt.Sprintf("%s %s", r.State, r.Error)
	}
	switch wl.Type {
	case gridtypes.ZDBType:
		var z gridtypes.ZDBResult
		if err := r.Unmarshal(&z); err == nil {
			return fmt.Sprintf("ok, namespace %s at %s port %d", z.Namespace, strings.Join(z.IPs, ","), z.Port)
		}
	case gridtypes.ZMachineType:
		var z gridtypes.ZMachineResult
		if err := r.Unmarshal(&z); err == nil {
			return "ok, vm at " + z.IP
		}
	case gridtypes.PublicIPType, gridtypes.PublicIPv4Type:
		var p gridtypes.PublicIPResult
		if err := r.Unmarshal(&p); err == nil && !p.IP.IsZero() && !p.IPv6.IsZero() {
			return fmt.Sprintf("ok, public IP %s via %s, IPv6 %s", p.IP, p.Gateway, p.IPv6)
		}
		if err := r.Unmarshal(&p); err == nil && !p.IP.IsZero() {
			return fmt.Sprintf("ok, public IP %s via %s", p.IP, p.Gateway)
		}
		if err := r.Unmarshal(&p); err == nil && !p.IPv6.IsZero() {
			return fmt.Sprintf("ok, public IPv6 %s", p.IPv6)
		}
	case gridtypes.VolumeType:
		var v gridtypes.VolumeResult
		if err := r.Unmarshal(&v); err == nil {
			return "ok, volume " + v.ID
		}
	case gridtypes.QuantumSafeFSType:
		var q gridtypes.QuantumSafeFSResult
		if err := r.Unmarshal(&q); err == nil {
			return "ok, mounted at " + q.Path + ", metrics at " + q.MetricsEndpoint
		}
	case gridtypes.ZMountType:
		var v gridtypes.ZMountResult
		if err := r.Unmarshal(&v); err == nil {
			return "ok, disk " + v.ID
		}
	}
	var buf bytes.Buffer
	if len(r.Data) > 0 && string(r.Data) != "null" && json.Compact(&buf, r.Data) == nil {
		return string(r.State) + " " + buf.String()
	}
	return string(r.State)
}
