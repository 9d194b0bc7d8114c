package gridtypes

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

var (
	wgKey = base64.StdEncoding.EncodeToString(make([]byte, 32))
	hex32 = strings.Repeat("ab", 32)
)

// twinReq returns a fresh requirement: twin 1 with weight 1.
func twinReq() SignatureRequirement {
	return SignatureRequirement{Requests: []SignatureRequest{{TwinID: 1, Weight: 1}}, WeightRequired: 1}
}

// dep builds a deployment of twin 1 from (name, type, data) triples.
func dep(wls ...Workload) *Deployment {
	return &Deployment{TwinID: 1, ContractID: 2, SignatureRequirement: twinReq(), Workloads: wls}
}

func wl(name string, t WorkloadType, data string) Workload {
	return Workload{Name: name, Type: t, Data: json.RawMessage(data)}
}

const vmOK = `{"flist":"f","network":{"interfaces":[{"network":"n","ip":"10.0.0.2"}]},"compute_capacity":{"cpu":1,"memory":268435456}}`

// TestValidation has, for each rule of the reference's validation section,
// a passing and a failing case; the failing error must name the workload and
// the field.
func TestValidation(t *testing.T) {
	for _, tt := range []struct {
		name    string
		d       *Deployment
		wantErr string // "" = valid
	}{
		{"name ok", dep(wl("a_B9", ZMountType, `{"size":1}`)), ""},
		{"name bad chars", dep(wl("a-b", ZMountType, `{"size":1}`)), `name "a-b" may only contain`},
		{"name too long", dep(wl(strings.Repeat("a", 37), ZMountType, `{"size":1}`)), "longer than 36"},
		{"name reserved", dep(wl("ygg", ZMountType, `{"size":1}`)), "reserved"},
		{"name empty", dep(wl("", ZMountType, `{"size":1}`)), "name is empty"},
		{"name twice", dep(wl("a", ZMountType, `{"size":1}`), wl("a", VolumeType, `{"size":1}`)), "used twice"},
		{"version above deployment", &Deployment{TwinID: 1, SignatureRequirement: twinReq(), Workloads: []Workload{{Name: "a", Type: ZMountType, Version: 1, Data: json.RawMessage(`{"size":1}`)}}}, "above the deployment version"},
		{"unknown type", dep(wl("a", "teleporter", `{}`)), `unknown workload type "teleporter"`},
		{"owner not requested", &Deployment{TwinID: 9, SignatureRequirement: twinReq()}, "twin 9 must be among the requests"},
		{"bad style", &Deployment{TwinID: 1, SignatureRequirement: SignatureRequirement{Requests: twinReq().Requests, SignatureStyle: "x"}}, "signature_style"},
		{"too many workloads", func() *Deployment {
			d := dep()
			for i := 0; i <= MaxWorkloads; i++ {
				d.Workloads = append(d.Workloads, wl("w", ZMountType, `{"size":1}`))
			}
			return d
		}(), "limit of 1000"},

		{"zmount ok", dep(wl("d", ZMountType, `{"size":1}`)), ""},
		{"zmount zero", dep(wl("d", ZMountType, `{"size":0}`)), `workload "d" (zmount): size: must be greater than 0`},
		{"volume ok", dep(wl("v", VolumeType, `{"size":1}`)), ""},
		{"volume zero", dep(wl("v", VolumeType, `{}`)), `workload "v" (volume): size`},
		{"zdb ok", dep(wl("z", ZDBType, `{"size":1,"mode":"seq"}`)), ""},
		{"zdb zero", dep(wl("z", ZDBType, `{"size":0,"mode":"user"}`)), `(zdb): size`},
		{"zdb mode", dep(wl("z", ZDBType, `{"size":1,"mode":"fast"}`)), `(zdb): mode: "fast"`},
		{"ip ok", dep(wl("i", PublicIPType, `{"v6":true}`)), ""},
		{"ip none", dep(wl("i", PublicIPType, `{}`)), `(ip): v4, v6: at least one`},
		{"ipv4 ok", dep(wl("i", PublicIPv4Type, `{}`)), ""},

		{"vm ok", dep(wl("vm", ZMachineType, vmOK)), ""},
		{"vm no interface", dep(wl("vm", ZMachineType, `{"flist":"f","compute_capacity":{"cpu":1,"memory":268435456}}`)), "network.interfaces: exactly one"},
		{"vm two interfaces", dep(wl("vm", ZMachineType, `{"flist":"f","network":{"interfaces":[{"network":"n","ip":"10.0.0.2"},{"network":"m","ip":"10.0.1.2"}]},"compute_capacity":{"cpu":1,"memory":268435456}}`)), "exactly one interface"},
		{"vm bad ip", dep(wl("vm", ZMachineType, `{"flist":"f","network":{"interfaces":[{"network":"n","ip":"10.0.0.300"}]},"compute_capacity":{"cpu":1,"memory":268435456}}`)), "decoding zmachine data"},
		{"vm no ip", dep(wl("vm", ZMachineType, `{"flist":"f","network":{"interfaces":[{"network":"n"}]},"compute_capacity":{"cpu":1,"memory":268435456}}`)), "network.interfaces[0].ip"},
		{"vm reserved net", dep(wl("vm", ZMachineType, `{"flist":"f","network":{"interfaces":[{"network":"pub","ip":"10.0.0.2"}]},"compute_capacity":{"cpu":1,"memory":268435456}}`)), `"pub" is reserved`},
		{"vm cpu 0", dep(wl("vm", ZMachineType, `{"flist":"f","network":{"interfaces":[{"network":"n","ip":"10.0.0.2"}]},"compute_capacity":{"cpu":0,"memory":268435456}}`)), "compute_capacity.cpu"},
		{"vm memory low", dep(wl("vm", ZMachineType, `{"flist":"f","network":{"interfaces":[{"network":"n","ip":"10.0.0.2"}]},"compute_capacity":{"cpu":1,"memory":1000}}`)), "compute_capacity.memory"},
		{"vm size below min tiny", dep(wl("vm", ZMachineType, `{"flist":"f","size":1000,"network":{"interfaces":[{"network":"n","ip":"10.0.0.2"}]},"compute_capacity":{"cpu":1,"memory":268435456}}`)), "minimum root size of 524288000"},
		{"vm size at min tiny", dep(wl("vm", ZMachineType, `{"flist":"f","size":524288000,"network":{"interfaces":[{"network":"n","ip":"10.0.0.2"}]},"compute_capacity":{"cpu":1,"memory":268435456}}`)), ""},
		{"vm size below min std", dep(wl("vm", ZMachineType, `{"flist":"f","size":524288000,"network":{"interfaces":[{"network":"n","ip":"10.0.0.2"}]},"compute_capacity":{"cpu":2,"memory":4294967296}}`)), "minimum root size of 2147483648"},
		{"vm public ip ok", dep(wl("ip", PublicIPType, `{"v4":true}`), wl("vm", ZMachineType, `{"flist":"f","network":{"public_ip":"ip","interfaces":[{"network":"n","ip":"10.0.0.2"}]},"compute_capacity":{"cpu":1,"memory":268435456}}`)), ""},
		{"vm public ip missing", dep(wl("vm", ZMachineType, `{"flist":"f","network":{"public_ip":"ip","interfaces":[{"network":"n","ip":"10.0.0.2"}]},"compute_capacity":{"cpu":1,"memory":268435456}}`)), `network.public_ip: "ip" is not an ip workload`},
		{"vm public ip twice", dep(wl("ip", PublicIPType, `{"v4":true}`),
			wl("vm", ZMachineType, `{"flist":"f","network":{"public_ip":"ip","interfaces":[{"network":"n","ip":"10.0.0.2"}]},"compute_capacity":{"cpu":1,"memory":268435456}}`),
			wl("vm2", ZMachineType, `{"flist":"f","network":{"public_ip":"ip","interfaces":[{"network":"n","ip":"10.0.0.3"}]},"compute_capacity":{"cpu":1,"memory":268435456}}`)), "used by 2 machines"},
		{"vm mycelium seed ok", dep(wl("vm", ZMachineType, `{"flist":"f","network":{"mycelium":{"Network":"n","hex_seed":"010203040506"},"interfaces":[{"network":"n","ip":"10.0.0.2"}]},"compute_capacity":{"cpu":1,"memory":268435456}}`)), ""},
		{"vm mycelium seed short", dep(wl("vm", ZMachineType, `{"flist":"f","network":{"mycelium":{"Network":"n","hex_seed":"0102"},"interfaces":[{"network":"n","ip":"10.0.0.2"}]},"compute_capacity":{"cpu":1,"memory":268435456}}`)), "hex_seed: must be 6 bytes"},
		{"vm mount missing", dep(wl("vm", ZMachineType, `{"flist":"f","network":{"interfaces":[{"network":"n","ip":"10.0.0.2"}]},"compute_capacity":{"cpu":1,"memory":268435456},"mounts":[{"name":"d","mountpoint":"/data"}]}`)), `mounts[0].name: no workload "d"`},
		{"vm light ok", dep(wl("vm", ZMachineLightType, vmOK)), ""},
		{"vm light cpu 0", dep(wl("vm", ZMachineLightType, `{"flist":"f","network":{"interfaces":[{"network":"n","ip":"10.0.0.2"}]},"compute_capacity":{"memory":268435456}}`)), "(zmachine-light): compute_capacity.cpu"},

		{"network ok", dep(wl("n", NetworkType, `{"ip_range":"10.1.0.0/16","subnet":"10.1.2.0/24","wireguard_private_key":"`+wgKey+`","peers":[{"subnet":"10.1.3.0/24","wireguard_public_key":"`+wgKey+`","allowed_ips":["10.1.3.0/24"]}]}`)), ""},
		{"network no range", dep(wl("n", NetworkType, `{"subnet":"10.1.2.0/24","wireguard_private_key":"`+wgKey+`"}`)), "ip_range: is empty"},
		{"network range not /16", dep(wl("n", NetworkType, `{"ip_range":"10.1.0.0/8","subnet":"10.1.2.0/24","wireguard_private_key":"`+wgKey+`"}`)), "must be a /16"},
		{"network subnet outside", dep(wl("n", NetworkType, `{"ip_range":"10.1.0.0/16","subnet":"10.2.2.0/24","wireguard_private_key":"`+wgKey+`"}`)), "not inside ip_range"},
		{"network bad cidr", dep(wl("n", NetworkType, `{"ip_range":"10.1.0.0/99","subnet":"10.1.2.0/24"}`)), `invalid CIDR "10.1.0.0/99"`},
		{"network no key", dep(wl("n", NetworkType, `{"ip_range":"10.1.0.0/16","subnet":"10.1.2.0/24"}`)), "wireguard_private_key: is empty"},
		{"network short key", dep(wl("n", NetworkType, `{"ip_range":"10.1.0.0/16","subnet":"10.1.2.0/24","wireguard_private_key":"AAAA"}`)), "is 3 bytes, want 32"},
		{"network peer no allowed", dep(wl("n", NetworkType, `{"ip_range":"10.1.0.0/16","subnet":"10.1.2.0/24","wireguard_private_key":"`+wgKey+`","peers":[{"subnet":"10.1.3.0/24","wireguard_public_key":"`+wgKey+`"}]}`)), "peers[0].allowed_ips"},
		{"network peer no key", dep(wl("n", NetworkType, `{"ip_range":"10.1.0.0/16","subnet":"10.1.2.0/24","wireguard_private_key":"`+wgKey+`","peers":[{"subnet":"10.1.3.0/24","allowed_ips":["10.1.3.0/24"]}]}`)), "peers[0].wireguard_public_key: is empty"},
		{"network peer no subnet", dep(wl("n", NetworkType, `{"ip_range":"10.1.0.0/16","subnet":"10.1.2.0/24","wireguard_private_key":"`+wgKey+`","peers":[{"wireguard_public_key":"`+wgKey+`","allowed_ips":["10.1.3.0/24"]}]}`)), "peers[0].subnet: is empty"},
		{"network mycelium short", dep(wl("n", NetworkType, `{"ip_range":"10.1.0.0/16","subnet":"10.1.2.0/24","wireguard_private_key":"`+wgKey+`","mycelium":{"hex_key":"00"}}`)), "mycelium.hex_key: must be 32 bytes"},
		{"network mycelium peers", dep(wl("n", NetworkType, `{"ip_range":"10.1.0.0/16","subnet":"10.1.2.0/24","wireguard_private_key":"`+wgKey+`","mycelium":{"hex_key":"`+hex32+`","peers":["tcp://x"]}}`)), "mycelium.peers"},
		{"network light ok", dep(wl("n", NetworkLightType, `{"subnet":"10.1.2.0/24","mycelium":{"hex_key":"`+hex32+`"}}`)), ""},
		{"network light no subnet", dep(wl("n", NetworkLightType, `{"mycelium":{"hex_key":"`+hex32+`"}}`)), "(network-light): subnet: is empty"},
		{"network light no mycelium", dep(wl("n", NetworkLightType, `{"subnet":"10.1.2.0/24"}`)), "mycelium.hex_key"},

		{"gw name ok", dep(wl("g", GatewayNameProxyType, `{"name":"my-app_1","backends":["http://10.0.0.2:80"]}`)), ""},
		{"gw name bad", dep(wl("g", GatewayNameProxyType, `{"name":"my.app","backends":["http://10.0.0.2:80"]}`)), `name: "my.app"`},
		{"gw no backends", dep(wl("g", GatewayNameProxyType, `{"name":"a"}`)), "backends: at least one"},
		{"gw https backend", dep(wl("g", GatewayNameProxyType, `{"name":"a","backends":["https://10.0.0.2"]}`)), "must use the http scheme"},
		{"gw loopback backend", dep(wl("g", GatewayNameProxyType, `{"name":"a","backends":["http://127.0.0.1:80"]}`)), "loopback"},
		{"gw hostname backend", dep(wl("g", GatewayNameProxyType, `{"name":"a","backends":["http://example.com"]}`)), "is not an IP address"},
		{"gw passthrough ok", dep(wl("g", GatewayNameProxyType, `{"name":"a","tls_passthrough":true,"backends":["10.0.0.2:443"]}`)), ""},
		{"gw passthrough url", dep(wl("g", GatewayNameProxyType, `{"name":"a","tls_passthrough":true,"backends":["http://10.0.0.2:443"]}`)), "must be ip:port"},
		{"gw fqdn ok", dep(wl("g", GatewayFQDNProxyType, `{"fqdn":"a.example.com","backends":["http://10.0.0.2"]}`)), ""},
		{"gw fqdn bad", dep(wl("g", GatewayFQDNProxyType, `{"fqdn":"nodots","backends":["http://10.0.0.2"]}`)), `fqdn: "nodots"`},

		{"qsfs ok", dep(wl("q", QuantumSafeFSType, `{"cache":1,"config":{"minimal_shards":2,"expected_shards":4,"encryption":{"key":"`+hex32+`"},"meta":{"config":{"encryption":{"key":"`+hex32+`"}}}}}`)), ""},
		{"qsfs shards", dep(wl("q", QuantumSafeFSType, `{"cache":1,"config":{"minimal_shards":5,"expected_shards":4,"encryption":{"key":"`+hex32+`"},"meta":{"config":{"encryption":{"key":"`+hex32+`"}}}}}`)), "minimal_shards: 5 is more than expected_shards 4"},
		{"qsfs key", dep(wl("q", QuantumSafeFSType, `{"cache":1,"config":{"minimal_shards":2,"expected_shards":4,"encryption":{"key":"00"}}}`)), "config.encryption.key"},

		{"zlogs ok", dep(wl("vm", ZMachineType, vmOK), wl("l", ZLogsType, `{"zmachine":"vm","output":"ws://10.0.0.9/logs"}`)), ""},
		{"zlogs no vm", dep(wl("l", ZLogsType, `{"zmachine":"vm","output":"redis://10.0.0.9"}`)), `zmachine: "vm" is not a zmachine`},
		{"zlogs scheme", dep(wl("vm", ZMachineType, vmOK), wl("l", ZLogsType, `{"zmachine":"vm","output":"http://10.0.0.9"}`)), `scheme "http"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.d.Valid()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("got error %v, want valid", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("got valid, want error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("got error %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestCapacity(t *testing.T) {
	d := dep(
		wl("vm", ZMachineType, vmOK),
		wl("d", ZMountType, `{"size":10}`),
		wl("v", VolumeType, `{"size":20}`),
		wl("z", ZDBType, `{"size":30,"mode":"user"}`),
		wl("i", PublicIPType, `{"v4":true,"v6":true}`),
		wl("i6", PublicIPType, `{"v6":true}`),
		wl("i4", PublicIPv4Type, `{}`),
	)
	got, err := d.Capacity()
	if err != nil {
		t.Fatal(err)
	}
	want := Capacity{CRU: 1, MRU: 268435456, SRU: 524288000 + 30, HRU: 30, IPV4U: 2}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestIDs(t *testing.T) {
	id := NewWorkloadID(162, 132880, "vm1")
	if id != "162-132880-vm1" {
		t.Fatalf("got %s", id)
	}
	tw, c, n, err := id.Parts()
	if err != nil || tw != 162 || c != 132880 || n != "vm1" {
		t.Fatalf("got %d %d %s %v", tw, c, n, err)
	}
	if _, _, _, err := WorkloadID("x-y").Parts(); err == nil {
		t.Fatal("bad id parsed")
	}
	u := id.Unique("net1")
	if len(u) != 13 || u != id.Unique("net1") || u == id.Unique("net2") {
		t.Fatalf("unique %q is not a stable 13-character name", u)
	}
	if n := NetID(162, "net1"); len(n) != 13 {
		t.Fatalf("netid %q", n)
	}
	// Base58 of known vectors (Bitcoin alphabet).
	for in, want := range map[string]string{"": "", "\x00\x00\x01": "112", "hello world": "StV1DL6CwTryKyV"} {
		if got := Base58([]byte(in)); got != want {
			t.Errorf("Base58(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTimestamp(t *testing.T) {
	for in, want := range map[string]Timestamp{`1700000000`: 1700000000, `"2023-11-14T22:13:20Z"`: 1700000000, `"1700000000"`: 1700000000, `null`: 0, `""`: 0} {
		var ts Timestamp
		if err := json.Unmarshal([]byte(in), &ts); err != nil || ts != want {
			t.Errorf("%s: got %d %v, want %d", in, ts, err, want)
		}
	}
	for _, in := range []string{`"yesterday"`, `1.5`, `99999999999999999999999`, `{}`} {
		var ts Timestamp
		if err := json.Unmarshal([]byte(in), &ts); err == nil {
			t.Errorf("%s: got no error", in)
		}
	}
}

func TestDecodeBadInput(t *testing.T) {
	for name, in := range map[string]string{
		"empty":     ``,
		"truncated": `{"version": 0, "workloads": [`,
		"huge":      `{"version": 99999999999999999999}`,
		"wrongtype": `{"twin_id": "abc"}`,
		"yaml junk": "a: [b\n",
	} {
		if _, err := Decode([]byte(in)); err == nil {
			t.Errorf("%s: got no error", name)
		}
	}
	if _, err := Decode(make([]byte, MaxDeploymentBytes+1)); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("oversized: got %v", err)
	}
}
