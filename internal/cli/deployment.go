package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/identity"
)

// deploymentCommand groups the offline commands on deployment files and
// the online ones (list, get, changes, update, cancel) that other files add
// through deploymentOnline.
func deploymentCommand() *command {
	subs := []*command{
		{name: "hash", usage: "FILE", summary: "print the hex challenge hash of a deployment", run: deploymentHash},
		{name: "sign", usage: "--twin ID [--key FILE] [-o OUT] FILE", summary: "add or replace a twin's signature", run: deploymentSign},
		{name: "validate", usage: "FILE", summary: "check a deployment against the rules of every workload", run: deploymentValidate},
		{name: "verify", usage: "--twin-key ID=PUBKEY... FILE", summary: "check a deployment's signatures", run: deploymentVerify},
	}
	subs = append(subs, deploymentOnline()...)
	return &command{name: "deployment", summary: "hash, sign, validate, verify and manage deployments", subs: subs}
}

// readDeployment reads a JSON or YAML deployment from a file, or stdin for "-".
func readDeployment(env *Env, path string) (*gridtypes.Deployment, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(env.Stdin, gridtypes.MaxDeploymentBytes+1))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("reading deployment: %w", err)
	}
	d, err := decodeDeployment(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

func oneFile(fs *flag.FlagSet, env *Env, args []string) (string, error) {
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", usageError("want exactly one deployment file, got %d", len(pos))
	}
	return pos[0], nil
}

// oneDeployment parses FILE, the one positional argument, and reads the
// deployment in it.
func oneDeployment(fs *flag.FlagSet, env *Env, args []string) (string, *gridtypes.Deployment, error) {
	path, err := oneFile(fs, env, args)
	if err != nil {
		return "", nil, err
	}
	d, err := readDeployment(env, path)
	if err != nil {
		return "", nil, err
	}
	return path, d, nil
}

func deploymentHash(_ context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("deployment hash", flag.ContinueOnError)
	_, d, err := oneDeployment(fs, env, args)
	if err != nil {
		return err
	}
	h, err := d.Hash()
	if err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, h)
	return nil
}

func deploymentSign(_ context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("deployment sign", flag.ContinueOnError)
	keyPath := keyFlag(fs, env)
	twin := fs.Uint("twin", 0, "twin id of the signer (required)")
	out := fs.String("o", "", "write the signed deployment here instead of back into FILE")
	path, err := oneFile(fs, env, args)
	if err != nil {
		return err
	}
	signer, err := requiredID("twin", *twin)
	if err != nil {
		return err
	}
	key, err := loadKey(*keyPath)
	if err != nil {
		return err
	}
	d, err := readDeployment(env, path)
	if err != nil {
		return err
	}
	if err := d.Sign(signer, key); err != nil {
		return err
	}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding deployment: %w", err)
	}
	b = append(b, '\n')
	dst := *out
	if dst == "" {
		dst = path
	}
	if dst == "-" {
		_, err = env.Stdout.Write(b)
		return err
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		return fmt.Errorf("writing signed deployment: %w", err)
	}
	return nil
}

func deploymentValidate(_ context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("deployment validate", flag.ContinueOnError)
	path, d, err := oneDeployment(fs, env, args)
	if err != nil {
		return err
	}
	if err := d.Valid(); err != nil {
		return fmt.Errorf("%s: invalid: %w", path, err)
	}
	c, err := d.Capacity()
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%s: valid, %d workloads, capacity cru=%d mru=%d sru=%d hru=%d ipv4u=%d\n",
		path, len(d.Workloads), c.CRU, c.MRU, c.SRU, c.HRU, c.IPV4U)
	return nil
}

func deploymentVerify(_ context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("deployment verify", flag.ContinueOnError)
	var twinKeys multiFlag
	fs.Var(&twinKeys, "twin-key", "ID=PUBKEY (hex ed25519), repeatable")
	path, err := oneFile(fs, env, args)
	if err != nil {
		return err
	}
	keys := map[uint32][]byte{}
	for _, tk := range twinKeys {
		id, pk, ok := strings.Cut(tk, "=")
		if !ok {
			return usageError("--twin-key %q: want ID=PUBKEY", tk)
		}
		n, err := strconv.ParseUint(id, 10, 32)
		if err != nil {
			return usageError("--twin-key %q: bad twin id", tk)
		}
		pub, err := identity.ParsePublic(pk)
		if err != nil {
			return fmt.Errorf("--twin-key %s: %w", id, err)
		}
		keys[uint32(n)] = pub
	}
	d, err := readDeployment(env, path)
	if err != nil {
		return err
	}
	if err := d.Valid(); err != nil {
		return fmt.Errorf("%s: invalid: %w", path, err)
	}
	err = d.Verify(gridtypes.KeyGetterFunc(func(twin uint32) ([]byte, error) {
		k, ok := keys[twin]
		if !ok {
			return nil, fmt.Errorf("no key given for twin %d (use --twin-key %d=PUBKEY)", twin, twin)
		}
		return k, nil
	}))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	fmt.Fprintf(env.Stdout, "%s: signatures verified\n", path)
	return nil
}
