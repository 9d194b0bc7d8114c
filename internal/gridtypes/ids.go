package gridtypes

import (
	"crypto/md5"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// DeploymentID is "<twin>-<contract>".
type DeploymentID string

// NewDeploymentID returns the id of a deployment.
func NewDeploymentID(twin uint32, contract uint64) DeploymentID {
	return DeploymentID(fmt.Sprintf("%d-%d", twin, contract))
}

// Parts returns the twin and contract of the id.
func (d DeploymentID) Parts() (twin uint32, contract uint64, err error) {
	t, c, ok := strings.Cut(string(d), "-")
	if !ok {
		return 0, 0, fmt.Errorf("deployment id %q: want <twin>-<contract>", string(d))
	}
	tw, err := strconv.ParseUint(t, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("deployment id %q: bad twin: %w", string(d), err)
	}
	ct, err := strconv.ParseUint(c, 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("deployment id %q: bad contract: %w", string(d), err)
	}
	return uint32(tw), ct, nil
}

// WorkloadID is "<twin>-<contract>-<name>".
type WorkloadID string

// NewWorkloadID returns the id of a workload.
func NewWorkloadID(twin uint32, contract uint64, name string) WorkloadID {
	return WorkloadID(fmt.Sprintf("%d-%d-%s", twin, contract, name))
}

// Parts returns the twin, contract and name of the id.
func (w WorkloadID) Parts() (twin uint32, contract uint64, name string, err error) {
	parts := strings.SplitN(string(w), "-", 3)
	if len(parts) != 3 {
		return 0, 0, "", fmt.Errorf("workload id %q: want <twin>-<contract>-<name>", string(w))
	}
	twin, contract, err = DeploymentID(parts[0] + "-" + parts[1]).Parts()
	if err != nil {
		return 0, 0, "", fmt.Errorf("workload id %q: %w", string(w), err)
	}
	return twin, contract, parts[2], nil
}

// Unique returns a 13-character name derived from the workload id and s,
// short enough for kernel object names (taps, filters):
// base58(md5("<wlid>:<s>"))[:13].
func (w WorkloadID) Unique(s string) string {
	return short(fmt.Sprintf("%s:%s", w, s))
}

// NetID returns the id of a twin's network: base58(md5("<twin>:<name>"))[:13].
func NetID(twin uint32, name string) string {
	return short(fmt.Sprintf("%d:%s", twin, name))
}

func short(s string) string {
	sum := md5.Sum([]byte(s))
	b := Base58(sum[:])
	if len(b) > 13 {
		b = b[:13]
	}
	return b
}

const base58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// Base58 encodes b with the Bitcoin alphabet (leading zero bytes become '1').
func Base58(b []byte) string {
	n := new(big.Int).SetBytes(b)
	mod := new(big.Int)
	radix := big.NewInt(58)
	var out []byte
	for n.Sign() > 0 {
		n.DivMod(n, radix, mod)
		out = append(out, base58Alphabet[mod.Int64()])
	}
	for _, c := range b {
		if c != 0 {
			break
		}
		out = append(out, '1')
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return string(out)
}
