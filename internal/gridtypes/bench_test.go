package gridtypes

import (
	"encoding/json"
	"fmt"
	"testing"
)

// bigDeployment has 50 workloads of mixed types, signed by twin 1.
func bigDeployment(b *testing.B) (*Deployment, KeyGetter) {
	keys, getter := newKeys(b, 1)
	d := dep()
	for i := 0; i < 50; i++ {
		var w Workload
		switch i % 5 {
		case 0:
			w = wl(fmt.Sprintf("vm%d", i), ZMachineType, `{"flist":"https://hub/x.flist","network":{"interfaces":[{"network":"n","ip":"10.0.0.2"}]},"compute_capacity":{"cpu":2,"memory":2147483648},"env":{"A":"1","B":"2","SSH_KEY":"ssh-ed25519 AAAA"}}`)
		case 1:
			w = wl(fmt.Sprintf("disk%d", i), ZMountType, `{"size":10737418240}`)
		case 2:
			w = wl(fmt.Sprintf("vol%d", i), VolumeType, `{"size":10737418240}`)
		case 3:
			w = wl(fmt.Sprintf("db%d", i), ZDBType, `{"size":10737418240,"mode":"user","password":"secret"}`)
		case 4:
			w = Workload{Name: fmt.Sprintf("net%d", i), Type: NetworkType, Data: json.RawMessage(`{"ip_range":"10.1.0.0/16","subnet":"10.1.2.0/24","wireguard_private_key":"` + wgKey + `","peers":[{"subnet":"10.1.3.0/24","wireguard_public_key":"` + wgKey + `","allowed_ips":["10.1.3.0/24"]}]}`)}
		}
		d.Workloads = append(d.Workloads, w)
	}
	if err := d.Valid(); err != nil {
		b.Fatal(err)
	}
	if err := d.Sign(1, keys[1]); err != nil {
		b.Fatal(err)
	}
	return d, getter
}

func BenchmarkChallengeHash(b *testing.B) {
	d, _ := bigDeployment(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := d.ChallengeHash(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	d, getter := bigDeployment(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := d.Verify(getter); err != nil {
			b.Fatal(err)
		}
	}
}
