package fs

import (
	"strings"
	"testing"
)

func TestDecodeTree(t *testing.T) {
	const root = `"1":{"ino":1,"mode":16877,"nlink":2,"parent":1,"entries":{"a":2}}`
	file := func(f string) string { return `"2":{"ino":2,"mode":33188,"nlink":1,` + f + `}` }
	tests := []struct {
		name, in, err string
	}{
		{"good", `{"version":1,"gen":1,"full":true,"block_size":4096,"next_ino":3,"inodes":{` + root + `,` + file(`"size":5,"blocks":{"0":"`+strings.Repeat("ab", 32)+`"}`) + `}}`, ""},
		{"not json", `{`, "decoding metadata"},
		{"version", `{"version":2}`, "metadata version 2"},
		{"block size", `{"version":1,"block_size":7}`, "block size 7"},
		{"no root", `{"version":1,"full":true,"block_size":4096,"inodes":{}}`, "no root directory"},
		{"dangling entry", `{"version":1,"full":true,"block_size":4096,"next_ino":3,"inodes":{` + root + `}}`, `entry "a" of 1`},
		{"inode past next", `{"version":1,"full":true,"block_size":4096,"next_ino":2,"inodes":{` + root + `,` + file(`"size":1`) + `}}`, "not below next inode"},
		{"block past size", `{"version":1,"full":true,"block_size":4096,"next_ino":3,"inodes":{` + root + `,` + file(`"size":4096,"blocks":{"1":"`+strings.Repeat("ab", 32)+`"}`) + `}}`, "beyond its size"},
		{"directory twice", `{"version":1,"full":true,"block_size":4096,"next_ino":3,"inodes":{"1":{"ino":1,"mode":16877,"nlink":3,"parent":1,"entries":{"a":2,"b":2}},"2":{"ino":2,"mode":16877,"nlink":2,"parent":1}}}`, "linked twice"},
		{"parent cycle", `{"version":1,"full":true,"block_size":4096,"next_ino":4,"inodes":{"1":{"ino":1,"mode":16877,"nlink":2,"parent":1},"2":{"ino":2,"mode":16877,"nlink":2,"parent":3,"entries":{"c":3}},"3":{"ino":3,"mode":16877,"nlink":2,"parent":2,"entries":{"b":2}}}}`, ""},
		{"short hash", `{"version":1,"full":true,"block_size":4096,"next_ino":3,"inodes":{` + root + `,` + file(`"size":5,"blocks":{"0":"abcd"}`) + `}}`, "hex digits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeTree([]byte(tt.in))
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("got %v, want no error", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("got %v, want an error with %q", err, tt.err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	nf := func(error) bool { return false }
	tests := []struct {
		name string
		cfg  Config
		err  string
	}{
		{"good", Config{CacheDir: "/c", CacheSize: 4 << 20, IsNotFound: nf}, ""},
		{"no dir", Config{CacheSize: 4 << 20, IsNotFound: nf}, "cache directory"},
		{"no IsNotFound", Config{CacheDir: "/c", CacheSize: 4 << 20}, "IsNotFound"},
		{"small cache", Config{CacheDir: "/c", CacheSize: 1 << 20, IsNotFound: nf}, "below four blocks"},
		{"block size", Config{CacheDir: "/c", CacheSize: 4 << 20, IsNotFound: nf, BlockSize: 100}, "block size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("got %v, want no error", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("got %v, want an error with %q", err, tt.err)
			}
		})
	}
}
