package registry

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/zos-go/zos/internal/identity"
)

// SubjectPrefix prefixes every subject of the registry: requests go to
// SubjectPrefix+op (registry.twin.create), events to
// SubjectPrefix+"events.node.<id>".
const SubjectPrefix = "registry."

// Operations, each served on SubjectPrefix+op. Writes are signed; reads are
// not.
const (
	OpTwinCreate       = "twin.create"
	OpFarmCreate       = "farm.create"
	OpFarmAddIP        = "farm.add_ip"
	OpFarmChannel      = "farm.channel"
	OpFarmRemoveIP     = "farm.remove_ip"
	OpFarmPowerPolicy  = "farm.power_policy"
	OpNodeRegister     = "node.register"
	OpNodeUptime       = "node.uptime"
	OpNodePublicConfig = "node.public_config"
	OpNodeUsed         = "node.used"
	OpNodePowerTarget  = "node.power_target"
	OpNodePower        = "node.power"
	OpContractCreate   = "contract.create"
	OpContractUpdate   = "contract.update"
	OpContractCancel   = "contract.cancel"
	OpNameCreate       = "name.create"
	OpRentCreate       = "rent.create"

	OpTwinGet       = "twin.get"
	OpTwinList      = "twin.list"
	OpFarmGet       = "farm.get"
	OpFarmList      = "farm.list"
	OpNodeGet       = "node.get"
	OpNodeList      = "node.list"
	OpContractGet   = "contract.get"
	OpContractList  = "contract.list"
	OpEventsInfo    = "events.info"
	eventSubjectFmt = SubjectPrefix + "events.node.%d"
)

// MaxRequestSize bounds a request's size in bytes.
const MaxRequestSize = 256 << 10

// Proof is a signed write: the operation, the signer's public key, a
// timestamp and a nonce, the payload, and the ed25519 signature of the
// canonical bytes (a domain tag, then op, key, timestamp and nonce each on
// a line, then the payload bytes exactly as sent). Records keep the proof
// of their last change, so that readers who do not trust the registry
// check it themselves (VerifyContract).
type Proof struct {
	Op        string          `json:"op"`
	Key       string          `json:"key"`       // hex ed25519 public key
	Timestamp int64           `json:"timestamp"` // unix nanoseconds
	Nonce     string          `json:"nonce"`     // hex, 16 random bytes
	Payload   json.RawMessage `json:"payload"`
	Signature string          `json:"signature"` // hex
}

// signedRequest is a write as the service receives it.
type signedRequest = Proof

// signingBytes are the canonical bytes a write's signature covers: a domain
// tag, then op, key, timestamp and nonce each on a line, then the payload
// bytes exactly as sent.
func (r *signedRequest) signingBytes() []byte {
	var b bytes.Buffer
	b.WriteString("zos-registry-v1\n")
	b.WriteString(r.Op)
	b.WriteByte('\n')
	b.WriteString(r.Key)
	b.WriteByte('\n')
	b.WriteString(strconv.FormatInt(r.Timestamp, 10))
	b.WriteByte('\n')
	b.WriteString(r.Nonce)
	b.WriteByte('\n')
	b.Write(r.Payload)
	return b.Bytes()
}

// newSignedRequest builds and signs a write of payload by key at now.
func newSignedRequest(key identity.Key, op string, payload any, now time.Time) ([]byte, error) {
	p, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encoding %s payload: %w", op, err)
	}
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("making nonce: %w", err)
	}
	r := signedRequest{Op: op, Key: key.PublicHex(), Timestamp: now.UnixNano(), Nonce: hex.EncodeToString(nonce), Payload: p}
	r.Signature = hex.EncodeToString(key.Sign(r.signingBytes()))
	return json.Marshal(r)
}

// verify checks the shape of the request and its signature, and returns the
// signer's public key.
func (r *signedRequest) verify() (ed25519.PublicKey, error) {
	pub, err := identity.ParsePublic(r.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: key: %v", ErrInvalid, err)
	}
	if n, err := hex.DecodeString(r.Nonce); err != nil || len(n) < 8 || len(n) > 32 {
		return nil, fmt.Errorf("%w: nonce must be 8 to 32 hex bytes", ErrInvalid)
	}
	sig, err := hex.DecodeString(r.Signature)
	if err != nil {
		return nil, fmt.Errorf("%w: signature is not hex", ErrBadSignature)
	}
	if !identity.Verify(pub, r.signingBytes(), sig) {
		return nil, fmt.Errorf("%w: signature does not match key %s", ErrBadSignature, r.Key)
	}
	return pub, nil
}

// response is the reply to every request.
type response struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  *wireError      `json:"error,omitempty"`
}

type wireError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Payloads.

type twinCreateReq struct {
	Relay string `json:"relay"`
}

type farmCreateReq struct {
	Name string `json:"name"`
}

// farmChannelReq sets the release channel a farm's nodes follow.
type farmChannelReq struct {
	FarmID  uint32 `json:"farm_id"`
	Channel string `json:"channel"`
}

type farmAddIPReq struct {
	FarmID  uint32 `json:"farm_id"`
	IP      string `json:"ip"`
	Gateway string `json:"gateway"`
}

type farmRemoveIPReq struct {
	FarmID uint32 `json:"farm_id"`
	IP     string `json:"ip"` // the address, with or without its prefix
}

// NodeRegistration is what a node tells the registry about itself.
// FarmToken is the farmer's consent (a FarmToken's text) that the node
// joins FarmID: needed to join or move to a farm, not to register again in
// the node's own farm.
type NodeRegistration struct {
	FarmID      uint32      `json:"farm_id"`
	FarmToken   string      `json:"farm_token,omitempty"`
	Total       Resources   `json:"total_resources"`
	Reserved    Resources   `json:"reserved_resources"`
	Location    Location    `json:"location"`
	Interfaces  []Interface `json:"interfaces,omitempty"`
	Virtualized bool        `json:"virtualized"`
	Version     string      `json:"version,omitempty"`
	// Features are the workload types and network capabilities the node
	// provisions (zos.system.node_features_get), for placement.
	Features []string `json:"features,omitempty"`
	// Firmware is what the node's DMI says of its BIOS and board (nil:
	// the machine has no DMI).
	Firmware *Firmware `json:"firmware,omitempty"`
	// UpdateFailed are releases that failed the node's update health gate
	// and were rolled back (internal/node/update), newest last.
	UpdateFailed []string `json:"update_failed,omitempty"`
}

type nodeUptimeReq struct {
	NodeID uint32 `json:"node_id"`
	Uptime uint64 `json:"uptime"`
}

type nodePublicConfigReq struct {
	NodeID uint32        `json:"node_id"`
	Config *PublicConfig `json:"config"`
}

type nodePowerReq struct {
	NodeID uint32 `json:"node_id"`
	Power  string `json:"power"` // PowerUp or PowerDown
	// Refused is set by a node that stays up against a standby target:
	// why (workloads, an update under way).
	Refused string `json:"refused,omitempty"`
}

type farmPowerPolicyReq struct {
	FarmID uint32       `json:"farm_id"`
	Policy *PowerPolicy `json:"policy"` // nil clears it
}

type nodeUsedReq struct {
	NodeID uint32               `json:"node_id"`
	Used   map[uint64]Resources `json:"used"`
}

type contractCreateReq struct {
	NodeID    uint32 `json:"node_id"`
	Hash      string `json:"deployment_hash"`
	Metadata  string `json:"deployment_data"`
	PublicIPs uint32 `json:"public_ips"`
}

type contractUpdateReq struct {
	ID       uint64 `json:"contract_id"`
	Hash     string `json:"deployment_hash"`
	Metadata string `json:"deployment_data"`
}

type contractIDReq struct {
	ID uint64 `json:"contract_id"`
}

type nameCreateReq struct {
	Name string `json:"name"`
}

type rentCreateReq struct {
	NodeID uint32 `json:"node_id"`
}

type getReq struct {
	ID   uint64 `json:"id,omitempty"`
	Key  string `json:"key,omitempty"`  // twin.get by public key
	Twin uint32 `json:"twin,omitempty"` // node.get by twin
}

// ContractFilter selects contracts; zero fields match everything.
type ContractFilter struct {
	TwinID uint32 `json:"twin_id,omitempty"`
	NodeID uint32 `json:"node_id,omitempty"`
	State  string `json:"state,omitempty"`
	Type   string `json:"type,omitempty"`
}

type listReq struct {
	After    uint64         `json:"after"` // ids strictly greater
	Contract ContractFilter `json:"contract"`
}

// listPage is one page of a list: items in id order, and whether more
// follow.
type listPage[T any] struct {
	Items []T  `json:"items"`
	More  bool `json:"more"`
}

// EventsInfo describes the events stream.
type EventsInfo struct {
	Stream   string `json:"stream"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
}
