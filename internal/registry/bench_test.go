package registry

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkCreateNodeContract measures signed writes through the service on
// one embedded server (signature, freshness, nonce, counter, record, event).
func BenchmarkCreateNodeContract(b *testing.B) {
	g := newGrid(b)
	_, _, _, node := g.farmWithNode(b, "bench", 0)
	u := g.user(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		if _, err := u.c.CreateNodeContract(ctx, node.ID, fmt.Sprintf("%08x", i), "", 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNodeGet measures a read through the service.
func BenchmarkNodeGet(b *testing.B) {
	g := newGrid(b)
	_, _, _, node := g.farmWithNode(b, "bench", 0)
	u := g.user(b)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if _, err := u.c.Node(ctx, node.ID); err != nil {
			b.Fatal(err)
		}
	}
}
