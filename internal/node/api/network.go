package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/nodeapi"
)

// Network answers the zos.network.* commands; the node implements it
// when its network module runs.
type Network interface {
	WGPorts() []uint16
	PublicConfig(ctx context.Context) (nodeapi.PublicConfig, error)
	Interfaces() (map[string][]string, error)
	// HasIPv6 reports whether the node has public IPv6 (SLAAC on its
	// uplink or the farm's static config): ip workloads may ask for v6.
	HasIPv6() bool
}

// ErrNoNetwork is returned when the node has no network module.
var ErrNoNetwork = errors.New("the network module is not running on this node")

func (a *API) network() (Network, error) {
	n, ok := a.node.(Network)
	if !ok {
		return nil, ErrNoNetwork
	}
	return n, nil
}

func (a *API) listWGPorts(context.Context, uint32, []byte) (any, error) {
	n, err := a.network()
	if err != nil {
		return nil, err
	}
	return n.WGPorts(), nil
}

func (a *API) publicConfig(ctx context.Context, _ uint32, _ []byte) (any, error) {
	n, err := a.network()
	if err != nil {
		return nil, err
	}
	return n.PublicConfig(ctx)
}

func (a *API) hasIPv6(context.Context, uint32, []byte) (any, error) {
	n, err := a.network()
	if err != nil {
		return nil, err
	}
	return n.HasIPv6(), nil
}

func (a *API) interfaces(context.Context, uint32, []byte) (any, error) {
	n, err := a.network()
	if err != nil {
		return nil, err
	}
	return n.Interfaces()
}

// listPrivateIPs returns the private IPs the sender's machines (full and
// light) use in its network network_name on this node, as the original:
// every machine not deleted nor in error, in deployment order.
func (a *API) listPrivateIPs(_ context.Context, src uint32, payload []byte) (any, error) {
	var r nodeapi.PrivateIPsRequest
	if err := json.Unmarshal(payload, &r); err != nil {
		return nil, fmt.Errorf("decoding request: %w", err)
	}
	if r.NetworkName == "" {
		return nil, errors.New("network_name is required")
	}
	ds, err := a.store.List(src)
	if err != nil {
		return nil, err
	}
	return PrivateIPs(ds, r.NetworkName)
}

// PrivateIPs lists the private IPs machines of ds use in network.
func PrivateIPs(ds []*gridtypes.Deployment, network string) ([]string, error) {
	ips := []string{}
	for _, d := range ds {
		for i := range d.Workloads {
			wl := &d.Workloads[i]
			if !wl.Type.IsAny(gridtypes.ZMachineType, gridtypes.ZMachineLightType) ||
				wl.Result.State.IsAny(gridtypes.StateDeleted, gridtypes.StateError) {
				continue
			}
			data, err := wl.WorkloadData()
			if err != nil {
				return nil, fmt.Errorf("workload %q of contract %d: %w", wl.Name, d.ContractID, err)
			}
			var ifaces []gridtypes.MachineInterface
			switch m := data.(type) {
			case *gridtypes.ZMachine:
				ifaces = m.Network.Interfaces
			case *gridtypes.ZMachineLight:
				ifaces = m.Network.Interfaces
			}
			for _, inf := range ifaces {
				if inf.Network == network && inf.IP != nil {
					ips = append(ips, net.IP(inf.IP).String())
				}
			}
		}
	}
	return ips, nil
}

// listPublicIPs returns the public IPs user workloads hold on this node.
func (a *API) listPublicIPs(context.Context, uint32, []byte) (any, error) {
	all, err := a.store.All()
	if err != nil {
		return nil, err
	}
	ips := []string{}
	for _, d := range all {
		for i := range d.Workloads {
			wl := &d.Workloads[i]
			if !wl.Type.IsAny(gridtypes.PublicIPType, gridtypes.PublicIPv4Type) || !wl.Result.State.IsOkay() {
				continue
			}
			var r gridtypes.PublicIPResult
			if err := wl.Result.Unmarshal(&r); err == nil && !r.IP.IsZero() {
				ips = append(ips, r.IP.String())
			}
		}
	}
	return ips, nil
}
