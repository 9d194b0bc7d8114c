package registry

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zos-go/zos/internal/identity"
)

// DefaultTimeout bounds a request whose context has no deadline, and each
// request (each attempt of a busy one) whatever the caller's deadline: a
// request sent while the grid is away fails after it, not after the
// caller's (possibly much longer) deadline, so the caller can retry.
const DefaultTimeout = 10 * time.Second

// ErrTimeout is returned when one request got no answer within the
// client's request timeout while the caller's deadline had not passed: the
// grid is away or overloaded, and asking again later may work. (It is a
// client's error: the service never sends it.)
var ErrTimeout = errors.New("registry did not answer in time")

// Client talks to the registry service over NATS. Writes are signed with
// its key; reads need no key. It is safe for concurrent use.
type Client struct {
	nc      *nats.Conn
	key     identity.Key
	now     func() time.Time
	timeout time.Duration // of one request
}

// ClientOption changes a default of a Client.
type ClientOption func(*Client)

// WithClock sets the clock that timestamps the client's writes (default
// time.Now). A skewed clock is how tests show what a skewed client sees.
func WithClock(now func() time.Time) ClientOption {
	return func(c *Client) {
		if now != nil {
			c.now = now
		}
	}
}

// WithRequestTimeout sets how long one request may wait for its answer
// (default DefaultTimeout), within the caller's deadline.
func WithRequestTimeout(d time.Duration) ClientOption {
	return func(c *Client) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// NewClient returns a client that signs its writes with key (a zero key
// can only read).
func NewClient(nc *nats.Conn, key identity.Key, opts ...ClientOption) *Client {
	c := &Client{nc: nc, key: key, now: time.Now, timeout: DefaultTimeout}
	for _, o := range opts {
		o(c)
	}
	return c
}

// call sends a request and decodes the result into out.
func (c *Client) call(ctx context.Context, op string, data []byte, out any) error {
	return c.callWithin(ctx, op, data, out, c.timeout)
}

// callWithin is call with each attempt bounded by timeout (a long poll
// is held by the registry longer than the client's request timeout).
func (c *Client) callWithin(ctx context.Context, op string, data []byte, out any, timeout time.Duration) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	msg, err := c.request(ctx, SubjectPrefix+op, data, timeout)
	// A busy registry handled nothing: ask again after a pause.
	for pause := 20 * time.Millisecond; err == nil && isBusy(msg.Data); pause = min(2*pause, time.Second) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("registry %s: %w", op, ErrBusy)
		case <-time.After(pause + time.Duration(rand.Int64N(int64(pause)))):
		}
		msg, err = c.request(ctx, SubjectPrefix+op, data, timeout)
	}
	if errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("registry %s: no registry service answers on %s: %w", op, c.nc.ConnectedUrlRedacted(), err)
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		err = fmt.Errorf("%w: no answer within %s: %w", ErrTimeout, timeout, err)
	}
	if err != nil && !c.nc.IsConnected() {
		return fmt.Errorf("registry %s: %w (not connected to the grid: %s)", op, err, c.nc.Status())
	}
	if err != nil {
		return fmt.Errorf("registry %s: %w", op, err)
	}
	var resp response
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fmt.Errorf("registry %s: malformed response: %w", op, err)
	}
	if resp.Error != nil {
		return errorOf(resp.Error.Code, resp.Error.Message)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(resp.Result, out); err != nil {
		return fmt.Errorf("registry %s: decoding result: %w", op, err)
	}
	return nil
}

// isBusy reports whether an answer is the registry's "busy".
func isBusy(b []byte) bool {
	if !bytes.Contains(b, []byte(`"busy"`)) {
		return false
	}
	var r response
	return json.Unmarshal(b, &r) == nil && r.Error != nil && r.Error.Code == "busy"
}

// request sends a request and waits for its answer on an inbox of this
// connection, named in ReplyHeader too: the registry answers twins there
// (only there), whatever the reply subject says.
func (c *Client) request(ctx context.Context, subject string, data []byte, timeout time.Duration) (*nats.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	inbox := c.nc.NewInbox()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	m := &nats.Msg{Subject: subject, Reply: inbox, Data: data, Header: nats.Header{ReplyHeader: []string{inbox}}}
	if err := c.nc.PublishMsg(m); err != nil {
		return nil, err
	}
	msg, err := sub.NextMsgWithContext(ctx)
	if err != nil {
		return nil, err
	}
	if len(msg.Data) == 0 && msg.Header.Get("Status") == "503" {
		return nil, nats.ErrNoResponders
	}
	return msg, nil
}

func (c *Client) read(ctx context.Context, op string, req, out any) error {
	return c.readWithin(ctx, op, req, out, c.timeout)
}

// readWithin is read with each attempt bounded by timeout.
func (c *Client) readWithin(ctx context.Context, op string, req, out any, timeout time.Duration) error {
	b, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encoding %s request: %w", op, err)
	}
	return c.callWithin(ctx, op, b, out, timeout)
}

func (c *Client) write(ctx context.Context, op string, payload, out any) error {
	if c.key.Private() == nil {
		return fmt.Errorf("registry %s: %w: client has no key", op, ErrUnauthorized)
	}
	b, err := newSignedRequest(c.key, op, payload, c.now())
	if err != nil {
		return err
	}
	return c.call(ctx, op, b, out)
}

// readOne reads one T: op answers with it.
func readOne[T any](ctx context.Context, c *Client, op string, req any) (T, error) {
	var v T
	err := c.read(ctx, op, req, &v)
	return v, err
}

// writeOne writes as the client's twin: op answers with the T it made or
// changed.
func writeOne[T any](ctx context.Context, c *Client, op string, payload any) (T, error) {
	var v T
	err := c.write(ctx, op, payload, &v)
	return v, err
}

// readAll reads every page of a list.
func readAll[T any](ctx context.Context, c *Client, op string, req listReq, id func(*T) uint64) ([]T, error) {
	var all []T
	for {
		var p listPage[T]
		if err := c.read(ctx, op, req, &p); err != nil {
			return nil, err
		}
		all = append(all, p.Items...)
		if !p.More || len(p.Items) == 0 {
			return all, nil
		}
		req.After = id(&p.Items[len(p.Items)-1])
	}
}

// CreateTwin creates the twin of the client's key, or returns the twin it
// already has.
func (c *Client) CreateTwin(ctx context.Context, relay string) (Twin, error) {
	return writeOne[Twin](ctx, c, OpTwinCreate, twinCreateReq{Relay: relay})
}

// TwinByKey returns the twin of a public key.
func (c *Client) TwinByKey(ctx context.Context, pub ed25519.PublicKey) (Twin, error) {
	return readOne[Twin](ctx, c, OpTwinGet, getReq{Key: hex.EncodeToString(pub)})
}

// Twin returns a twin by id.
func (c *Client) Twin(ctx context.Context, id uint32) (Twin, error) {
	return readOne[Twin](ctx, c, OpTwinGet, getReq{ID: uint64(id)})
}

// Twins returns every twin.
func (c *Client) Twins(ctx context.Context) ([]Twin, error) {
	return readAll(ctx, c, OpTwinList, listReq{}, func(t *Twin) uint64 { return uint64(t.ID) })
}

// CreateFarm creates a farm owned by the client's twin.
func (c *Client) CreateFarm(ctx context.Context, name string) (Farm, error) {
	return writeOne[Farm](ctx, c, OpFarmCreate, farmCreateReq{Name: name})
}

// Farm returns a farm by id.
func (c *Client) Farm(ctx context.Context, id uint32) (Farm, error) {
	return readOne[Farm](ctx, c, OpFarmGet, getReq{ID: uint64(id)})
}

// Farms returns every farm.
func (c *Client) Farms(ctx context.Context) ([]Farm, error) {
	return readAll(ctx, c, OpFarmList, listReq{}, func(f *Farm) uint64 { return uint64(f.ID) })
}

// AddFarmIP adds a public IP (address with prefix) and its gateway to a farm
// of the client's twin.
func (c *Client) AddFarmIP(ctx context.Context, farm uint32, cidr, gw string) error {
	return c.write(ctx, OpFarmAddIP, farmAddIPReq{FarmID: farm, IP: cidr, Gateway: gw}, nil)
}

// RemoveFarmIP removes a free public IP (the address, with or without its
// prefix) from a farm of the client's twin.
func (c *Client) RemoveFarmIP(ctx context.Context, farm uint32, ip string) error {
	return c.write(ctx, OpFarmRemoveIP, farmRemoveIPReq{FarmID: farm, IP: ip}, nil)
}

// SetFarmChannel sets the release channel of a farm's nodes (by the
// farm's twin; "" clears it).
func (c *Client) SetFarmChannel(ctx context.Context, farm uint32, channel string) error {
	return c.write(ctx, OpFarmChannel, farmChannelReq{FarmID: farm, Channel: channel}, nil)
}

// RegisterNode creates, or updates, the node of the client's twin.
func (c *Client) RegisterNode(ctx context.Context, reg NodeRegistration) (Node, error) {
	return writeOne[Node](ctx, c, OpNodeRegister, reg)
}

// ReportUptime records a node's uptime in seconds (by the node's twin).
func (c *Client) ReportUptime(ctx context.Context, nodeID uint32, uptime uint64) error {
	return c.write(ctx, OpNodeUptime, nodeUptimeReq{NodeID: nodeID, Uptime: uptime}, nil)
}

// SetPublicConfig sets (nil: clears) a node's public config (by the farm's
// twin).
func (c *Client) SetPublicConfig(ctx context.Context, nodeID uint32, cfg *PublicConfig) error {
	return c.write(ctx, OpNodePublicConfig, nodePublicConfigReq{NodeID: nodeID, Config: cfg}, nil)
}

// ReportUsed records what each contract of a node uses, and the node's
// total use (by the node's twin).
func (c *Client) ReportUsed(ctx context.Context, nodeID uint32, used map[uint64]Resources) error {
	return c.write(ctx, OpNodeUsed, nodeUsedReq{NodeID: nodeID, Used: used}, nil)
}

// SetPowerTarget asks a node to power up or down (PowerUp, PowerDown; by
// the farm's twin). The node gets an EventPowerTargetChanged.
func (c *Client) SetPowerTarget(ctx context.Context, nodeID uint32, target string) error {
	return c.write(ctx, OpNodePowerTarget, nodePowerReq{NodeID: nodeID, Power: target}, nil)
}

// ReportPower records a node's power state (by the node's twin).
func (c *Client) ReportPower(ctx context.Context, nodeID uint32, state string) error {
	return c.write(ctx, OpNodePower, nodePowerReq{NodeID: nodeID, Power: state}, nil)
}

// PowerTarget is SetPowerTarget with the registry's answer: which node
// was asked to wake a node in standby, or why none could.
func (c *Client) PowerTarget(ctx context.Context, nodeID uint32, target string) (PowerTargetResult, error) {
	var r PowerTargetResult
	err := c.write(ctx, OpNodePowerTarget, nodePowerReq{NodeID: nodeID, Power: target}, &r)
	return r, err
}

// SetFarmPowerPolicy sets (nil: clears) the power policy of a farm (by
// the farm's twin).
func (c *Client) SetFarmPowerPolicy(ctx context.Context, farm uint32, p *PowerPolicy) (Farm, error) {
	var f Farm
	err := c.write(ctx, OpFarmPowerPolicy, farmPowerPolicyReq{FarmID: farm, Policy: p}, &f)
	return f, err
}

// ReportPowerRefused records that a node stays up against a standby
// target, and why (by the node's twin).
func (c *Client) ReportPowerRefused(ctx context.Context, nodeID uint32, why string) error {
	return c.write(ctx, OpNodePower, nodePowerReq{NodeID: nodeID, Power: PowerUp, Refused: why}, nil)
}

// Node returns a node by id.
func (c *Client) Node(ctx context.Context, id uint32) (Node, error) {
	return readOne[Node](ctx, c, OpNodeGet, getReq{ID: uint64(id)})
}

// NodeByTwin returns the node of a twin.
func (c *Client) NodeByTwin(ctx context.Context, twin uint32) (Node, error) {
	return readOne[Node](ctx, c, OpNodeGet, getReq{Twin: twin})
}

// Nodes returns every node.
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	return readAll(ctx, c, OpNodeList, listReq{}, func(n *Node) uint64 { return uint64(n.ID) })
}

// CreateNodeContract creates a contract on a node for a deployment hash,
// reserving publicIPs free IPs of the node's farm (ErrNoFreeIP when there
// are not enough).
func (c *Client) CreateNodeContract(ctx context.Context, node uint32, hash, metadata string, publicIPs uint32) (Contract, error) {
	return writeOne[Contract](ctx, c, OpContractCreate, contractCreateReq{NodeID: node, Hash: hash, Metadata: metadata, PublicIPs: publicIPs})
}

// PreparedContract is a signed request to create a node contract, to be
// sent once or again after an answer was lost: the registry applies it at
// most once (by its nonce), answers a resend of an applied request with
// ErrReplay, and refuses it with ErrExpired once its time is past the
// allowed skew (a minute by default).
type PreparedContract struct {
	data []byte
}

// PrepareNodeContract signs the creation of a contract on a node for a
// deployment hash (see CreateNodeContract) without sending it.
func (c *Client) PrepareNodeContract(node uint32, hash, metadata string, publicIPs uint32) (PreparedContract, error) {
	if c.key.Private() == nil {
		return PreparedContract{}, fmt.Errorf("registry %s: %w: client has no key", OpContractCreate, ErrUnauthorized)
	}
	b, err := newSignedRequest(c.key, OpContractCreate, contractCreateReq{NodeID: node, Hash: hash, Metadata: metadata, PublicIPs: publicIPs}, c.now())
	if err != nil {
		return PreparedContract{}, err
	}
	return PreparedContract{data: b}, nil
}

// SendNodeContract sends a prepared contract creation.
func (c *Client) SendNodeContract(ctx context.Context, p PreparedContract) (Contract, error) {
	var ct Contract
	if len(p.data) == 0 {
		return ct, fmt.Errorf("registry %s: %w: empty prepared request", OpContractCreate, ErrInvalid)
	}
	err := c.call(ctx, OpContractCreate, p.data, &ct)
	return ct, err
}

// UpdateNodeContract changes the deployment hash and metadata of a contract.
func (c *Client) UpdateNodeContract(ctx context.Context, id uint64, hash, metadata string) (Contract, error) {
	return writeOne[Contract](ctx, c, OpContractUpdate, contractUpdateReq{ID: id, Hash: hash, Metadata: metadata})
}

// CancelContract cancels a contract of the client's twin, freeing its IPs,
// name or node.
func (c *Client) CancelContract(ctx context.Context, id uint64) error {
	return c.write(ctx, OpContractCancel, contractIDReq{ID: id}, nil)
}

// CreateNameContract reserves a name (ErrNameTaken when held).
func (c *Client) CreateNameContract(ctx context.Context, name string) (Contract, error) {
	return writeOne[Contract](ctx, c, OpNameCreate, nameCreateReq{Name: name})
}

// CreateRentContract rents a whole node (ErrNodeRented when rented).
func (c *Client) CreateRentContract(ctx context.Context, node uint32) (Contract, error) {
	return writeOne[Contract](ctx, c, OpRentCreate, rentCreateReq{NodeID: node})
}

// Contract returns a contract by id.
func (c *Client) Contract(ctx context.Context, id uint64) (Contract, error) {
	return readOne[Contract](ctx, c, OpContractGet, getReq{ID: id})
}

// Contracts returns the contracts that match filter, in id order.
func (c *Client) Contracts(ctx context.Context, filter ContractFilter) ([]Contract, error) {
	return readAll(ctx, c, OpContractList, listReq{Contract: filter}, func(ct *Contract) uint64 { return ct.ID })
}

// ActiveNodeContracts returns the node contracts of a node that are not
// canceled.
func (c *Client) ActiveNodeContracts(ctx context.Context, node uint32) ([]Contract, error) {
	return c.Contracts(ctx, ContractFilter{NodeID: node, State: StateCreated, Type: TypeNode})
}

// EventsInfo describes the events stream (its last sequence).
func (c *Client) EventsInfo(ctx context.Context) (EventsInfo, error) {
	return readOne[EventsInfo](ctx, c, OpEventsInfo, struct{}{})
}
