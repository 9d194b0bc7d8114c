package netboot

import (
	"testing"
)

// TestScript: the iPXE script loads the kernel with the command line the
// booted node reads (internal/node/boot.ParseCmdline), then the initramfs.
func TestScript(t *testing.T) {
	tests := []struct {
		name string
		b    Boot
		want string
	}{
		{"farm, token, update", Boot{Farm: 3, FarmToken: "zft1_x", Grid: "nats://10.0.2.2:4222", Channel: "testing", Version: "v2",
			Kernel: "http://h/k", Initramfs: "http://h/i", UpdateHub: "http://h", UpdateRoot: "sha256:ab", Args: []string{"console=ttyS0"}},
			"#!ipxe\necho Zero-OS v2 (testing) for farm 3\n" +
				"kernel http://h/k console=ttyS0 farm=3 farm_token=zft1_x grid=nats://10.0.2.2:4222 update_channel=testing update_hub=http://h update_root=sha256:ab\n" +
				"initrd http://h/i\nboot\n"},
		{"no token, no update root", Boot{Farm: 1, Grid: "nats://g:1", Channel: "production", Version: "v1",
			Kernel: "http://h/k", Initramfs: "http://h/i", UpdateHub: "http://h"},
			"#!ipxe\necho Zero-OS v1 (production) for farm 1\nkernel http://h/k farm=1 grid=nats://g:1 update_channel=production\ninitrd http://h/i\nboot\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Script(tt.b); got != tt.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	for _, c := range []Config{{}, {ReleaseDir: "r"}, {ReleaseDir: "r", TrustDir: "t"}, {ReleaseDir: "r", TrustDir: "t", GridPort: 70000}} {
		if _, err := New(c, nil, nil); err == nil {
			t.Errorf("New(%+v): got no error, want one", c)
		}
	}
}
