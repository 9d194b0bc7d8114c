package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/zos-go/zos/internal/identity"
)

func keyCommand() *command {
	return &command{name: "key", summary: "create and show the user's key", subs: []*command{
		{name: "new", usage: "[--key FILE] [--mnemonic] [--force]", summary: "create a new key", run: keyNew},
		{name: "show", usage: "[--key FILE] [--mnemonic]", summary: "print the public key (and where the key lives)", run: keyShow},
	}}
}

// keyFlag adds --key with its default under the config directory.
func keyFlag(fs *flag.FlagSet, env *Env) *string {
	return fs.String("key", filepath.Join(configDir(env), "key.json"), "key file")
}

// loadKey reads the user's key, with a hint when there is none.
func loadKey(path string) (identity.Key, error) {
	k, err := identity.Load(path)
	if errors.Is(err, os.ErrNotExist) {
		return identity.Key{}, fmt.Errorf("no key at %s: create one with `zosctl key new`", path)
	}
	return k, err
}

func keyNew(_ context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("key new", flag.ContinueOnError)
	path := keyFlag(fs, env)
	mnemonic := fs.Bool("mnemonic", false, "make the key from a new 24-word mnemonic and print the words")
	force := fs.Bool("force", false, "overwrite an existing key")
	if _, err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if _, err := os.Stat(*path); err == nil && !*force {
		return fmt.Errorf("a key already exists at %s (use --force to replace it)", *path)
	}
	gen := identity.Generate
	if *mnemonic {
		gen = identity.GenerateMnemonic
	}
	k, err := gen()
	if err != nil {
		return err
	}
	if err := identity.Save(*path, k); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "key:    %s\npublic: %s\n", *path, k.PublicHex())
	if *mnemonic {
		fmt.Fprintf(env.Stdout, "words:  %s\n(write the words down: they are the key)\n", k.Mnemonic())
	}
	return nil
}

func keyShow(_ context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("key show", flag.ContinueOnError)
	path := keyFlag(fs, env)
	words := fs.Bool("mnemonic", false, "also print the mnemonic words")
	if _, err := parseFlags(fs, env, args); err != nil {
		return err
	}
	k, err := loadKey(*path)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "key:    %s\npublic: %s\n", *path, k.PublicHex())
	if *words && k.Mnemonic() != "" {
		fmt.Fprintf(env.Stdout, "words:  %s\n", k.Mnemonic())
	}
	return nil
}
