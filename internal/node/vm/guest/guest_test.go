package guest

import (
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/testutil"
)

func TestEncodeDecode(t *testing.T) {
	c := Config{
		Hostname: "vm1", Entrypoint: []string{"/bin/sh", "-c", "echo hi"},
		Env:        map[string]string{"B": "2", "A": "1", "SSH_KEY": "ssh-ed25519 AAAA x"},
		Interfaces: []Interface{{Name: "eth0", Address: "10.20.2.5/24", Gateway: "10.20.2.1"}},
		DNS:        []string{"8.8.8.8"}, Mounts: []Mount{{Tag: "vol1", Mountpoint: "/data"}},
	}
	s, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(s, " =") {
		t.Fatalf("encoded config %q has separators", s)
	}
	got, err := Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := strings.Join(got.Environ(), ","), "A=1,B=2,SSH_KEY=ssh-ed25519 AAAA x"; g != w {
		t.Fatalf("got env %q, want %q", g, w)
	}
	if got.Interfaces[0].Gateway != "10.20.2.1" || got.Mounts[0].Mountpoint != "/data" {
		t.Fatalf("got %+v", got)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name, json, want string
	}{
		{"ok", `{"entrypoint":["/bin/true"]}`, ""},
		{"no entrypoint", `{}`, "entrypoint: missing"},
		{"relative entrypoint", `{"entrypoint":["true"]}`, "absolute"},
		{"bad address", `{"entrypoint":["/x"],"interfaces":[{"name":"eth0","address":"10.0.0.1"}]}`, "CIDR"},
		{"bad gateway", `{"entrypoint":["/x"],"interfaces":[{"name":"eth0","address":"10.0.0.1/24","gateway":"x"}]}`, "gateway"},
		{"ipv6 only", `{"entrypoint":["/x"],"interfaces":[{"name":"eth1","address6":"2001:db8:1::5/128","gateway6":"fe80::1"}]}`, ""},
		{"dual stack", `{"entrypoint":["/x"],"interfaces":[{"name":"eth1","address":"203.0.113.5/24","address6":"2001:db8:1::5/128","gateway6":"fe80::1"}]}`, ""},
		{"ipv4 as address6", `{"entrypoint":["/x"],"interfaces":[{"name":"eth1","address6":"10.0.0.1/24"}]}`, "address6"},
		{"bad gateway6", `{"entrypoint":["/x"],"interfaces":[{"name":"eth1","address6":"2001:db8:1::5/128","gateway6":"10.0.0.1"}]}`, "gateway6"},
		{"planetary", `{"entrypoint":["/x"],"interfaces":[{"name":"eth2","address6":"300:1::2a:51ff:feda:1adb/128","routes6":[{"dst":"200::/7","via":"fe80::1"}]}]}`, ""},
		{"ipv4 route6", `{"entrypoint":["/x"],"interfaces":[{"name":"eth2","address6":"300:1::5/128","routes6":[{"dst":"10.0.0.0/8","via":"fe80::1"}]}]}`, "route6"},
		{"ipv4 route6 via", `{"entrypoint":["/x"],"interfaces":[{"name":"eth2","address6":"300:1::5/128","routes6":[{"dst":"200::/7","via":"10.0.0.1"}]}]}`, "route6"},
		{"no address at all", `{"entrypoint":["/x"],"interfaces":[{"name":"eth1"}]}`, "CIDR"},
		{"bad dns", `{"entrypoint":["/x"],"dns":["nope"]}`, "dns"},
		{"root mount", `{"entrypoint":["/x"],"mounts":[{"tag":"a","mountpoint":"/"}]}`, "mount"},
		{"bad env", `{"entrypoint":["/x"],"env":{"A=B":"1"}}`, "env"},
		{"disk ok", `{"entrypoint":["/x"],"disks":[{"serial":"d0","mountpoint":"/data"}]}`, ""},
		{"disk no serial", `{"entrypoint":["/x"],"disks":[{"mountpoint":"/data"}]}`, "disk"},
		{"disk root", `{"entrypoint":["/x"],"disks":[{"serial":"d0","mountpoint":"/"}]}`, "disk"},
		{"disk relative", `{"entrypoint":["/x"],"disks":[{"serial":"d0","mountpoint":"data"}]}`, "disk"},
		{"not json", `{`, "parsing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.json))
			testutil.WantError(t, err, tt.want)
		})
	}
}

func TestParseCmdline(t *testing.T) {
	c := ParseCmdline("console=ttyS0 root=vroot rootfstype=virtiofs quiet vminit.config=abc root=other")
	if c["root"] != "other" || c["rootfstype"] != "virtiofs" || c["vminit.config"] != "abc" {
		t.Fatalf("got %v", c)
	}
	if _, ok := c["quiet"]; !ok {
		t.Fatal("flag quiet missing")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("eyJlbnRyeXBvaW50IjpbIi9iaW4vdHJ1ZSJdfQ")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Decode(s)
		if err == nil && c.Validate() != nil {
			t.Fatal("Decode returned an invalid config")
		}
	})
}
