package gridtypes

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/testutil"
)

// TestGolden checks, for one deployment per workload type, the challenge
// stream (the text before MD5, readable against the reference) and its hash.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[WorkloadType]bool{}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			d, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Valid(); err != nil {
				t.Fatalf("golden deployment is not valid: %v", err)
			}
			for _, wl := range d.Workloads {
				seen[wl.Type] = true
			}
			var stream bytes.Buffer
			if err := d.Challenge(&stream); err != nil {
				t.Fatal(err)
			}
			hash, err := d.Hash()
			if err != nil {
				t.Fatal(err)
			}
			testutil.Golden(t, strings.TrimSuffix(f, ".json")+".stream", stream.Bytes())
			testutil.Golden(t, strings.TrimSuffix(f, ".json")+".hash", []byte(hash+"\n"))
		})
	}
	for _, typ := range Types() {
		if !seen[typ] {
			t.Errorf("no golden deployment has a %s workload", typ)
		}
	}
}

// TestStreamByHand spells out the challenge of small deployments from the
// reference's rules, independently of the golden files.
func TestStreamByHand(t *testing.T) {
	for _, tt := range []struct {
		file string
		want string
	}{
		{
			// version, twin, metadata, description, expiration; workload
			// version, name, type, metadata, description, size; requests
			// (twin, required, weight), weight_required, style.
			file: "testdata/zmount.json",
			want: "0" + "162" + `{"type":"disk"}` + "a disk" + "0" +
				"0" + "disk1" + "zmount" + "" + "" + "10737418240" +
				"162" + "false" + "1" + "1" + "",
		},
		{
			file: "testdata/zdb.json",
			want: "0" + "162" + "" + "" + "1700000000" +
				"0" + "db" + "zdb" + "" + "" + "10737418240" + "user" + "s3cret" + "true" +
				"162" + "false" + "1" + "1" + "",
		},
		{
			file: "testdata/volume.json",
			want: "2" + "7" + "" + "" + "1700000000" +
				"1" + "vol" + "volume" + "m" + "d" + "5368709120" +
				"7" + "true" + "2" + "8" + "false" + "1" + "2" + "polka-wallet",
		},
		{
			file: "testdata/gateway-fqdn-proxy.json",
			want: "0" + "162" + "" + "" + "0" +
				"0" + "gw" + "gateway-fqdn-proxy" + "" + "" + "app.example.com" + "true" + "185.1.2.3:443" +
				"162" + "false" + "1" + "1" + "",
		},
	} {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			d, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := d.Challenge(&got); err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.want {
				t.Errorf("\n got %q\nwant %q", got.String(), tt.want)
			}
		})
	}
}

// TestYAMLEqualsJSON checks that YAML input reads as the same deployment.
func TestYAMLEqualsJSON(t *testing.T) {
	j, _ := os.ReadFile("testdata/zdb.json")
	y, _ := os.ReadFile("testdata/zdb.yaml")
	dj, err := Decode(j)
	if err != nil {
		t.Fatal(err)
	}
	dy, err := Decode(y)
	if err != nil {
		t.Fatal(err)
	}
	hj, _ := dj.Hash()
	hy, _ := dy.Hash()
	if hj != hy {
		t.Fatalf("YAML hash %s differs from JSON hash %s", hy, hj)
	}
}

func TestContractIDAndSignaturesNotHashed(t *testing.T) {
	b, _ := os.ReadFile("testdata/zmount.json")
	d, _ := Decode(b)
	h1, _ := d.Hash()
	d.ContractID = 42
	d.SignatureRequirement.Signatures = append(d.SignatureRequirement.Signatures, Signature{TwinID: 1, Signature: "00"})
	h2, _ := d.Hash()
	if h1 != h2 {
		t.Fatal("contract id or signatures changed the hash")
	}
	d.Workloads[0].Description = "x"
	h3, _ := d.Hash()
	if h3 == h1 {
		t.Fatal("a workload change did not change the hash")
	}
}
