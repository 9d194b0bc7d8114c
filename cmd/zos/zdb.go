package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"

	"github.com/zos-go/zos/internal/node/zdb"
	"github.com/zos-go/zos/internal/resp"
)

// runZdb runs the 0-db compatible server, or with "compact" compacts a store
// offline.
//
//	zos zdb --data DIR --index DIR [--listen ADDR] [--port 9900] [--mode user|seq]
//	        [--admin PASSWORD] [--protect] [--sync always|interval] [--datasize BYTES]
//	zos zdb compact --data DIR --index DIR
func runZdb(ctx context.Context, args []string) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if len(args) > 0 && args[0] == "compact" {
		fs := flag.NewFlagSet("zdb compact", flag.ContinueOnError)
		data := fs.String("data", "", "data directory")
		index := fs.String("index", "", "index directory")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		st, err := zdb.Compact(zdb.Config{DataDir: *data, IndexDir: *index}, log)
		if err != nil {
			return err
		}
		fmt.Printf("compacted %d namespaces: %d entries kept, %d -> %d data bytes\n",
			st.Namespaces, st.Entries, st.BytesBefore, st.BytesAfter)
		return nil
	}
	fs := flag.NewFlagSet("zdb", flag.ContinueOnError)
	data := fs.String("data", "./zdb-data", "data directory")
	index := fs.String("index", "./zdb-index", "index directory")
	listen := fs.String("listen", "::", "listen address")
	port := fs.Int("port", resp.ZDBPort, "listen port")
	mode := fs.String("mode", "user", "default mode: user or seq")
	admin := fs.String("admin", "", "admin password (empty: every client is admin)")
	protect := fs.Bool("protect", false, "default namespace read-only unless admin")
	syncMode := fs.String("sync", "interval", "always: acknowledge writes once on disk; interval: fsync every second")
	datasize := fs.Int64("datasize", 256<<20, "data file size at which files rotate")
	if err := fs.Parse(args); err != nil {
		return err
	}
	m, err := zdb.ParseMode(*mode)
	if err != nil {
		return err
	}
	if *protect && *admin == "" {
		return errors.New("--protect needs --admin")
	}
	store, err := zdb.Open(zdb.Config{DataDir: *data, IndexDir: *index, Mode: m,
		Sync: zdb.SyncMode(*syncMode), MaxDataFileSize: *datasize}, log)
	if err != nil {
		return err
	}
	defer store.Close()
	ln, err := net.Listen("tcp", net.JoinHostPort(*listen, strconv.Itoa(*port)))
	if err != nil && *listen == "::" { // host without IPv6
		ln, err = net.Listen("tcp", net.JoinHostPort("0.0.0.0", strconv.Itoa(*port)))
	}
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	srv := zdb.NewServer(zdb.ServerConfig{Admin: *admin, Protect: *protect}, log, store)
	return srv.Serve(ctx, ln)
}
