package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// QMP is a client of QEMU's machine protocol on a unix socket. Commands
// run one at a time; asynchronous events are skipped.
type QMP struct {
	mu   sync.Mutex // guards conn and r: one command in flight
	conn net.Conn
	r    *bufio.Reader
}

// ErrQMP is wrapped by errors QEMU returned for a command.
var ErrQMP = errors.New("qmp error")

type qmpReply struct {
	QMP    json.RawMessage `json:"QMP"`
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event string `json:"event"`
}

// DialQMP connects to the socket, reads the greeting and negotiates
// capabilities.
func DialQMP(ctx context.Context, socket string) (*QMP, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("connecting to qmp %s: %w", socket, err)
	}
	q := &QMP{conn: conn, r: bufio.NewReader(conn)}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.deadline(ctx)
	var greet qmpReply
	if err := q.read(&greet); err != nil || greet.QMP == nil {
		conn.Close()
		if err == nil {
			err = errors.New("no greeting")
		}
		return nil, fmt.Errorf("reading qmp greeting on %s: %w", socket, err)
	}
	if _, err := q.exec(ctx, "qmp_capabilities", nil); err != nil {
		conn.Close()
		return nil, err
	}
	return q, nil
}

// DialQMPRetry dials until the socket answers or ctx ends (QEMU creates
// the socket shortly after it starts).
func DialQMPRetry(ctx context.Context, socket string) (*QMP, error) {
	for {
		q, err := DialQMP(ctx, socket)
		if err == nil {
			return q, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (%v)", err, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Close closes the connection.
func (q *QMP) Close() error { return q.conn.Close() }

func (q *QMP) deadline(ctx context.Context) {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(10 * time.Second)
	}
	q.conn.SetDeadline(dl)
}

func (q *QMP) read(v *qmpReply) error {
	line, err := q.r.ReadBytes('\n')
	if err != nil {
		return err
	}
	*v = qmpReply{}
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("decoding %q: %w", line, err)
	}
	return nil
}

// exec sends one command and returns its "return" value; q.mu is held.
func (q *QMP) exec(ctx context.Context, cmd string, args any) (json.RawMessage, error) {
	q.deadline(ctx)
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encoding qmp %s: %w", cmd, err)
	}
	if _, err := q.conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("sending qmp %s: %w", cmd, err)
	}
	for {
		var rep qmpReply
		if err := q.read(&rep); err != nil {
			return nil, fmt.Errorf("reading qmp %s reply: %w", cmd, err)
		}
		switch {
		case rep.Event != "":
			continue
		case rep.Error != nil:
			return nil, fmt.Errorf("qmp %s: %w: %s: %s", cmd, ErrQMP, rep.Error.Class, rep.Error.Desc)
		case rep.Return != nil:
			return rep.Return, nil
		}
	}
}

// Execute runs a command; out, when not nil, receives its return value.
func (q *QMP) Execute(ctx context.Context, cmd string, args, out any) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	ret, err := q.exec(ctx, cmd, args)
	if err != nil {
		return err
	}
	if out != nil {
		if err := json.Unmarshal(ret, out); err != nil {
			return fmt.Errorf("decoding qmp %s reply: %w", cmd, err)
		}
	}
	return nil
}

// Status is the answer of query-status. Status is QEMU's run state:
// "running", "paused", "internal-error" (KVM failure: QEMU stays alive,
// paused), "shutdown", ...
type Status struct {
	Running bool   `json:"running"`
	Status  string `json:"status"`
}

// StatusInternalError is the run state after a KVM internal error.
const StatusInternalError = "internal-error"

// QueryStatus returns the VM's run state.
func (q *QMP) QueryStatus(ctx context.Context) (Status, error) {
	var s Status
	err := q.Execute(ctx, "query-status", nil, &s)
	return s, err
}

// Stop pauses the VM.
func (q *QMP) Stop(ctx context.Context) error { return q.Execute(ctx, "stop", nil, nil) }

// Cont resumes a paused VM.
func (q *QMP) Cont(ctx context.Context) error { return q.Execute(ctx, "cont", nil, nil) }

// SystemPowerdown presses the ACPI power button: the guest shuts down.
func (q *QMP) SystemPowerdown(ctx context.Context) error {
	return q.Execute(ctx, "system_powerdown", nil, nil)
}

// Quit makes QEMU exit at once.
func (q *QMP) Quit(ctx context.Context) error {
	err := q.Execute(ctx, "quit", nil, nil)
	var ne net.Error
	if err != nil && (errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.As(err, &ne)) {
		// QEMU may close the socket before or after the reply.
		return nil
	}
	return err
}
