package flistd

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Startup is the entry point a flist declares in /.startup.toml, the legacy
// 0-core format:
//
//	[startup.entry]
//	name = "core.system"
//
//	[startup.entry.args]
//	name = "/bin/app"
//	args = ["--port", "80"]
//	dir = "/srv"
//
//	[startup.entry.args.env]
//	HOME = "/root"
type Startup struct {
	Name string            // program to run (args.name)
	Args []string          // its arguments (args.args)
	Env  map[string]string // environment (args.env)
	Dir  string            // working directory (args.dir)
}

// ParseStartup parses a .startup.toml. A file without a [startup.entry]
// gives nil; an entry without args.name, or anything that is not the TOML
// subset such files use (tables, dotted and quoted keys, strings, arrays
// and inline tables of strings; numbers, booleans and dates are accepted
// and ignored), is an error.
func ParseStartup(data []byte) (*Startup, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("not UTF-8")
	}
	p := &tomlParser{s: string(data), line: 1, vals: map[string]any{}}
	if err := p.parse(); err != nil {
		return nil, fmt.Errorf("line %d: %w", p.line, err)
	}
	const entry = "startup\x00entry"
	if !p.tables[entry] && !p.hasPrefix(entry+"\x00") {
		return nil, nil
	}
	args := entry + "\x00args"
	st := &Startup{Env: map[string]string{}}
	var err error
	if st.Name, err = p.str(args + "\x00name"); err != nil {
		return nil, err
	}
	if st.Name == "" {
		return nil, errors.New("startup entry has no args.name")
	}
	if st.Dir, err = p.str(args + "\x00dir"); err != nil {
		return nil, err
	}
	if v, ok := p.vals[args+"\x00args"]; ok {
		list, ok := v.([]any)
		if !ok {
			return nil, errors.New("args.args: want an array of strings")
		}
		for _, a := range list {
			s, ok := a.(string)
			if !ok {
				return nil, errors.New("args.args: want an array of strings")
			}
			st.Args = append(st.Args, s)
		}
	}
	envPrefix := args + "\x00env\x00"
	for k, v := range p.vals {
		if !strings.HasPrefix(k, envPrefix) {
			continue
		}
		name := strings.TrimPrefix(k, envPrefix)
		s, ok := v.(string)
		if !ok || strings.Contains(name, "\x00") || name == "" || strings.Contains(name, "=") {
			return nil, fmt.Errorf("args.env.%s: want a variable name and a string", strings.ReplaceAll(name, "\x00", "."))
		}
		st.Env[name] = s
	}
	return st, nil
}

// tomlParser reads the TOML subset into values keyed by their full key path
// (parts joined by NUL).
type tomlParser struct {
	s      string
	pos    int
	line   int
	table  string          // current table path
	tables map[string]bool // declared tables
	vals   map[string]any  // string, []any, or tomlOther
}

// tomlOther is a number, boolean or date: kept but not interpreted.
type tomlOther string

// Limits against hostile input.
const (
	maxKeyParts = 32
	maxDepth    = 16
)

func (p *tomlParser) str(key string) (string, error) {
	v, ok := p.vals[key]
	if !ok {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s: want a string", strings.ReplaceAll(strings.TrimPrefix(key, "startup\x00entry\x00"), "\x00", "."))
	}
	return s, nil
}

func (p *tomlParser) hasPrefix(prefix string) bool {
	for k := range p.vals {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	for k := range p.tables {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

func (p *tomlParser) eof() bool { return p.pos >= len(p.s) }
func (p *tomlParser) peek() byte {
	if p.eof() {
		return 0
	}
	return p.s[p.pos]
}

// skipSpace skips blanks, and newlines and comments when nl is set.
func (p *tomlParser) skipSpace(nl bool) {
	for !p.eof() {
		switch c := p.s[p.pos]; {
		case c == ' ' || c == '\t' || c == '\r':
			p.pos++
		case c == '#':
			for !p.eof() && p.s[p.pos] != '\n' {
				p.pos++
			}
		case c == '\n' && nl:
			p.pos++
			p.line++
		default:
			return
		}
	}
}

// endLine expects the end of a line (a comment allowed).
func (p *tomlParser) endLine() error {
	p.skipSpace(false)
	if p.eof() {
		return nil
	}
	if p.s[p.pos] != '\n' {
		return fmt.Errorf("unexpected %q after a value", p.s[p.pos])
	}
	return nil
}

func (p *tomlParser) parse() error {
	p.tables = map[string]bool{}
	for {
		p.skipSpace(true)
		if p.eof() {
			return nil
		}
		if p.peek() == '[' {
			if err := p.header(); err != nil {
				return err
			}
			continue
		}
		key, err := p.key()
		if err != nil {
			return err
		}
		if err := p.assign(join(p.table, key), 0); err != nil {
			return err
		}
		if err := p.endLine(); err != nil {
			return err
		}
	}
}

func join(table, key string) string {
	if table == "" {
		return key
	}
	return table + "\x00" + key
}

func (p *tomlParser) header() error {
	p.pos++ // [
	if p.peek() == '[' {
		return errors.New("arrays of tables are not supported")
	}
	p.skipSpace(false)
	key, err := p.key()
	if err != nil {
		return err
	}
	p.skipSpace(false)
	if p.peek() != ']' {
		return errors.New("table header: want ]")
	}
	p.pos++
	if p.tables[key] {
		return fmt.Errorf("table %s declared twice", strings.ReplaceAll(key, "\x00", "."))
	}
	if _, ok := p.vals[key]; ok {
		return fmt.Errorf("table %s is also a value", strings.ReplaceAll(key, "\x00", "."))
	}
	p.tables[key] = true
	p.table = key
	return p.endLine()
}

// key reads a dotted key (bare or quoted parts).
func (p *tomlParser) key() (string, error) {
	var parts []string
	for {
		p.skipSpace(false)
		var part string
		switch c := p.peek(); {
		case c == '"' || c == '\'':
			s, err := p.stringValue()
			if err != nil {
				return "", err
			}
			part = s
		case isBare(c):
			start := p.pos
			for !p.eof() && isBare(p.s[p.pos]) {
				p.pos++
			}
			part = p.s[start:p.pos]
		default:
			return "", fmt.Errorf("want a key, got %q", c)
		}
		if strings.Contains(part, "\x00") {
			return "", errors.New("NUL in a key")
		}
		parts = append(parts, part)
		if len(parts) > maxKeyParts {
			return "", errors.New("key too deep")
		}
		p.skipSpace(false)
		if p.peek() != '.' {
			return strings.Join(parts, "\x00"), nil
		}
		p.pos++
	}
}

func isBare(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// assign reads "= value" and stores it under path; inline tables store
// their keys under path.
func (p *tomlParser) assign(path string, depth int) error {
	p.skipSpace(false)
	if p.peek() != '=' {
		return errors.New("want =")
	}
	p.pos++
	p.skipSpace(false)
	if p.peek() == '{' {
		return p.inlineTable(path, depth+1)
	}
	v, err := p.value(depth + 1)
	if err != nil {
		return err
	}
	if _, ok := p.vals[path]; ok || p.tables[path] {
		return fmt.Errorf("%s defined twice", strings.ReplaceAll(path, "\x00", "."))
	}
	p.vals[path] = v
	return nil
}

func (p *tomlParser) inlineTable(path string, depth int) error {
	if depth > maxDepth {
		return errors.New("nested too deep")
	}
	p.pos++ // {
	if p.tables[path] {
		return fmt.Errorf("%s defined twice", strings.ReplaceAll(path, "\x00", "."))
	}
	p.tables[path] = true
	p.skipSpace(false)
	if p.peek() == '}' {
		p.pos++
		return nil
	}
	for {
		key, err := p.key()
		if err != nil {
			return err
		}
		if err := p.assign(join(path, key), depth); err != nil {
			return err
		}
		p.skipSpace(false)
		switch p.peek() {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return nil
		default:
			return errors.New("inline table: want , or }")
		}
	}
}

func (p *tomlParser) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("nested too deep")
	}
	switch c := p.peek(); {
	case c == '"' || c == '\'':
		return p.stringValue()
	case c == '[':
		return p.array(depth)
	case c == '{':
		return nil, errors.New("inline tables inside arrays are not supported")
	default:
		start := p.pos
		for !p.eof() && (isBare(p.s[p.pos]) || strings.IndexByte("+.:", p.s[p.pos]) >= 0) {
			p.pos++
		}
		if start == p.pos {
			return nil, fmt.Errorf("want a value, got %q", c)
		}
		return tomlOther(p.s[start:p.pos]), nil
	}
}

func (p *tomlParser) array(depth int) ([]any, error) {
	p.pos++ // [
	out := []any{}
	for {
		p.skipSpace(true)
		if p.peek() == ']' {
			p.pos++
			return out, nil
		}
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		p.skipSpace(true)
		switch p.peek() {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return out, nil
		default:
			return nil, errors.New("array: want , or ]")
		}
	}
}

// stringValue reads a basic ("...", with escapes) or literal ('...') string;
// multi-line strings are not supported.
func (p *tomlParser) stringValue() (string, error) {
	q := p.s[p.pos]
	if strings.HasPrefix(p.s[p.pos:], strings.Repeat(string(q), 3)) {
		return "", errors.New("multi-line strings are not supported")
	}
	p.pos++
	var b strings.Builder
	for {
		if p.eof() || p.s[p.pos] == '\n' {
			return "", errors.New("unterminated string")
		}
		c := p.s[p.pos]
		p.pos++
		if c == q {
			return b.String(), nil
		}
		if c != '\\' || q == '\'' {
			b.WriteByte(c)
			continue
		}
		if p.eof() {
			return "", errors.New("unterminated string")
		}
		e := p.s[p.pos]
		p.pos++
		switch e {
		case 'b':
			b.WriteByte('\b')
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'f':
			b.WriteByte('\f')
		case 'r':
			b.WriteByte('\r')
		case '"':
			b.WriteByte('"')
		case '\\':
			b.WriteByte('\\')
		case 'u', 'U':
			n := 4
			if e == 'U' {
				n = 8
			}
			if p.pos+n > len(p.s) {
				return "", errors.New("short unicode escape")
			}
			r, err := strconv.ParseUint(p.s[p.pos:p.pos+n], 16, 32)
			if err != nil || !utf8.ValidRune(rune(r)) {
				return "", fmt.Errorf("bad unicode escape %q", p.s[p.pos:p.pos+n])
			}
			p.pos += n
			b.WriteRune(rune(r))
		default:
			return "", fmt.Errorf("bad escape \\%c", e)
		}
	}
}
