package zdb

import (
	"errors"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type handler func(c *conn, args [][]byte)

// lookupCommand returns the handler of an upper-case command name.
func lookupCommand(name string) handler {
	switch name {
	case "PING":
		return (*conn).cmdPing
	case "SET", "SETX":
		return (*conn).cmdSet
	case "GET":
		return (*conn).cmdGet
	case "MGET":
		return (*conn).cmdMGet
	case "DEL":
		return (*conn).cmdDel
	case "EXISTS":
		return (*conn).cmdExists
	case "CHECK":
		return (*conn).cmdCheck
	case "KEYCUR":
		return (*conn).cmdKeyCur
	case "INFO":
		return (*conn).cmdInfo
	case "NSNEW":
		return (*conn).cmdNSNew
	case "NSDEL":
		return (*conn).cmdNSDel
	case "NSINFO":
		return (*conn).cmdNSInfo
	case "NSLIST":
		return (*conn).cmdNSList
	case "NSSET":
		return (*conn).cmdNSSet
	case "NSJUMP":
		return (*conn).cmdNSJump
	case "SELECT":
		return (*conn).cmdSelect
	case "DBSIZE":
		return (*conn).cmdDBSize
	case "TIME":
		return (*conn).cmdTime
	case "AUTH":
		return (*conn).cmdAuth
	case "SCAN":
		return (*conn).cmdScan
	case "SCANX":
		return (*conn).cmdScan
	case "RSCAN":
		return (*conn).cmdRScan
	case "WAIT":
		return (*conn).cmdWait
	case "HISTORY":
		return (*conn).cmdHistory
	case "FLUSH":
		return (*conn).cmdFlush
	case "RELOAD":
		return (*conn).cmdReload
	case "LENGTH":
		return (*conn).cmdLength
	case "KEYTIME":
		return (*conn).cmdKeyTime
	case "STOP":
		return (*conn).cmdStop
	case "INDEX":
		return (*conn).cmdIndex
	case "DATA":
		return (*conn).cmdData
	case "ECHO":
		return (*conn).cmdEcho
	case "COMMAND":
		return (*conn).cmdEmpty
	case "CONFIG":
		return (*conn).cmdEmpty
	}
	return nil
}

func (c *conn) dispatch(args [][]byte) {
	var up [16]byte
	name := args[0]
	if len(name) > len(up) {
		c.w.Error("Command not supported")
		return
	}
	for i, b := range name {
		if b >= 'a' && b <= 'z' {
			b -= 'a' - 'A'
		}
		up[i] = b
	}
	h := lookupCommand(string(up[:len(name)]))
	if h == nil {
		c.w.Error("Command not supported")
		return
	}
	h(c, args)
	if c.ns != nil && c.ns.nWaiters.Load() > 0 {
		c.ns.notify(string(up[:len(name)]))
	}
}

// known errors are replied with their text.
var replyErrors = []error{
	ErrNamespaceFull, ErrKeyNotFound, ErrKeyTooLarge, ErrValueTooLarge, ErrKeyNeeded, ErrOnlyUpdate,
	ErrWorm, ErrReadOnly, ErrLocked, ErrFrozen, ErrNamespaceGone, ErrInvalidCursor, ErrNoMoreData,
	ErrNamespaceExists, ErrBadName, ErrModeChange, ErrDefaultNS, ErrCorrupted, ErrPaused,
}

func (c *conn) replyErr(err error) {
	for _, e := range replyErrors {
		if errors.Is(err, e) {
			c.w.Error(replyText(e))
			return
		}
	}
	if errors.Is(err, ErrNotFound) {
		c.w.Error("Namespace not found")
		return
	}
	if errors.Is(err, syscall.ENOSPC) {
		c.w.Error("No space left on device")
		return
	}
	c.srv.log.Error("command_failed", "err", err)
	c.w.Error("Cannot write data right now")
}

// replyFailed replies a failed read, a missing key as nil, and reports
// whether err was one.
func (c *conn) replyFailed(err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrKeyNotFound):
		c.w.Nil()
	default:
		c.replyErr(err)
	}
	return true
}

// replyDone replies OK, or err when the command failed.
func (c *conn) replyDone(err error) {
	if err != nil {
		c.replyErr(err)
		return
	}
	c.w.Simple("OK")
}

// argc checks the count of arguments (command included) with 0-db's
// replies: a command taking a fixed count answers "Unexpected arguments"
// to any other, one taking a range "Missing arguments" below it.
func (c *conn) argc(args [][]byte, min, max int) bool {
	switch {
	case min == max && len(args) != min, len(args) > max:
		c.w.Error("Unexpected arguments")
		return false
	case len(args) < min:
		c.w.Error("Missing arguments")
		return false
	}
	return true
}

// key checks a key argument of a read or delete as 0-db does: empty is
// "Invalid argument", longer than any key can be is "Invalid key" (SET
// answers "Key too large" instead).
func (c *conn) key(k []byte) bool {
	switch {
	case len(k) == 0:
		c.w.Error("Invalid argument")
		return false
	case len(k) > MaxKeyLen:
		c.w.Error("Invalid key")
		return false
	}
	return true
}

func (c *conn) requireAdmin() bool {
	if !c.admin {
		c.w.Error("Permission denied")
		return false
	}
	return true
}

func (c *conn) requireNS() bool {
	if c.ns == nil {
		c.w.Error("Namespace not found")
		return false
	}
	return true
}

func (c *conn) requireWrite() bool {
	if !c.requireNS() {
		return false
	}
	if !c.writable {
		c.replyErr(ErrReadOnly)
		return false
	}
	return true
}

func (c *conn) cmdEmpty(args [][]byte) { c.w.Array(0) }

// cmdEcho is not a 0-db command; redis-cli --pipe needs it to end a bulk load.
func (c *conn) cmdEcho(args [][]byte) {
	if c.argc(args, 2, 2) {
		c.w.Bulk(args[1])
	}
}

func (c *conn) cmdPing(args [][]byte) {
	if len(args) > 1 {
		c.w.Bulk(args[1])
		return
	}
	c.w.Simple("PONG")
}

func (c *conn) cmdSet(args [][]byte) {
	if !c.argc(args, 3, 4) {
		return
	}
	var ts uint32
	if len(args) == 4 {
		if !c.requireAdmin() {
			return
		}
		n, err := strconv.ParseUint(string(args[3]), 10, 32)
		if err != nil {
			c.w.Error("Invalid timestamp")
			return
		}
		ts = uint32(n)
	}
	if len(args[1]) > MaxKeyLen {
		c.replyErr(ErrKeyTooLarge)
		return
	}
	if !c.requireWrite() {
		return
	}
	key, seq, err := c.ns.set(args[1], args[2], ts)
	if err != nil {
		c.replyErr(err)
		return
	}
	if key == nil {
		c.w.Nil()
		return
	}
	c.written(c.ns, seq)
	c.w.Bulk(key)
}

func (c *conn) cmdGet(args [][]byte) {
	if !c.argc(args, 2, 2) || !c.key(args[1]) || !c.requireNS() {
		return
	}
	c.getInto(args[1])
}

func (c *conn) getInto(key []byte) {
	var err error
	c.val, err = c.ns.get(key, c.val[:0])
	if cap(c.val) > 1<<20 {
		defer func() { c.val = nil }()
	}
	if c.replyFailed(err) {
		return
	}
	c.w.Bulk(c.val)
}

func (c *conn) cmdMGet(args [][]byte) {
	if len(args) < 2 {
		c.w.Error("Invalid arguments")
		return
	}
	if !c.argc(args, 2, MaxMGetKeys+1) || !c.requireNS() {
		return
	}
	for _, k := range args[1:] {
		if len(k) > MaxKeyLen {
			c.w.Error("Invalid key")
			return
		}
	}
	c.w.Array(len(args) - 1)
	for _, k := range args[1:] {
		var err error
		c.val, err = c.ns.get(k, c.val[:0])
		if err != nil {
			c.w.Nil()
			continue
		}
		c.w.Bulk(c.val)
	}
	if cap(c.val) > 1<<20 {
		c.val = nil
	}
}

func (c *conn) cmdDel(args [][]byte) {
	if !c.argc(args, 2, 2) || !c.key(args[1]) || !c.requireWrite() {
		return
	}
	seq, err := c.ns.del(args[1])
	if err != nil {
		c.replyErr(err)
		return
	}
	c.written(c.ns, seq)
	c.w.Simple("OK")
}

func (c *conn) cmdExists(args [][]byte) {
	if !c.argc(args, 2, 2) || !c.key(args[1]) || !c.requireNS() {
		return
	}
	_, err := c.ns.lookup(args[1])
	switch {
	case err == nil:
		c.w.Int(1)
	case errors.Is(err, ErrKeyNotFound):
		c.w.Int(0)
	default:
		c.replyErr(err)
	}
}

func (c *conn) cmdCheck(args [][]byte) {
	if !c.argc(args, 2, 2) || !c.key(args[1]) || !c.requireNS() {
		return
	}
	ok, err := c.ns.check(args[1])
	switch {
	case errors.Is(err, ErrKeyNotFound):
		c.w.Nil()
	case err != nil:
		c.replyErr(err)
	case ok:
		c.w.Int(1)
	default:
		c.w.Int(0)
	}
}

func (c *conn) cmdKeyCur(args [][]byte) { keyQuery(c, args, (*namespace).keyCursor, c.w.Bulk) }

func (c *conn) cmdKeyTime(args [][]byte) {
	// 0-db refuses a key too long for KEYTIME; KEYCUR just finds none.
	if len(args) == 2 && !c.key(args[1]) {
		return
	}
	keyQuery(c, args, (*namespace).keyTime, func(ts uint32) { c.w.Int(int64(ts)) })
}

// keyQuery answers a read command of one key on the selected namespace:
// get's error is replied, else reply writes what it found.
func keyQuery[T any](c *conn, args [][]byte, get func(*namespace, []byte) (T, error), reply func(T)) {
	if !c.argc(args, 2, 2) || !c.requireNS() {
		return
	}
	if len(args[1]) == 0 {
		c.w.Error("Invalid argument")
		return
	}
	v, err := get(c.ns, args[1])
	if err != nil {
		c.replyErr(err)
		return
	}
	reply(v)
}

func (c *conn) cmdLength(args [][]byte) {
	if !c.argc(args, 2, 2) || !c.key(args[1]) || !c.requireNS() {
		return
	}
	l, err := c.ns.lookup(args[1])
	if c.replyFailed(err) {
		return
	}
	c.w.Int(int64(l.size))
}

func (c *conn) cmdDBSize(args [][]byte) {
	if !c.requireNS() {
		return
	}
	c.w.Int(int64(c.ns.info().Entries))
}

func (c *conn) cmdTime(args [][]byte) {
	now := time.Now()
	c.w.Array(2)
	c.w.BulkString(strconv.FormatInt(now.Unix(), 10))
	c.w.BulkString(strconv.FormatInt(int64(now.Nanosecond()/1000), 10))
}

func (c *conn) cmdScan(args [][]byte)  { c.scan(args, true) }
func (c *conn) cmdRScan(args [][]byte) { c.scan(args, false) }

func (c *conn) scan(args [][]byte, forward bool) {
	if !c.argc(args, 1, 2) || !c.requireNS() {
		return
	}
	var cursor []byte
	if len(args) == 2 {
		cursor = args[1]
	}
	entries, next, err := c.ns.scan(cursor, forward, 32)
	if err != nil {
		c.replyErr(err)
		return
	}
	c.w.Array(2)
	c.w.Bulk(next)
	c.w.Array(len(entries))
	for _, e := range entries {
		c.w.Array(3)
		c.w.Bulk(e.Key)
		c.w.Int(int64(e.Size))
		c.w.Int(int64(e.TS))
	}
}

func (c *conn) cmdHistory(args [][]byte) {
	if !c.argc(args, 2, 3) || !c.requireNS() {
		return
	}
	var cursor []byte
	if len(args) == 3 {
		cursor = args[2]
	}
	prev, e, err := c.ns.history(args[1], cursor)
	if err != nil {
		c.replyErr(err)
		return
	}
	c.w.Array(3)
	c.w.Bulk(prev)
	c.w.Int(int64(e.ts))
	c.w.Bulk(e.payload)
}

func (c *conn) cmdWait(args [][]byte) {
	if !c.argc(args, 2, 3) || !c.requireNS() {
		return
	}
	timeout := 5 * time.Second
	if len(args) == 3 {
		ms, err := strconv.Atoi(string(args[2]))
		if err != nil || ms < 100 || ms > 30*60*1000 {
			c.w.Error("Invalid timeout")
			return
		}
		timeout = time.Duration(ms) * time.Millisecond
	}
	if err := c.w.Flush(); err != nil {
		return
	}
	w := c.ns.waitFor(strings.ToUpper(string(args[1])))
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case cmd := <-w.ch:
		c.w.Simple(cmd)
	case <-t.C:
		c.ns.unwait(w)
		c.w.Error("Timeout")
	case <-c.ctx.Done():
		c.ns.unwait(w)
	}
}

func (c *conn) cmdFlush(args [][]byte) {
	if !c.requireWrite() {
		return
	}
	info := c.ns.info()
	if info.Public || !info.HasPassword {
		c.w.Error("Flushing public namespace denied")
		return
	}
	c.replyDone(c.ns.flush())
}

func (c *conn) cmdStop(args [][]byte) {
	if !c.requireAdmin() {
		return
	}
	c.w.Simple("Stopping")
	c.w.Flush()
	c.srv.stopOnce.Do(func() { close(c.srv.stopped) })
}

// INDEX DIRTY [RESET]: the index files changed since the last reset.
func (c *conn) cmdIndex(args [][]byte) {
	if !c.argc(args, 2, 3) || !c.requireNS() {
		return
	}
	if !strings.EqualFold(string(args[1]), "DIRTY") {
		c.w.Error("Invalid argument")
		return
	}
	reset := len(args) == 3 && strings.EqualFold(string(args[2]), "RESET")
	if len(args) == 3 && !reset {
		c.w.Error("Invalid argument")
		return
	}
	if reset && !c.requireAdmin() {
		return
	}
	ids := c.ns.dirtyFiles(reset)
	if reset {
		c.w.Simple("OK")
		return
	}
	c.w.Array(len(ids))
	for _, id := range ids {
		c.w.Int(int64(id))
	}
}

// DATA RAW fileid offset: the raw data entry at a location, as
// [key, payload, flags, timestamp, crc, previous cursor].
func (c *conn) cmdData(args [][]byte) {
	if !c.argc(args, 4, 4) || !c.requireNS() {
		return
	}
	if !strings.EqualFold(string(args[1]), "RAW") {
		c.w.Error("Invalid argument")
		return
	}
	file, err1 := strconv.ParseUint(string(args[2]), 10, 32)
	off, err2 := strconv.ParseUint(string(args[3]), 10, 32)
	if err1 != nil || err2 != nil {
		c.w.Error("Invalid argument")
		return
	}
	ns := c.ns
	ns.mu.RLock()
	var e dataEntry
	err := ns.usable()
	if err == nil {
		e, err = ns.readEntry(uint32(file), uint32(off))
	}
	ns.mu.RUnlock()
	if err != nil {
		c.replyErr(err)
		return
	}
	c.w.Array(6)
	c.w.Bulk(e.key)
	c.w.Bulk(e.payload)
	c.w.Int(int64(e.flags))
	c.w.Int(int64(e.ts))
	c.w.Int(int64(e.crc))
	if e.prevOff != 0 {
		c.w.Bulk(encodeLoc(e.prevFile, e.prevOff))
	} else {
		c.w.Nil()
	}
}
