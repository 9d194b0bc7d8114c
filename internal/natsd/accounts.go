package natsd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/zos-go/zos/internal/atomicfile"
)

// The two accounts of an authenticating server. NATS accounts are separate
// subject spaces: a client of one cannot publish to, subscribe to, or reply
// into a subject of the other, except through what is exported and
// imported.
//
//   - GridAccount holds the grid's own connections (the system key: registry,
//     explorer, hub) and JetStream, with every bucket and stream of the
//     registry. It exports only the service subjects of Config.TwinServices.
//   - TwinAccount holds every other client (twins, nodes, unregistered keys).
//     It imports those services; a request's reply subject is mapped by the
//     server to a one-time subject in the grid account and back, so the
//     answer can only ever land in the requester's own account. It has no
//     JetStream: twins cannot reach the grid's data in any way.
const (
	GridAccount = "GRID"
	TwinAccount = "TWINS"
	// InboxStream is what the grid account publishes into the twin
	// account: answers on twins' inboxes.
	InboxStream = "_INBOX.>"
)

// AccountBinder is implemented by an authenticator that places clients into
// the accounts: Start hands it the server's two accounts before the server
// accepts connections. An authenticator of a server with accounts must
// place every client it admits into one of them.
type AccountBinder interface {
	BindAccounts(grid, twins *server.Account)
}

// subjectRE is what a service subject may look like: NATS tokens of
// letters, digits, '_' and '-', joined by dots, no wildcards.
var subjectRE = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

// accountsConfig is the NATS configuration text of the two accounts.
func accountsConfig(services []string) (string, error) {
	var exp, imp []string
	for _, s := range services {
		if !subjectRE.MatchString(s) {
			return "", fmt.Errorf("natsd: service subject %q: want literal tokens, no wildcards", s)
		}
		// The services answer twins on their own inbox (below), not on
		// the reply subject, whose mapping then expires quickly.
		exp = append(exp, fmt.Sprintf("{service: %q, accounts: [%s], response_threshold: \"5s\"}", s, TwinAccount))
		// share: the request carries the requester's key (header
		// Nats-Request-Info), by which the services limit each key.
		imp = append(imp, fmt.Sprintf("{service: {account: %s, subject: %q}, share: true}", GridAccount, s))
	}
	// Answers to twins: the grid publishes on the requester's own inbox
	// (_INBOX.<hex key>.…), which flows into the twin account, where only
	// that key may subscribe to it. A reply subject chosen by the
	// requester is never used for a twin, so an answer cannot be steered
	// to another twin (NATS checks no permission on reply subjects).
	exp = append(exp, fmt.Sprintf("{stream: %q, accounts: [%s]}", InboxStream, TwinAccount))
	imp = append(imp, fmt.Sprintf("{stream: {account: %s, subject: %q}}", GridAccount, InboxStream))
	return fmt.Sprintf("accounts: {\n  %s: {jetstream: enabled, exports: [%s]}\n  %s: {jetstream: disabled, imports: [%s]}\n}\n",
		GridAccount, strings.Join(exp, ", "), TwinAccount, strings.Join(imp, ", ")), nil
}

// configureAccounts adds the two accounts to opts.
func configureAccounts(opts *server.Options, services []string) error {
	text, err := accountsConfig(services)
	if err != nil {
		return err
	}
	if err := opts.ProcessConfigString(text); err != nil {
		return fmt.Errorf("natsd: configuring accounts: %w", err)
	}
	return nil
}

// bindAccounts hands the server's accounts to auth.
func bindAccounts(ns *server.Server, auth server.Authentication) error {
	b, ok := auth.(AccountBinder)
	if !ok {
		return errors.New("natsd: the authenticator cannot place clients into accounts (no BindAccounts)")
	}
	grid, err := ns.LookupAccount(GridAccount)
	if err != nil {
		return fmt.Errorf("natsd: account %s: %w", GridAccount, err)
	}
	twins, err := ns.LookupAccount(TwinAccount)
	if err != nil {
		return fmt.Errorf("natsd: account %s: %w", TwinAccount, err)
	}
	b.BindAccounts(grid, twins)
	return nil
}

// globalAccountDir is where JetStream kept the data of a server without
// accounts (NATS's global account).
const globalAccountDir = "$G"

// migrateStore moves the JetStream data of a single server that ran
// without accounts (account "$G") to the grid account, once. A cluster's
// data is also described by its replicated metadata, which a move would
// contradict: it is refused with what to do instead.
func migrateStore(storeDir string, clustered bool) error {
	js := filepath.Join(storeDir, server.JetStreamStoreDir)
	old, dst := filepath.Join(js, globalAccountDir), filepath.Join(js, GridAccount)
	if _, err := os.Stat(filepath.Join(old, "streams")); err != nil {
		return nil // nothing stored before accounts
	}
	if _, err := os.Stat(dst); err == nil {
		return nil // already migrated (the old directory is left alone)
	}
	if clustered {
		return fmt.Errorf("natsd: %s holds JetStream data from before the grid's accounts; a cluster cannot move it in place: "+
			"run it as a single server (without --cluster-port) once to move it, then form the cluster anew", old)
	}
	if err := os.Rename(old, dst); err != nil {
		return fmt.Errorf("natsd: moving JetStream data to the grid account: %w", err)
	}
	return atomicfile.SyncDir(js)
}
