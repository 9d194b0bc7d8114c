package btrfs

import "testing"

func TestParseDeviceStats(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    DeviceStats
		wantErr bool
	}{
		{name: "clean", in: "[/dev/loop0].write_io_errs    0\n[/dev/loop0].read_io_errs     0\n[/dev/loop0].flush_io_errs    0\n[/dev/loop0].corruption_errs  0\n[/dev/loop0].generation_errs  0\n"},
		{name: "errors summed over devices",
			in:   "[/dev/loop0].write_io_errs    3\n[/dev/loop0].read_io_errs     1\n[/dev/sdb].write_io_errs 2\n[/dev/sdb].corruption_errs 5\n",
			want: DeviceStats{WriteErrs: 5, ReadErrs: 1, CorruptionErrs: 5}},
		{name: "missing device is skipped", in: "[devid:2].write_io_errs 0\n[/dev/loop0].read_io_errs 7\n", want: DeviceStats{ReadErrs: 7}},
		{name: "no counters", in: "ERROR: not a btrfs filesystem\n", wantErr: true},
		{name: "bad number", in: "[/dev/loop0].write_io_errs x\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDeviceStats([]byte(tt.in))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("got %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func FuzzParseDeviceStats(f *testing.F) {
	f.Add([]byte("[/dev/loop0].write_io_errs    0\n[/dev/loop0].read_io_errs 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseDeviceStats(b)
		if err != nil && s != (DeviceStats{}) {
			t.Errorf("error %v with counters %+v", err, s)
		}
	})
}
