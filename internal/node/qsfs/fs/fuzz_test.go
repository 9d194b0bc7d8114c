package fs

import (
	"strings"
	"testing"
)

// FuzzDecodeRecord feeds arbitrary bytes to the metadata decoder (what a
// backend returns is input): it errors or yields a tree that passes its
// check, never panics; a journal record laid over a good tree leaves it
// checkable.
func FuzzDecodeRecord(f *testing.F) {
	const root = `"1":{"ino":1,"mode":16877,"nlink":2,"parent":1,"entries":{"a":2}}`
	const file = `"2":{"ino":2,"mode":33188,"nlink":1,"size":5,"blocks":{"0":"` + "%s" + `"}}`
	good := `{"version":1,"gen":1,"full":true,"block_size":4096,"next_ino":3,"inodes":{` + root + `,` + strings.Replace(file, "%s", strings.Repeat("ab", 32), 1) + `}}`
	f.Add([]byte(good))
	f.Add([]byte(`{"version":1,"gen":2,"block_size":4096,"next_ino":4,"inodes":{"3":{"ino":3,"mode":16877,"nlink":2,"parent":1}},"deleted":[2]}`))
	f.Add([]byte(`{"version":1,"gen":2,"block_size":4096,"next_ino":3,"deleted":[1]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if tr, err := decodeTree(b); err == nil {
			if err := tr.check(); err != nil {
				t.Fatalf("decoded tree fails its check: %v", err)
			}
		}
		r, err := decodeRecord(b)
		if err != nil || r.Full {
			return
		}
		base, err := decodeTree([]byte(good))
		if err != nil {
			t.Fatal(err)
		}
		if base.apply(r) == nil {
			_ = base.check() // an error is fine, a panic is not
		}
	})
}
