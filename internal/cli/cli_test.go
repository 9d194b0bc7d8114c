package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run executes zosctl in-process with ZOSCTL_HOME at home.
func run(t *testing.T, home string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, Env{
		Stdout: &out,
		Stderr: &errb,
		Getenv: func(k string) string {
			if k == "ZOSCTL_HOME" {
				return home
			}
			return ""
		},
	})
	return out.String(), errb.String(), code
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestKeyAndDeploymentOffline(t *testing.T) {
	home := t.TempDir()
	dir := t.TempDir()

	if _, errs, code := run(t, home, "key", "show"); code == 0 || !strings.Contains(errs, "zosctl key new") {
		t.Fatalf("key show without a key: code %d, stderr %q", code, errs)
	}
	out, errs, code := run(t, home, "key", "new", "--mnemonic")
	if code != 0 || !strings.Contains(out, "words:") {
		t.Fatalf("key new: code %d\n%s%s", code, out, errs)
	}
	if _, _, code := run(t, home, "key", "new"); code == 0 {
		t.Fatal("key new overwrote an existing key without --force")
	}
	out, _, code = run(t, home, "key", "show")
	if code != 0 {
		t.Fatalf("key show: %d", code)
	}
	pub := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "public:") {
			pub = strings.TrimSpace(strings.TrimPrefix(l, "public:"))
		}
	}
	if len(pub) != 64 {
		t.Fatalf("no public key in %q", out)
	}

	f := filepath.Join(dir, "d.json")
	copyFile(t, "../gridtypes/testdata/zdb.json", f)
	want, _ := os.ReadFile("../gridtypes/testdata/zdb.hash")
	out, errs, code = run(t, home, "deployment", "hash", f)
	if code != 0 || out != string(want) {
		t.Fatalf("hash: code %d out %q want %q %s", code, out, want, errs)
	}
	// YAML reads the same.
	y := filepath.Join(dir, "d.yaml")
	copyFile(t, "../gridtypes/testdata/zdb.yaml", y)
	if out, _, _ := run(t, home, "deployment", "hash", y); out != string(want) {
		t.Fatalf("yaml hash %q, want %q", out, want)
	}

	if out, errs, code = run(t, home, "deployment", "validate", f); code != 0 || !strings.Contains(out, "valid, 1 workloads") {
		t.Fatalf("validate: %d %q %q", code, out, errs)
	}
	// Not signed yet: verify fails, naming the missing twin.
	if _, errs, code = run(t, home, "deployment", "verify", f, "--twin-key", "162="+pub); code == 0 || !strings.Contains(errs, "required twin 162") {
		t.Fatalf("verify unsigned: %d %q", code, errs)
	}
	if _, errs, code = run(t, home, "deployment", "sign", "--twin", "162", f); code != 0 {
		t.Fatalf("sign: %d %q", code, errs)
	}
	if out, errs, code = run(t, home, "deployment", "verify", f, "--twin-key", "162="+pub); code != 0 || !strings.Contains(out, "verified") {
		t.Fatalf("verify: %d %q %q", code, out, errs)
	}
	// Signing keeps the hash.
	if out, _, _ := run(t, home, "deployment", "hash", f); out != string(want) {
		t.Fatalf("hash after signing %q, want %q", out, want)
	}
	// A tampered deployment fails verification.
	b, _ := os.ReadFile(f)
	tampered := filepath.Join(dir, "t.json")
	os.WriteFile(tampered, bytes.Replace(b, []byte(`"s3cret"`), []byte(`"other"`), 1), 0o644)
	if _, errs, code = run(t, home, "deployment", "verify", tampered, "--twin-key", "162="+pub); code != 1 || !strings.Contains(errs, "does not match") {
		t.Fatalf("verify tampered: %d %q", code, errs)
	}
	// Bad inputs: clear errors, non-zero exits.
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"workloads":[{"name":"x","type":"zdb","data":{"size":0,"mode":"user"}}],"twin_id":1,"signature_requirement":{"requests":[{"twin_id":1}]}}`), 0o644)
	if _, errs, code = run(t, home, "deployment", "validate", bad); code != 1 || !strings.Contains(errs, `workload "x" (zdb): size`) {
		t.Fatalf("validate bad: %d %q", code, errs)
	}
	if _, errs, code = run(t, home, "deployment", "verify", f, "--twin-key", "162=abcd"); code != 1 || !strings.Contains(errs, "public key is 2 bytes") {
		t.Fatalf("verify short key: %d %q", code, errs)
	}
	if _, _, code = run(t, home, "deployment", "hash"); code != 2 {
		t.Fatalf("hash without file: got code %d, want 2", code)
	}
	if _, errs, code = run(t, home, "deployment", "hash", filepath.Join(dir, "missing.json")); code != 1 || !strings.Contains(errs, "no such file") {
		t.Fatalf("missing file: %d %q", code, errs)
	}
	if _, errs, code = run(t, home, "nosuch"); code != 2 || !strings.Contains(errs, "unknown command") {
		t.Fatalf("unknown command: %d %q", code, errs)
	}
}
