package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/zos-go/zos/internal/consolelog"
	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/nodeapi"
)

// ConsoleLogs gives the console log file of a zmachine workload; the node
// implements it when it runs virtual machines.
type ConsoleLogs interface {
	ConsoleLog(wl gridtypes.WorkloadID) (path string, err error)
}

// Option changes an API made by New.
type Option func(*API)

// WithConsoleLogs lets the API answer zos.zmachine.logs from logs.
// Without it, the API uses the Node when it implements ConsoleLogs.
func WithConsoleLogs(logs ConsoleLogs) Option {
	return func(a *API) { a.logs = logs }
}

// ErrNotFound is wrapped by the errors of requests naming a deployment or a
// workload the sender does not have.
var ErrNotFound = errors.New("not found")

// ErrNoConsoleLogs is returned when the node keeps no console logs.
var ErrNoConsoleLogs = errors.New("this node keeps no console logs")

func (a *API) consoleLogs() (ConsoleLogs, error) {
	if a.logs != nil {
		return a.logs, nil
	}
	if l, ok := a.node.(ConsoleLogs); ok {
		return l, nil
	}
	return nil, ErrNoConsoleLogs
}

// zmachineLogs answers zos.zmachine.logs: only the deployment's owner (the
// sender) reads, and only the logs of a machine of that deployment.
func (a *API) zmachineLogs(_ context.Context, src uint32, payload []byte) (any, error) {
	var r nodeapi.LogsRequest
	if err := json.Unmarshal(payload, &r); err != nil {
		return nil, fmt.Errorf("decoding request: %w", err)
	}
	if r.Name == "" {
		return nil, errors.New("name is required")
	}
	logs, err := a.consoleLogs()
	if err != nil {
		return nil, err
	}
	d, err := a.store.Get(src, r.ContractID)
	if errors.Is(err, provision.ErrNotFound) {
		return nil, fmt.Errorf("deployment %d: %w", r.ContractID, ErrNotFound)
	} else if err != nil {
		return nil, err
	}
	wl := d.Get(r.Name)
	switch {
	case wl == nil:
		return nil, fmt.Errorf("workload %q of deployment %d: %w", r.Name, r.ContractID, ErrNotFound)
	case !wl.Type.IsAny(gridtypes.ZMachineType, gridtypes.ZMachineLightType):
		return nil, fmt.Errorf("workload %q of deployment %d is a %s, not a zmachine", r.Name, r.ContractID, wl.Type)
	}
	path, err := logs.ConsoleLog(gridtypes.NewWorkloadID(d.TwinID, d.ContractID, wl.Name))
	if err != nil {
		return nil, fmt.Errorf("console log of %q: %w", r.Name, err)
	}
	c, err := consolelog.Read(path, r.Offset, r.Max)
	if err != nil {
		return nil, fmt.Errorf("console log of %q: %w", r.Name, err)
	}
	return nodeapi.LogsResponse{Data: c.Data, Next: c.Next, Size: c.Size, Rotated: c.Rotated}, nil
}
