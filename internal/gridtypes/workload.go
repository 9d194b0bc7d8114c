package gridtypes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
)

// WorkloadType names a kind of workload.
type WorkloadType string

// IsAny reports whether t is one of types.
func (t WorkloadType) IsAny(types ...WorkloadType) bool { return slices.Contains(types, t) }

// The workload types of the original system.
const (
	ZMachineType         WorkloadType = "zmachine"
	ZMachineLightType    WorkloadType = "zmachine-light"
	ZMountType           WorkloadType = "zmount"
	VolumeType           WorkloadType = "volume"
	ZDBType              WorkloadType = "zdb"
	NetworkType          WorkloadType = "network"
	NetworkLightType     WorkloadType = "network-light"
	PublicIPType         WorkloadType = "ip"
	PublicIPv4Type       WorkloadType = "ipv4"
	GatewayNameProxyType WorkloadType = "gateway-name-proxy"
	GatewayFQDNProxyType WorkloadType = "gateway-fqdn-proxy"
	QuantumSafeFSType    WorkloadType = "qsfs"
	ZLogsType            WorkloadType = "zlogs"
)

// WorkloadData is the type-specific part of a workload.
type WorkloadData interface {
	// Challenge writes the data's part of the challenge stream.
	Challenge(w io.Writer) error
	// Valid checks the data; d is the deployment it belongs to, for rules
	// that look at other workloads.
	Valid(d *Deployment) error
	// Capacity is what the workload uses.
	Capacity() (Capacity, error)
}

// types maps each type to a constructor of its data.
func newData(t WorkloadType) (WorkloadData, bool) {
	switch t {
	case ZMachineType:
		return &ZMachine{}, true
	case ZMachineLightType:
		return &ZMachineLight{}, true
	case ZMountType:
		return &ZMount{}, true
	case VolumeType:
		return &Volume{}, true
	case ZDBType:
		return &ZDB{}, true
	case NetworkType:
		return &Network{}, true
	case NetworkLightType:
		return &NetworkLight{}, true
	case PublicIPType:
		return &PublicIP{}, true
	case PublicIPv4Type:
		return &PublicIPv4{}, true
	case GatewayNameProxyType:
		return &GatewayNameProxy{}, true
	case GatewayFQDNProxyType:
		return &GatewayFQDNProxy{}, true
	case QuantumSafeFSType:
		return &QuantumSafeFS{}, true
	case ZLogsType:
		return &ZLogs{}, true
	}
	return nil, false
}

// Types lists every known workload type.
func Types() []WorkloadType {
	return []WorkloadType{ZMachineType, ZMachineLightType, ZMountType, VolumeType, ZDBType,
		NetworkType, NetworkLightType, PublicIPType, PublicIPv4Type, GatewayNameProxyType,
		GatewayFQDNProxyType, QuantumSafeFSType, ZLogsType}
}

// Sharable types are scoped per twin across deployments: their names must
// be unique among all of a twin's deployments.
func (t WorkloadType) Sharable() bool { return t == NetworkType || t == NetworkLightType }

// Updatable reports whether a workload of this type can be changed in place
// by an update; the others must be removed and added again.
func (t WorkloadType) Updatable() bool {
	switch t {
	case ZMountType, VolumeType, ZDBType, NetworkType, NetworkLightType, QuantumSafeFSType:
		return true
	}
	return false
}

// Result states of a workload.
type ResultState string

const (
	StateInit      ResultState = "init"
	StateUnChanged ResultState = "unchanged"
	StateError     ResultState = "error"
	StateOk        ResultState = "ok"
	StateDeleted   ResultState = "deleted"
	StatePaused    ResultState = "paused"
)

// IsOkay reports whether the workload runs (ok or paused).
func (s ResultState) IsOkay() bool { return s == StateOk || s == StatePaused }

// IsAny reports whether s is one of states.
func (s ResultState) IsAny(states ...ResultState) bool { return slices.Contains(states, s) }

// Result is the outcome of provisioning a workload.
type Result struct {
	Created Timestamp       `json:"created"`
	State   ResultState     `json:"state"`
	Error   string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

// IsNil reports whether the result was never set.
func (r *Result) IsNil() bool { return r.Created == 0 && r.State == "" }

// Unmarshal decodes the result data into v.
func (r *Result) Unmarshal(v any) error {
	if len(r.Data) == 0 {
		return fmt.Errorf("result has no data")
	}
	return json.Unmarshal(r.Data, v)
}

// Workload is one unit of a deployment.
type Workload struct {
	Version     uint32          `json:"version"`
	Name        string          `json:"name"`
	Type        WorkloadType    `json:"type"`
	Data        json.RawMessage `json:"data"`
	Metadata    string          `json:"metadata"`
	Description string          `json:"description"`
	Result      Result          `json:"result"`
}

var nameRe = regexp.MustCompile(`^[a-zA-Z0-9_]+$`)

// MaxNameLength is the longest workload name.
const MaxNameLength = 36

// ValidName checks a workload name.
func ValidName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("name is empty")
	case len(name) > MaxNameLength:
		return fmt.Errorf("name %q is longer than %d characters", name, MaxNameLength)
	case !nameRe.MatchString(name):
		return fmt.Errorf("name %q may only contain letters, digits and '_'", name)
	case name == "ygg":
		return fmt.Errorf("name %q is reserved", name)
	}
	return nil
}

// WorkloadData decodes the type-specific data. Unknown fields are ignored,
// as the original does; unknown types are an error.
func (w *Workload) WorkloadData() (WorkloadData, error) {
	d, ok := newData(w.Type)
	if !ok {
		return nil, fmt.Errorf("unknown workload type %q", w.Type)
	}
	data := w.Data
	if len(bytes.TrimSpace(data)) == 0 || string(bytes.TrimSpace(data)) == "null" {
		data = []byte("{}")
	}
	if err := json.Unmarshal(data, d); err != nil {
		return nil, fmt.Errorf("decoding %s data: %w", w.Type, err)
	}
	return d, nil
}

// SetData encodes v as the workload's data.
func (w *Workload) SetData(v WorkloadData) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s data: %w", w.Type, err)
	}
	w.Data = b
	return nil
}

// Challenge writes the workload's part of the challenge stream.
func (w *Workload) Challenge(out io.Writer) error {
	c := challenger{w: out}
	c.d(uint64(w.Version))
	c.s(w.Name)
	c.s(string(w.Type))
	c.s(w.Metadata)
	c.s(w.Description)
	if c.err != nil {
		return c.err
	}
	data, err := w.WorkloadData()
	if err != nil {
		return fmt.Errorf("workload %q: %w", w.Name, err)
	}
	return data.Challenge(out)
}

// Capacity is what the workload uses.
func (w *Workload) Capacity() (Capacity, error) {
	data, err := w.WorkloadData()
	if err != nil {
		return Capacity{}, err
	}
	return data.Capacity()
}

// challenger writes challenge values with the formatting of the original
// (Go fmt %d, %s, %t, %x; no separators) and keeps the first error.
type challenger struct {
	w   io.Writer
	err error
}

func (c *challenger) f(format string, v any) {
	if c.err == nil {
		_, c.err = fmt.Fprintf(c.w, format, v)
	}
}

func (c *challenger) d(v uint64) { c.f("%d", v) }
func (c *challenger) i(v int64)  { c.f("%d", v) }
func (c *challenger) s(v string) { c.f("%s", v) }
func (c *challenger) t(v bool)   { c.f("%t", v) }
func (c *challenger) x(v []byte) { c.f("%x", v) }
