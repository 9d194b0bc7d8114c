package main

import (
	"fmt"
	"net/netip"

	"github.com/zos-go/zos/internal/egress"
)

// egressFlag collects repeated --egress-allow entries: prefixes, addresses,
// "private" or "loopback" (egress.ParseAllow).
type egressFlag []netip.Prefix

func (e *egressFlag) String() string { return fmt.Sprint([]netip.Prefix(*e)) }

func (e *egressFlag) Set(v string) error {
	p, err := egress.ParseAllow([]string{v})
	if err != nil {
		return err
	}
	*e = append(*e, p...)
	return nil
}
