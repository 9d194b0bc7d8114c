// Package nft loads nftables rulesets with the nft binary inside a named
// network namespace, and reads them back. It is the only package that
// runs nft: the network module (internal/node/network) computes rulesets
// as text and applies them through Tables.
package nft

import (
	"fmt"
	"strings"

	"github.com/zos-go/zos/internal/sys/netns"
)

// Tables loads and lists nftables tables; ns "" is the process's own
// namespace, any other name must exist (nothing falls back to the host).
type Tables struct{}

// run runs nft with argv inside ns, ruleset on stdin when not empty.
func run(ns, stdin string, argv ...string) (string, error) {
	if ns != "" && !netns.Exists(ns) {
		return "", fmt.Errorf("running nft: namespace %s does not exist", ns)
	}
	return netns.Run(ns, stdin, append([]string{"nft"}, argv...)...)
}

// Apply loads ruleset into ns atomically (`nft -f -`): either every line
// takes effect or none does.
func (Tables) Apply(ns, ruleset string) error {
	if strings.TrimSpace(ruleset) == "" {
		return fmt.Errorf("applying an empty ruleset in namespace %q", ns)
	}
	_, err := run(ns, ruleset, "-f", "-")
	return err
}

// Drop is the ruleset that removes table family name whether it exists or
// not (declaring it first makes the deletion never fail).
func Drop(family, name string) string {
	return fmt.Sprintf("table %[1]s %[2]s\ndelete table %[1]s %[2]s\n", family, name)
}

// List returns the tables of ns as "family name" (e.g. "inet zos-nr").
func (Tables) List(ns string) ([]string, error) {
	out, err := run(ns, "", "list", "tables")
	if err != nil {
		return nil, err
	}
	var tables []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "table" {
			tables = append(tables, f[1]+" "+f[2])
		}
	}
	return tables, nil
}

// Table returns table family name of ns as nft prints it.
func (Tables) Table(ns, family, name string) (string, error) {
	return run(ns, "", "list", "table", family, name)
}
