package cli

import (
	"bytes"
	"context"
	"encoding/json"
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
	c, err := s.reg.Contract(ctx, id)
	if err != nil {
		s.Close()
		return nil, c, fmt.Errorf("getting contract %d: %w", id, err)
	}
	if c.Type != registry.TypeNode {
		s.Close()
		return nil, c, fmt.Errorf("contract %d is a %s contract, not a node contract", id, c.Type)
	}
	return s, c, nil
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
	s, c, err := nodeContract(ctx, f.gridFlags, id)
	if err != nil {
		return err
	}
	defer s.Close()
	var old gridtypes.Deployment
	if err := s.callNode(ctx, c.NodeID, nodeapi.CmdGet, nodeapi.ContractRequest{ContractID: id}, &old); err != nil {
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
	if _, err := s.reg.UpdateNodeContract(ctx, id, hash, d.Metadata); err != nil {
		return fmt.Errorf("updating contract %d: %w", id, err)
	}
	if err := s.callNode(ctx, c.NodeID, nodeapi.CmdUpdate, d, nil); err != nil {
		return err
	}
	return s.wait(ctx, env, f, c.NodeID, id)
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
	s, c, err := nodeContract(ctx, f.gridFlags, id)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.reg.CancelContract(ctx, id); err != nil {
		return fmt.Errorf("canceling contract %d: %w", id, err)
	}
	progress(env, *f.json, "contract %d canceled, waiting for node %d to remove the deployment\n", id, c.NodeID)
	wctx, cancel := context.WithTimeout(ctx, *f.timeout)
	defer cancel()
	for {
		var d gridtypes.Deployment
		err := s.callNode(wctx, c.NodeID, nodeapi.CmdGet, nodeapi.ContractRequest{ContractID: id}, &d)
		if err != nil {
			return err
		}
		gone := true
		for _, wl := range d.Workloads {
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
		case <-wctx.Done():
			return fmt.Errorf("waiting for node %d to remove contract %d: %w", c.NodeID, id, wctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
