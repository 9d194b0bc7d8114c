package btrfs

import (
	"reflect"
	"testing"
)

const qgroupShow = `Qgroupid    Referenced    Exclusive  Max referenced  Max exclusive   Path 
--------    ----------    ---------  --------------  -------------   ---- 
0/5              16384        16384            none           none   <toplevel>
0/256          1048576        16384       104857600           none   vol1
0/257                0            0            none           none   rootfs:162-1-vm
0/258            16384        16384            none           none   <stale>
1/100                0            0            none           none   <0 member qgroups>
`

func TestParseQgroups(t *testing.T) {
	qs, err := ParseQgroups([]byte(qgroupShow))
	if err != nil {
		t.Fatal(err)
	}
	want := []Qgroup{
		{ID: "0/5", Referenced: 16384, Exclusive: 16384, Path: "<toplevel>"},
		{ID: "0/256", Referenced: 1048576, Exclusive: 16384, Limit: 104857600, Path: "vol1"},
		{ID: "0/257", Path: "rootfs:162-1-vm"},
		{ID: "0/258", Referenced: 16384, Exclusive: 16384, Path: "<stale>"},
		{ID: "1/100", Path: "<0 member qgroups>"},
	}
	if !reflect.DeepEqual(qs, want) {
		t.Errorf("got %+v\nwant %+v", qs, want)
	}
	if _, err := ParseQgroups([]byte("0/5 x 1 none none p\n")); err == nil {
		t.Error("bad number: want an error")
	}
}

func FuzzParseQgroups(f *testing.F) {
	f.Add([]byte(qgroupShow))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseQgroups(b) })
}
