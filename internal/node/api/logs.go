package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/consolelog"
	"github.com/zos-go/zos/internal/node/provision"
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

// LogsRequest is the payload of zos.zmachine.logs: a chunk of the console
// log of machine Name of deployment ContractID, from Offset (-1: the last
// Max bytes), at most Max bytes (bounded to 1 MiB; 0 means 64 KiB).
type LogsRequest struct {
	ContractID uint64 `json:"contract_id"`
	Name       string `json:"name"`
	Offset     int64  `json:"offset"`
	Max        int    `json:"max"`
}

// LogsResponse is the answer to zos.zmachine.logs. Next is the offset to
// ask next; Rotated means the log was rotated since Offset and Data starts
// again at its beginning.
type LogsResponse struct {
	Data    []byte `json:"data"`
	Next    int64  `json:"next"`
	Size    int64  `json:"size"`
	Rotated bool   `json:"rotated"`
}

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
	var r LogsRequest
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
	d, err := a.engine.Store().Get(src, r.ContractID)
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
	return LogsResponse{Data: c.Data, Next: c.Next, Size: c.Size, Rotated: c.Rotated}, nil
}
