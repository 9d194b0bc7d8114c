package zdb

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestUserIndex checks the hash table against a Go map under random
// inserts, overwrites and deletes, across growths and tombstone rehashes.
func TestUserIndex(t *testing.T) {
	for _, hint := range []int{0, 1000} {
		t.Run(fmt.Sprint("hint ", hint), func(t *testing.T) {
			u := newUserIndex(hint)
			ref := map[string]loc{}
			r := rand.New(rand.NewPCG(3, 4))
			for i := 0; i < 200000; i++ {
				key := []byte(fmt.Sprint("k", r.IntN(5000)))
				if r.IntN(200) == 0 {
					key = make([]byte, r.IntN(256)) // binary and long keys
					for j := range key {
						key[j] = byte(r.IntN(256))
					}
				}
				switch r.IntN(3) {
				case 0, 1:
					l := loc{file: uint32(i), off: uint32(i * 2), size: uint32(r.IntN(100))}
					u.put(key, l)
					ref[string(key)] = l
				case 2:
					got, ok := u.del(key)
					want, wok := ref[string(key)]
					if ok != wok || got != want {
						t.Fatalf("del %q: got %v %v, want %v %v", key, got, ok, want, wok)
					}
					delete(ref, string(key))
				}
			}
			if u.len() != len(ref) {
				t.Fatalf("got %d keys, want %d", u.len(), len(ref))
			}
			var sum uint64
			for k, want := range ref {
				sum += uint64(want.size)
				if got, ok := u.get([]byte(k)); !ok || got != want {
					t.Fatalf("get %q: got %v %v, want %v", k, got, ok, want)
				}
			}
			if u.sum() != sum {
				t.Fatalf("sum: got %d, want %d", u.sum(), sum)
			}
			if _, ok := u.get([]byte("absent")); ok {
				t.Fatal("absent key found")
			}
		})
	}
}
