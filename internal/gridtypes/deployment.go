package gridtypes

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"

	"sigs.k8s.io/yaml"
)

// Deployment is a signed set of workloads on one node under one contract.
type Deployment struct {
	Version              uint32               `json:"version"`
	TwinID               uint32               `json:"twin_id"`
	ContractID           uint64               `json:"contract_id"`
	Metadata             string               `json:"metadata"`
	Description          string               `json:"description"`
	Expiration           Timestamp            `json:"expiration"`
	SignatureRequirement SignatureRequirement `json:"signature_requirement"`
	Workloads            []Workload           `json:"workloads"`
}

// Limits that keep a hostile deployment bounded.
const (
	MaxWorkloads       = 1000
	MaxDeploymentBytes = 8 << 20
)

// Decode reads a deployment from JSON or YAML.
func Decode(b []byte) (*Deployment, error) {
	if len(b) > MaxDeploymentBytes {
		return nil, fmt.Errorf("deployment is %d bytes, more than the limit of %d", len(b), MaxDeploymentBytes)
	}
	t := bytes.TrimSpace(b)
	if len(t) == 0 {
		return nil, fmt.Errorf("deployment is empty")
	}
	if t[0] != '{' {
		j, err := yaml.YAMLToJSON(b)
		if err != nil {
			return nil, fmt.Errorf("decoding deployment YAML: %w", err)
		}
		b = j
	}
	var d Deployment
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("decoding deployment: %w", err)
	}
	return &d, nil
}

// ID returns the deployment id "<twin>-<contract>".
func (d *Deployment) ID() DeploymentID { return NewDeploymentID(d.TwinID, d.ContractID) }

// WorkloadID returns the id of the named workload.
func (d *Deployment) WorkloadID(name string) WorkloadID {
	return NewWorkloadID(d.TwinID, d.ContractID, name)
}

// Get returns the named workload, or nil.
func (d *Deployment) Get(name string) *Workload {
	for i := range d.Workloads {
		if d.Workloads[i].Name == name {
			return &d.Workloads[i]
		}
	}
	return nil
}

// ByType returns the workloads of the given types, in order.
func (d *Deployment) ByType(types ...WorkloadType) []*Workload {
	var out []*Workload
	for i := range d.Workloads {
		if d.Workloads[i].Type.IsAny(types...) {
			out = append(out, &d.Workloads[i])
		}
	}
	return out
}

// Challenge writes the challenge stream: version, twin, metadata,
// description, expiration, every workload, then the signature requirement.
// The contract id and the signatures are not part of it.
func (d *Deployment) Challenge(w io.Writer) error {
	c := &challenger{w: w}
	c.d(uint64(d.Version))
	c.d(uint64(d.TwinID))
	c.s(d.Metadata)
	c.s(d.Description)
	c.i(int64(d.Expiration))
	if c.err != nil {
		return c.err
	}
	for i := range d.Workloads {
		if err := d.Workloads[i].Challenge(w); err != nil {
			return err
		}
	}
	d.SignatureRequirement.challenge(c)
	return c.err
}

// ChallengeHash is the MD5 of the challenge stream: what users sign and what
// the contract holds (hex).
func (d *Deployment) ChallengeHash() ([]byte, error) {
	h := md5.New()
	if err := d.Challenge(h); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// Hash is the hex challenge hash.
func (d *Deployment) Hash() (string, error) {
	h, err := d.ChallengeHash()
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h), nil
}

// Valid checks the deployment and every workload: names valid and unique,
// workload versions not above the deployment's, each type's rules.
func (d *Deployment) Valid() error {
	if len(d.Workloads) > MaxWorkloads {
		return fmt.Errorf("deployment has %d workloads, more than the limit of %d", len(d.Workloads), MaxWorkloads)
	}
	if err := d.SignatureRequirement.valid(d.TwinID); err != nil {
		return fmt.Errorf("signature_requirement: %w", err)
	}
	names := make(map[string]bool, len(d.Workloads))
	for i := range d.Workloads {
		wl := &d.Workloads[i]
		if err := ValidName(wl.Name); err != nil {
			return fmt.Errorf("workloads[%d]: %w", i, err)
		}
		if names[wl.Name] {
			return fmt.Errorf("workloads[%d]: name %q is used twice", i, wl.Name)
		}
		names[wl.Name] = true
		if wl.Version > d.Version {
			return fmt.Errorf("workload %q: version %d is above the deployment version %d", wl.Name, wl.Version, d.Version)
		}
		data, err := wl.WorkloadData()
		if err != nil {
			return fmt.Errorf("workload %q: %w", wl.Name, err)
		}
		if err := data.Valid(d); err != nil {
			return fmt.Errorf("workload %q (%s): %w", wl.Name, wl.Type, err)
		}
	}
	return nil
}

// Capacity sums the capacity of every workload.
func (d *Deployment) Capacity() (Capacity, error) {
	var total Capacity
	for i := range d.Workloads {
		c, err := d.Workloads[i].Capacity()
		if err != nil {
			return Capacity{}, fmt.Errorf("workload %q: %w", d.Workloads[i].Name, err)
		}
		total.Add(c)
	}
	return total, nil
}

// Clone returns a deep copy.
func (d *Deployment) Clone() *Deployment {
	b, err := json.Marshal(d)
	if err != nil {
		// Every field marshals; this cannot happen for a decoded deployment.
		return nil
	}
	var c Deployment
	if err := json.Unmarshal(b, &c); err != nil {
		return nil
	}
	return &c
}
