package rtnl

import "github.com/vishvananda/netlink"

// LinkBytes returns the bytes link name in namespace ns received and sent
// (its kernel counters, which start again at zero when the link is made
// again).
func LinkBytes(ns, name string) (rx, tx uint64, err error) {
	err = onLink(ns, name, func(_ *netlink.Handle, l netlink.Link) error {
		if st := l.Attrs().Statistics; st != nil {
			rx, tx = st.RxBytes, st.TxBytes
		}
		return nil
	})
	return rx, tx, err
}
