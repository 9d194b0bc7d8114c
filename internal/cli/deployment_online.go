package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/nodeapi"
	"github.com/zos-go/zos/internal/registry"
)

// deploymentOnline returns the deployment commands that talk to nodes.
func deploymentOnline() []*command {
	return []*command{
		{name: "list", usage: "--node N [--json]", summary: "list your deployments on a node", run: deploymentList},
		{name: "get", usage: "CONTRACT [--json]", summary: "show a deployment and its workloads' results", run: deploymentGet},
		{name: "changes", usage: "CONTRACT [--json]", summary: "show every state change of a deployment's workloads", run: deploymentChanges},
		{name: "update", usage: "-f FILE CONTRACT", summary: "change a deployment to what FILE describes and wait", run: deploymentUpdate},
		{name: "cancel", usage: "CONTRACT", summary: "cancel a deployment's contract and wait until the node removed it", run: deploymentCancel},
	}
}

// nodeContract opens a session and returns the node contract id names.
func nodeContract(ctx context.Context, f gridFlags, id uint64) (*session, registry.Contract, error) {
	s, err := openSession(ctx, f, true)
	if err != nil {
		return nil, registry.Contract{}, err
	}
	c, err := s.nodeContract(ctx, id)
	if err != nil {
		s.Close()
		return nil, c, err
	}
	return s, c, nil
}

// nodeContract returns the node contract id names.
func (s *session) nodeContract(ctx context.Context, id uint64) (registry.Contract, error) {
	c, err := s.reg.Contract(ctx, id)
	if err != nil {
		return c, fmt.Errorf("getting contract %d: %w", id, err)
	}
	if c.Type != registry.TypeNode {
		return c, fmt.Errorf("contract %d is a %s contract, not a node contract", id, c.Type)
	}
	return c, nil
}

func printJSON(env *Env, v any) error {
	enc := json.NewEncoder(env.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func deploymentList(ctx context.Context, env *Env, args []string) error {
	var l []gridtypes.Deployment
	asJSON, err := askNode(ctx, env, args, "deployment list", nodeapi.CmdList, &l)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(env, l)
	}
	var rows [][]string
	for _, d := range l {
		states := map[gridtypes.ResultState]int{}
		for _, wl := range d.Workloads {
			states[wl.Result.State]++
		}
		var b bytes.Buffer
		for _, st := range []gridtypes.ResultState{gridtypes.StateOk, gridtypes.StateInit, gridtypes.StateError, gridtypes.StateUnChanged, gridtypes.StatePaused, gridtypes.StateDeleted} {
			if states[st] > 0 {
				fmt.Fprintf(&b, "%s=%d ", st, states[st])
			}
		}
		rows = append(rows, []string{fmt.Sprint(d.ContractID), fmt.Sprint(d.Version), fmt.Sprint(len(d.Workloads)), b.String()})
	}
	return table(env.Stdout, "CONTRACT\tVERSION\tWORKLOADS\tSTATES", rows)
}

// askNode parses --node and asks that node cmd, decoding the answer into
// resp.
func askNode(ctx context.Context, env *Env, args []string, name, cmd string, resp any) (asJSON bool, err error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	f := addDeployFlags(fs, env)
	if _, err := parseFlags(fs, env, args); err != nil {
		return false, err
	}
	node, err := f.nodeID()
	if err != nil {
		return false, err
	}
	return *f.json, callNodeOnce(ctx, f.gridFlags, node, cmd, nil, resp)
}

// askContract parses CONTRACT, finds its node and asks it cmd about the
// contract, decoding the answer into resp.
func askContract(ctx context.Context, env *Env, args []string, name, cmd string, resp any) (c registry.Contract, asJSON bool, err error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	f := addGridFlags(fs, env)
	id, err := oneIDArg(fs, env, args, "contract id", 64)
	if err != nil {
		return c, false, err
	}
	s, c, err := nodeContract(ctx, f, id)
	if err != nil {
		return c, false, err
	}
	defer s.Close()
	return c, *f.json, s.callNode(ctx, c.NodeID, cmd, nodeapi.ContractRequest{ContractID: id}, resp)
}

func deploymentGet(ctx context.Context, env *Env, args []string) error {
	var d gridtypes.Deployment
	c, asJSON, err := askContract(ctx, env, args, "deployment get", nodeapi.CmdGet, &d)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(env, d)
	}
	fmt.Fprintf(env.Stdout, "contract %d on node %d, twin %d, version %d\n", d.ContractID, c.NodeID, d.TwinID, d.Version)
	for _, wl := range d.Workloads {
		fmt.Fprintf(env.Stdout, "%s (%s): %s\n", wl.Name, wl.Type, describe(&wl))
	}
	return nil
}

func deploymentChanges(ctx context.Context, env *Env, args []string) error {
	var ch []gridtypes.Workload
	_, asJSON, err := askContract(ctx, env, args, "deployment changes", nodeapi.CmdChanges, &ch)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(env, ch)
	}
	var rows [][]string
	for _, wl := range ch {
		rows = append(rows, []string{wl.Result.Created.Time().UTC().Format(time.RFC3339), wl.Name, fmt.Sprint(wl.Version), string(wl.Result.State), wl.Result.Error})
	}
	return table(env.Stdout, "TIME\tWORKLOAD\tVERSION\tSTATE\tMESSAGE", rows)
}

func deploymentUpdate(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("deployment update", flag.ContinueOnError)
	f := addDeployFlags(fs, env)
	file := fs.String("f", "", "the new deployment (JSON or YAML; versions and signatures are filled in)")
	id, err := oneIDArg(fs, env, args, "contract id", 64)
	if err != nil {
		return err
	}
	if *file == "" {
		return usageError("-f FILE is required")
	}
	want, err := readDeployment(env, *file)
	if err != nil {
		return err
	}
	return withContract(ctx, env, f, id, func(ctx context.Context, s *session, c registry.Contract) error {
		return s.update(ctx, env, f, c, want)
	})
}

// withContract runs fn within --timeout with a session and the node
// contract id names, then closes the session: the preamble of the
// commands that change a deployment and wait.
func withContract(ctx context.Context, env *Env, f deployFlags, id uint64, fn func(ctx context.Context, s *session, c registry.Contract) error) error {
	return withSession(ctx, env, f, func(ctx context.Context, s *session) error {
		var c registry.Contract
		r := &retrier{env: env, quiet: *f.json, what: fmt.Sprintf("getting contract %d", id)}
		if err := r.do(ctx, func() (err error) {
			c, err = s.nodeContract(ctx, id)
			return err
		}); err != nil {
			return err
		}
		return fn(ctx, s, c)
	})
}

// withSession runs fn within --timeout with a session (waiting for the
// grid when it is down), then closes the session.
func withSession(ctx context.Context, env *Env, f deployFlags, fn func(ctx context.Context, s *session) error) error {
	ctx, cancel := context.WithTimeout(ctx, *f.timeout)
	defer cancel()
	s, err := openSessionWaiting(ctx, env, f.gridFlags)
	if err != nil {
		return err
	}
	defer s.Close()
	return fn(ctx, s)
}

// update changes the deployment of contract c to want and waits.
func (s *session) update(ctx context.Context, env *Env, f deployFlags, c registry.Contract, want *gridtypes.Deployment) error {
	id := c.ID
	r := &retrier{env: env, quiet: *f.json, what: fmt.Sprintf("updating contract %d on node %d", id, c.NodeID)}
	var old gridtypes.Deployment
	if err := r.do(ctx, func() error {
		return s.callNode(ctx, c.NodeID, nodeapi.CmdGet, nodeapi.ContractRequest{ContractID: id}, &old)
	}); err != nil {
		return err
	}
	d, err := nextVersion(&old, want)
	if err != nil {
		return err
	}
	if err := d.Sign(s.twin.ID, s.key); err != nil {
		return err
	}
	hash, err := d.Hash()
	if err != nil {
		return err
	}
	// Setting the contract's hash again to the same value changes
	// nothing: it may be asked again.
	if err := r.do(ctx, func() error {
		_, err := s.reg.UpdateNodeContract(ctx, id, hash, d.Metadata)
		return err
	}); err != nil {
		return fmt.Errorf("updating contract %d: %w", id, err)
	}
	if err := r.do(ctx, func() error {
		err := s.callNode(ctx, c.NodeID, nodeapi.CmdUpdate, d, nil)
		if err != nil && r.total > 0 && !transient(err) {
			// Refused after a lost attempt: it may be the node
			// already has this version.
			var now gridtypes.Deployment
			if gerr := s.callNode(ctx, c.NodeID, nodeapi.CmdGet, nodeapi.ContractRequest{ContractID: id}, &now); gerr == nil && now.Version >= d.Version {
				return nil
			}
		}
		return err
	}); err != nil {
		return fmt.Errorf("sending the update of contract %d (the contract has the new hash: send it again with the same file): %w", id, err)
	}
	return s.wait(ctx, env, f, c.NodeID, id, d.Version)
}

// nextVersion makes the update of old to want: version+1, unchanged
// workloads keep their version, changed and new ones get the new version,
// signatures are reset.
func nextVersion(old, want *gridtypes.Deployment) (*gridtypes.Deployment, error) {
	d := want.Clone()
	if d == nil {
		return nil, fmt.Errorf("copying deployment")
	}
	d.TwinID, d.ContractID, d.Version = old.TwinID, old.ContractID, old.Version+1
	if len(d.SignatureRequirement.Requests) == 0 {
		d.SignatureRequirement = old.SignatureRequirement
	}
	d.SignatureRequirement.Signatures = nil
	for i := range d.Workloads {
		wl := &d.Workloads[i]
		wl.Result = gridtypes.Result{}
		wl.Version = d.Version
		prev := old.Get(wl.Name)
		if prev == nil {
			continue
		}
		var a, b bytes.Buffer
		cand := *wl
		cand.Version = prev.Version
		if err := prev.Challenge(&a); err != nil {
			return nil, err
		}
		if err := cand.Challenge(&b); err != nil {
			return nil, err
		}
		if bytes.Equal(a.Bytes(), b.Bytes()) {
			wl.Version = prev.Version
		}
	}
	if err := d.Valid(); err != nil {
		return nil, fmt.Errorf("invalid deployment: %w", err)
	}
	return d, nil
}

func deploymentCancel(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("deployment cancel", flag.ContinueOnError)
	f := addDeployFlags(fs, env)
	id, err := oneIDArg(fs, env, args, "contract id", 64)
	if err != nil {
		return err
	}
	return withContract(ctx, env, f, id, func(ctx context.Context, s *session, c registry.Contract) error {
		return s.cancel(ctx, env, f, c)
	})
}

// cancel cancels contract c and waits until its node removed the
// deployment.
func (s *session) cancel(ctx context.Context, env *Env, f deployFlags, c registry.Contract) error {
	id := c.ID
	// Canceling is repeatable: a canceled contract after a lost attempt
	// is what was asked.
	rg := &retrier{env: env, quiet: *f.json, what: fmt.Sprintf("canceling contract %d", id)}
	if err := rg.do(ctx, func() error {
		err := s.reg.CancelContract(ctx, id)
		if rg.total > 0 && errors.Is(err, registry.ErrCanceled) {
			return nil
		}
		return err
	}); err != nil {
		return fmt.Errorf("canceling contract %d: %w", id, err)
	}
	progress(env, *f.json, "contract %d canceled, waiting for node %d to remove the deployment\n", id, c.NodeID)
	r := &retrier{env: env, quiet: *f.json, what: fmt.Sprintf("waiting for node %d", c.NodeID)}
	var last []string
	for {
		var d gridtypes.Deployment
		err := s.callNode(ctx, c.NodeID, nodeapi.CmdGet, nodeapi.ContractRequest{ContractID: id}, &d)
		switch {
		case err == nil:
			r.ok()
		case transient(err) && ctx.Err() == nil && r.failed(ctx, err):
			continue
		case transient(err):
			return fmt.Errorf("contract %d is canceled; node %d did not confirm the removal before the timeout (%s): %w\n(the node removes it when it sees the cancellation: see `zosctl deployment get %d`)",
				id, c.NodeID, lastSeen(last), err, id)
		default:
			return fmt.Errorf("contract %d is canceled; asking node %d: %w", id, c.NodeID, err)
		}
		gone := true
		last = last[:0]
		for _, wl := range d.Workloads {
			last = append(last, wl.Name+" "+string(wl.Result.State))
			if wl.Result.State != gridtypes.StateDeleted && wl.Result.State != gridtypes.StateError {
				gone = false
			}
		}
		if gone {
			if *f.json {
				return printJSON(env, d)
			}
			fmt.Fprintf(env.Stdout, "contract %d canceled, %d workloads removed\n", id, len(d.Workloads))
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("contract %d is canceled; node %d did not remove the deployment before the timeout (%s): %w\n(see `zosctl deployment get %d`)",
				id, c.NodeID, lastSeen(last), ctx.Err(), id)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
