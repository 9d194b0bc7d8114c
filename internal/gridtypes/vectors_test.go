package gridtypes

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// vectorsDir holds deployments hashed, validated and signed by ThreeFold's
// own code (zosbase pkg/gridtypes at 063d895), with its verdicts in
// expected.tsv (see its README): an external golden set, unlike the other
// goldens under testdata/, which our own code wrote. Copied verbatim.
const vectorsDir = "testdata/threefold"

// Deliberate differences from the original, by file.
var vectorDifferences = map[string]struct{ valid, verify string }{
	// The original fails verification when an optional (not required)
	// twin did not sign, even when the signatures present reach the
	// required weight; here such a twin adds no weight and nothing fails.
	"multisig-optional-unsigned.json": {verify: "ok"},
	// The original accepts a VM mounting a workload the deployment lacks
	// and fails only at provisioning; here validation refuses it at once.
	"edge-zmachine-mount-missing.json": {valid: "ERR"},
}

// TestThreeFoldVectors checks our challenge hash, validation verdict and
// signature verification against every deployment ThreeFold's code
// produced, in the same order that code computed them.
func TestThreeFoldVectors(t *testing.T) {
	dir := vectorsDir
	keys := vectorKeys(t, dir)
	f, err := os.Open(filepath.Join(dir, "expected.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	rows := 0
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) != 4 {
			t.Fatalf("expected.tsv: bad row %q", sc.Text())
		}
		file, wantHash, wantValid, wantVerify := cols[0], cols[1], cols[2], cols[3]
		rows++
		t.Run(strings.TrimSuffix(file, ".json"), func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(dir, file))
			if err != nil {
				t.Fatal(err)
			}
			d, err := Decode(b)
			if err != nil {
				t.Fatalf("decoding: %v", err)
			}
			h, err := d.ChallengeHash()
			if err != nil {
				t.Fatalf("challenge hash: %v", err)
			}
			if got := hex.EncodeToString(h); got != wantHash {
				t.Errorf("challenge hash: got %s, want %s", got, wantHash)
			}
			diff := vectorDifferences[file]
			if diff.valid != "" {
				wantValid = diff.valid
			}
			if diff.verify != "" {
				wantVerify = diff.verify
			}
			if got := verdict(d.Valid()); got != verdictOf(wantValid) {
				t.Errorf("valid: got %q (%v), ThreeFold says %q", got, d.Valid(), wantValid)
			}
			getter := keys["ed25519"]
			if file == "sr25519-owner.json" {
				getter = keys["sr25519-owner"]
			}
			if got := verdict(d.Verify(getter)); got != verdictOf(wantVerify) {
				t.Errorf("verify: got %q (%v), ThreeFold says %q", got, d.Verify(getter), wantVerify)
			}
		})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if rows < 40 {
		t.Fatalf("expected.tsv has %d rows, want the 44 vectors", rows)
	}
}

func verdict(err error) string {
	if err != nil {
		return "ERR"
	}
	return "ok"
}

func verdictOf(s string) string {
	if strings.HasPrefix(s, "ERR") {
		return "ERR"
	}
	return s
}

// vectorKeys reads keys.json: twins 1 and 2 ed25519, twin 3 sr25519;
// "sr25519-owner" has twin 1 on its sr25519 key.
func vectorKeys(t *testing.T, dir string) map[string]KeyGetter {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	var k map[string]string
	if err := json.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	get := func(names map[uint32]string) KeyGetter {
		return KeyGetterFunc(func(twin uint32) ([]byte, error) {
			name, ok := names[twin]
			if !ok {
				return nil, fmt.Errorf("twin %d not found", twin)
			}
			return hex.DecodeString(k[name])
		})
	}
	return map[string]KeyGetter{
		"ed25519":       get(map[uint32]string{1: "twin1_ed25519_pub", 2: "twin2_ed25519_pub", 3: "twin3_sr25519_pub"}),
		"sr25519-owner": get(map[uint32]string{1: "twin1_sr25519_pub", 2: "twin2_ed25519_pub", 3: "twin3_sr25519_pub"}),
	}
}
