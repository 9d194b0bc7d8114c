package kernel

import (
	"strings"
	"testing"
)

func TestParseDepends(t *testing.T) {
	out := "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n  Recommends: firmware\n"
	if got := parseDepends(out); got != "linux-image-6.1.0-56-amd64" {
		t.Fatalf("got %q", got)
	}
	if got := parseDepends("nothing"); got != "" {
		t.Fatalf("got %q", got)
	}
}

func TestParseModinfo(t *testing.T) {
	m := &Module{Name: "btrfs"}
	parseModinfo(m, []byte("license=GPL\x00softdep=pre: crc32c post: foo\x00depends=raid6_pq,xor,libcrc32c\x00alias=fs-btrfs\x00alias=devname:btrfs-control\x00name=btrfs\x00"))
	if strings.Join(m.Depends, ",") != "raid6_pq,xor,libcrc32c" || strings.Join(m.SoftPre, ",") != "crc32c" || len(m.DeviceAliases) != 0 {
		t.Fatalf("got %+v", m)
	}
	d := &Module{Name: "virtio_blk"}
	parseModinfo(d, []byte("alias=virtio:d00000002v*\x00depends=\x00"))
	if len(d.Depends) != 0 || strings.Join(d.DeviceAliases, " ") != "virtio:d00000002v*" {
		t.Fatalf("got %+v", d)
	}
}

func fakeIndex() *Index {
	ix := &Index{byName: map[string]*Module{}, byAlias: map[string][]string{}, builtin: map[string]bool{"ext4": true}}
	for _, m := range []*Module{
		{Name: "btrfs", Path: "kernel/fs/btrfs/btrfs.ko", Depends: []string{"raid6_pq", "libcrc32c"}, SoftPre: []string{"crc32c"}},
		{Name: "raid6_pq", Path: "kernel/lib/raid6/raid6_pq.ko"},
		{Name: "libcrc32c", Path: "kernel/lib/libcrc32c.ko"},
		{Name: "crc32c_generic", Path: "kernel/crypto/crc32c_generic.ko", aliases: []string{"crc32c"}},
		{Name: "virtio_blk", Path: "kernel/drivers/block/virtio_blk.ko", Depends: []string{"virtio", "virtio_ring"}, DeviceAliases: []string{"virtio:d00000002v*"}},
		{Name: "virtio", Path: "kernel/drivers/virtio/virtio.ko"},
		{Name: "virtio_ring", Path: "kernel/drivers/virtio/virtio_ring.ko"},
	} {
		ix.byName[m.Name] = m
		for _, a := range m.aliases {
			ix.byAlias[a] = append(ix.byAlias[a], m.Name)
		}
	}
	return ix
}

func TestResolve(t *testing.T) {
	ix := fakeIndex()
	wanted := []string{"virtio-blk", "btrfs", "ext4", "nosuch"}
	order, missing := ix.Resolve(wanted)
	var names []string
	for _, m := range order {
		names = append(names, m.Name)
	}
	if got, want := strings.Join(names, " "), "virtio virtio_ring virtio_blk crc32c_generic raid6_pq libcrc32c btrfs"; got != want {
		t.Fatalf("order: got %q, want %q", got, want)
	}
	if strings.Join(missing, " ") != "nosuch" {
		t.Fatalf("missing: got %q (ext4 is built in)", missing)
	}
	lines := map[string]string{}
	for _, m := range order {
		lines[m.Name] = LoadLine(m, ix.Wanted(m, wanted))
	}
	if got := lines["btrfs"]; got != "kernel/fs/btrfs/btrfs.ko\tcrc32c_generic,raid6_pq,libcrc32c\t*" {
		t.Errorf("btrfs line %q", got)
	}
	if got := lines["raid6_pq"]; got != "kernel/lib/raid6/raid6_pq.ko\t\t" {
		t.Errorf("dependency-only line %q", got)
	}
	if got := lines["virtio_blk"]; got != "kernel/drivers/block/virtio_blk.ko\tvirtio,virtio_ring\tvirtio:d00000002v*" {
		t.Errorf("driver line %q", got)
	}
}
