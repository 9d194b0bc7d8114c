package zdb

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

func (c *conn) nsName(arg []byte) (string, bool) {
	if len(arg) > MaxNamespaceLen {
		c.w.Error("Namespace too long")
		return "", false
	}
	return string(arg), true
}

// findNS returns the namespace named by arg and its store; false when it
// replied that the name is too long or the namespace not found.
func (c *conn) findNS(arg []byte) (string, *namespace, *Store, bool) {
	name, ok := c.nsName(arg)
	if !ok {
		return "", nil, nil, false
	}
	ns, s := c.srv.find(name)
	if ns == nil {
		c.w.Error("Namespace not found")
		return "", nil, nil, false
	}
	return name, ns, s, true
}

func (c *conn) cmdInfo(args [][]byte) {
	var b strings.Builder
	b.WriteString("# server\nserver_name: 0-db (zos-go)\nprotocol: 0-db\n")
	stores := c.srv.storeList()
	fmt.Fprintf(&b, "stores: %d\n", len(stores))
	var entries, size uint64
	nss := 0
	for _, s := range stores {
		list, _ := s.Namespaces()
		nss += len(list)
		for _, i := range list {
			entries += i.Entries
			size += i.DataSize
		}
	}
	fmt.Fprintf(&b, "namespaces: %d\nentries: %d\ndata_size_bytes: %d\n", nss, entries, size)
	if len(stores) > 0 {
		fmt.Fprintf(&b, "sync: %s\n", stores[0].cfg.Sync)
	}
	fmt.Fprintf(&b, "admin: %v\nprotect: %v\n", c.srv.cfg.Admin != "", c.srv.cfg.Protect)
	c.w.BulkString(b.String())
}

func (c *conn) cmdNSNew(args [][]byte) {
	if !c.requireAdmin() || !c.argc(args, 2, 2) {
		return
	}
	name, ok := c.nsName(args[1])
	if !ok {
		return
	}
	if ns, _ := c.srv.find(name); ns != nil {
		c.replyErr(ErrNamespaceExists)
		return
	}
	var best *Store
	var free uint64
	for _, s := range c.srv.storeList() {
		if f := s.DiskFree(); best == nil || f > free {
			best, free = s, f
		}
	}
	if best == nil {
		c.w.Error("Could not create namespace")
		return
	}
	c.replyDone(best.NamespaceCreate(name, NamespaceOptions{Public: true}))
}

func (c *conn) cmdNSDel(args [][]byte) {
	if !c.requireAdmin() || !c.argc(args, 2, 2) {
		return
	}
	name, ok := c.nsName(args[1])
	if !ok {
		return
	}
	if name == DefaultNamespace {
		c.replyErr(ErrDefaultNS)
		return
	}
	ns, s := c.srv.find(name)
	if ns == nil {
		c.w.Error("This namespace doesn't exists")
		return
	}
	if ns == c.ns {
		c.w.Error("Cannot remove namespace you're currently using.")
		return
	}
	c.replyDone(s.NamespaceDelete(name))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (c *conn) cmdNSInfo(args [][]byte) {
	if !c.argc(args, 2, 2) {
		return
	}
	_, ns, s, ok := c.findNS(args[1])
	if !ok {
		return
	}
	i := ns.info()
	var b strings.Builder
	b.WriteString("# namespace\n")
	fmt.Fprintf(&b, "name: %s\nentries: %d\npublic: %s\nworm: %s\npassword: %s\n", i.Name, i.Entries,
		yesNo(i.Public), yesNo(i.Worm), yesNo(i.HasPassword))
	fmt.Fprintf(&b, "data_size_bytes: %d\ndata_size_mb: %.2f\ndata_limits_bytes: %d\n", i.DataSize,
		float64(i.DataSize)/(1024*1024), i.MaxSize)
	fmt.Fprintf(&b, "index_size_bytes: %d\nindex_size_kb: %.2f\n", i.IndexSize, float64(i.IndexSize)/1024)
	mode := "userkey"
	if i.Mode == ModeSeq {
		mode = "sequential"
	}
	fmt.Fprintf(&b, "mode: %s\nlocked: %s\nfrozen: %s\n", mode, yesNo(i.Locked), yesNo(i.Frozen))
	data, index := s.Dirs()
	free := diskFree(index)
	fmt.Fprintf(&b, "index_disk_freespace_bytes: %d\nindex_disk_freespace_mb: %.2f\n", free, float64(free)/(1024*1024))
	free = diskFree(data)
	fmt.Fprintf(&b, "data_disk_freespace_bytes: %d\ndata_disk_freespace_mb: %.2f\n", free, float64(free)/(1024*1024))
	if c.admin && i.HasPassword {
		ns.mu.RLock()
		fmt.Fprintf(&b, "password_raw: %s\n", ns.settings.Password)
		ns.mu.RUnlock()
	}
	c.w.BulkString(b.String())
}

func (c *conn) cmdNSList(args [][]byte) {
	var names []string
	for _, s := range c.srv.storeList() {
		list, _ := s.Namespaces()
		for _, i := range list {
			names = append(names, i.Name)
		}
	}
	c.w.Array(len(names))
	for _, n := range names {
		c.w.BulkString(n)
	}
}

func parseBool(v string) bool {
	return v == "1" || strings.EqualFold(v, "true") || strings.EqualFold(v, "yes")
}

func (c *conn) cmdNSSet(args [][]byte) {
	if !c.requireAdmin() || !c.argc(args, 4, 4) {
		return
	}
	name, ok := c.nsName(args[1])
	if !ok {
		return
	}
	if len(args[3]) > 63 {
		c.w.Error("Invalid value")
		return
	}
	prop, value := strings.ToLower(string(args[2])), string(args[3])
	ns, _ := c.srv.find(name)
	if ns == nil {
		c.w.Error("Namespace not found")
		return
	}
	if name == DefaultNamespace && prop != "lock" && prop != "freeze" {
		c.w.Error("Cannot update default namespace")
		return
	}
	var change func(*nsSettings) error
	switch prop {
	case "maxsize":
		n, err := strconv.ParseUint(value, 10, 64)
		if err != nil {
			c.w.Error("Invalid value")
			return
		}
		change = func(s *nsSettings) error { s.MaxSize = n; return nil }
	case "password":
		change = func(s *nsSettings) error {
			if value == "*" {
				s.Password = ""
			} else {
				s.Password = value
			}
			return nil
		}
	case "public":
		change = func(s *nsSettings) error { s.Public = parseBool(value); return nil }
	case "worm":
		change = func(s *nsSettings) error { s.Worm = parseBool(value); return nil }
	case "lock":
		change = func(s *nsSettings) error { s.Locked = parseBool(value); return nil }
	case "freeze":
		change = func(s *nsSettings) error { s.Frozen = parseBool(value); return nil }
	case "mode":
		m, err := ParseMode(value)
		if err != nil || value == "" {
			c.w.Error("Invalid mode")
			return
		}
		change = func(s *nsSettings) error { s.Mode = m; return nil }
	default:
		c.w.Error("Invalid property")
		return
	}
	c.replyDone(ns.update(change))
}

func (c *conn) cmdNSJump(args [][]byte) {
	if !c.requireAdmin() || !c.requireNS() {
		return
	}
	c.replyDone(c.ns.jump())
}

// secureHash is the SECURE proof: hex(sha1("challenge:password")).
func secureHash(challenge, password string) string {
	h := sha1.Sum([]byte(challenge + ":" + password))
	return hex.EncodeToString(h[:])
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// passwordOK checks a plain password or a SECURE proof against want.
func (c *conn) passwordOK(args [][]byte, want string) bool {
	if len(args) == 2 && strings.EqualFold(string(args[0]), "SECURE") {
		ch := c.challenge
		c.challenge = ""
		return ch != "" && equal(strings.ToLower(string(args[1])), secureHash(ch, want))
	}
	return len(args) == 1 && equal(string(args[0]), want)
}

func (c *conn) cmdSelect(args [][]byte) {
	if len(args) < 2 || len(args) > 4 {
		c.w.Error("Invalid argument")
		return
	}
	name, ns, _, ok := c.findNS(args[1])
	if !ok {
		return
	}
	ns.mu.RLock()
	st, gone := ns.settings, ns.gone
	ns.mu.RUnlock()
	if gone {
		c.w.Error("Namespace not found")
		return
	}
	writable := true
	password := st.Password
	if name == DefaultNamespace && c.srv.cfg.Protect {
		password = c.srv.cfg.Admin
	}
	if password != "" {
		if len(args) == 2 {
			if !st.Public && !(name == DefaultNamespace && c.srv.cfg.Protect) {
				c.w.Error("Namespace protected and private")
				return
			}
			writable = false
		} else if !c.passwordOK(args[2:], password) {
			c.w.Error("Access denied")
			return
		}
	}
	if name == DefaultNamespace && c.srv.cfg.Protect && c.admin {
		writable = true
	}
	c.ns, c.writable = ns, writable
	c.w.Simple("OK")
}

func (c *conn) cmdAuth(args [][]byte) {
	if !c.argc(args, 2, 3) {
		return
	}
	if c.srv.cfg.Admin == "" {
		c.w.Error("Authentication disabled")
		return
	}
	if len(args) == 3 && strings.EqualFold(string(args[1]), "SECURE") && strings.EqualFold(string(args[2]), "CHALLENGE") {
		var b [16]byte
		rand.Read(b[:])
		c.challenge = hex.EncodeToString(b[:])
		c.w.Simple(c.challenge)
		return
	}
	if !c.passwordOK(args[1:], c.srv.cfg.Admin) {
		c.w.Error("Access denied")
		return
	}
	c.admin = true
	if c.ns != nil && c.ns.name == DefaultNamespace {
		c.writable = true
	}
	c.w.Simple("OK")
}

// cmdReload reads a namespace's files again (admin only, as in 0-db).
func (c *conn) cmdReload(args [][]byte) {
	if !c.requireAdmin() || !c.argc(args, 2, 2) {
		return
	}
	if _, ns, _, ok := c.findNS(args[1]); ok {
		c.replyDone(ns.reload())
	}
}
