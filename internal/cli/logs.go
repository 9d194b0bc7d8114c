package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/zos-go/zos/internal/consolelog"
	"github.com/zos-go/zos/internal/nodeapi"
)

func logsCommand() *command {
	return &command{
		name:  "logs",
		usage: "CONTRACT VM [-f] [--tail N]",
		summary: "print the console log of a virtual machine of a deployment; -f follows it " +
			"(every second, until Ctrl-C), --tail N starts with its last N lines",
		run: logsRun,
	}
}

func logsRun(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	f := addGridFlags(fs, env)
	follow := fs.Bool("f", false, "follow: print what the machine writes, until Ctrl-C")
	tail := fs.Int("tail", 0, "start with the last N lines (0: the whole log)")
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageError("want a contract id and a machine name")
	}
	if *tail < 0 {
		return usageError("--tail must not be negative")
	}
	id, err := parseID("contract id", pos[0], 64)
	if err != nil {
		return err
	}
	s, c, err := nodeContract(ctx, f, id)
	if err != nil {
		return err
	}
	defer s.Close()
	fetch := func(ctx context.Context, offset int64, max int) (nodeapi.LogsResponse, error) {
		var r nodeapi.LogsResponse
		err := s.callNode(ctx, c.NodeID, nodeapi.CmdZMachineLogs, nodeapi.LogsRequest{ContractID: id, Name: pos[1], Offset: offset, Max: max}, &r)
		return r, err
	}
	return printLogs(ctx, env, fetch, logsOptions{tail: *tail, follow: *follow, poll: time.Second})
}

// logFetch asks the node for a chunk of the log (zos.zmachine.logs).
type logFetch func(ctx context.Context, offset int64, max int) (nodeapi.LogsResponse, error)

type logsOptions struct {
	tail   int           // start with the last tail lines; 0: from the start
	follow bool          // keep printing what is appended
	poll   time.Duration // between reads when following
}

// logPrinter writes the log and remembers its end, to find its place in a
// rotated log.
type logPrinter struct {
	w    io.Writer
	end  []byte // the last bytes printed
	next int64  // the offset to read next
}

func (p *logPrinter) print(data []byte, next int64) error {
	p.next = next
	if len(data) == 0 {
		return nil
	}
	p.end = append(p.end, data...)
	if len(p.end) > consolelog.TailSize {
		p.end = append([]byte(nil), p.end[len(p.end)-consolelog.TailSize:]...)
	}
	_, err := p.w.Write(data)
	return err
}

// lastLines returns the last n lines of b (a final line without a newline
// counts).
func lastLines(b []byte, n int) []byte {
	end := len(b)
	if end > 0 && b[end-1] == '\n' {
		end--
	}
	for i := 0; i < n; i++ {
		j := bytes.LastIndexByte(b[:end], '\n')
		if j < 0 {
			return b
		}
		if i == n-1 {
			return b[j+1:]
		}
		end = j
	}
	return b
}

// printLogs prints the log fetch reads, then follows it when asked. A
// rotation (the node rewrites the log with its end) is followed from where
// the printed part ends in the rotated log, or, when it is not there, from
// the rotated log's start after a notice on stderr. Ctrl-C (ctx) ends a
// follow without error.
func printLogs(ctx context.Context, env *Env, fetch logFetch, o logsOptions) error {
	p := &logPrinter{w: env.Stdout}
	if o.tail > 0 {
		r, err := fetch(ctx, -1, consolelog.MaxChunk)
		if err != nil {
			return err
		}
		if err := p.print(lastLines(r.Data, o.tail), r.Next); err != nil {
			return err
		}
	} else {
		for {
			r, err := fetch(ctx, p.next, consolelog.MaxChunk)
			if err != nil {
				return err
			}
			if r.Rotated {
				// Rotated between two reads: start over, as the node did.
				fmt.Fprintln(env.Stderr, "zosctl logs: the log was rotated while reading it")
			}
			if err := p.print(r.Data, r.Next); err != nil {
				return err
			}
			if len(r.Data) == 0 || r.Next >= r.Size {
				break
			}
		}
	}
	if !o.follow {
		return nil
	}
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.poll):
		}
		err := p.poll(ctx, env, fetch)
		switch {
		case err == nil:
			lastErr = ""
		case ctx.Err() != nil:
			return nil
		case transient(err):
			if err.Error() != lastErr {
				fmt.Fprintf(env.Stderr, "zosctl logs: %v (retrying)\n", err)
				lastErr = err.Error()
			}
		default:
			return err
		}
	}
}

// poll prints everything appended since the last read.
func (p *logPrinter) poll(ctx context.Context, env *Env, fetch logFetch) error {
	for {
		r, err := fetch(ctx, p.next, consolelog.MaxChunk)
		if err != nil {
			return err
		}
		if r.Rotated {
			end, err := fetch(ctx, -1, consolelog.MaxChunk)
			if err != nil {
				return err
			}
			if at, ok := consolelog.Resume(end.Data, p.end); ok {
				r = nodeapi.LogsResponse{Data: end.Data[at:], Next: end.Next, Size: end.Size}
			} else {
				fmt.Fprintln(env.Stderr, "zosctl logs: the log was rotated, some lines may be missing")
			}
		}
		if err := p.print(r.Data, r.Next); err != nil {
			return err
		}
		if len(r.Data) < consolelog.MaxChunk {
			return nil
		}
	}
}
