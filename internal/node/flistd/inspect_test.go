package flistd

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Inspect reads metadata and blocks only: no root needed.
func TestInspect(t *testing.T) {
	startup := `# app
[startup]

[startup.entry]
name = "core.system"

[startup.entry.args]
name = "/bin/app"
args = ["--port", "80", "-v"]
dir = "/srv"

[startup.entry.args.env]
HOME = "/root"
PATH = "/bin:/usr/bin"
`
	tests := []struct {
		name    string
		tr      tree
		want    Info
		wantErr error
	}{
		{"rootfs", tree{"bin/sh": "sh", "etc/passwd": "root"},
			Info{ImageRaw: -1, HasShell: true}, nil},
		{"shell through merged-usr links", tree{"bin": "->usr/bin", "usr/bin/sh": "->dash", "usr/bin/dash": "dash"},
			Info{ImageRaw: -1, HasShell: true}, nil},
		{"not a rootfs", tree{"data/file": "x"}, Info{ImageRaw: -1}, nil},
		{"image.raw", tree{"image.raw": strings.Repeat("d", 4096)}, Info{ImageRaw: 4096}, nil},
		{"image.raw is a directory", tree{"image.raw/x": "x"}, Info{ImageRaw: -1}, nil},
		{"kernel and initrd", tree{"bin/sh": "sh", "boot/vmlinuz": "->vmlinuz-6.1", "boot/vmlinuz-6.1": "k",
			"boot/initrd.img": "->/boot/initrd.img-6.1", "boot/initrd.img-6.1": "i"},
			Info{ImageRaw: -1, Kernel: "/boot/vmlinuz-6.1", Initrd: "/boot/initrd.img-6.1", HasShell: true}, nil},
		{"absolute kernel link stays in the flist", tree{"boot": "->/real/boot", "real/boot/vmlinuz": "k"},
			Info{ImageRaw: -1, Kernel: "/real/boot/vmlinuz"}, nil},
		{"kernel link climbing out", tree{"bin/sh": "sh", "boot/vmlinuz": "->../../../../etc/passwd"}, Info{}, ErrEscape},
		{"initrd link climbing out after coming back", tree{"boot/initrd.img": "->../boot/../../host"}, Info{}, ErrEscape},
		{"dangling kernel link", tree{"boot/vmlinuz": "->nowhere"}, Info{ImageRaw: -1}, nil},
		{"kernel link loop", tree{"boot/vmlinuz": "->vmlinuz2", "boot/vmlinuz2": "->vmlinuz"}, Info{}, errLoop},
		{"startup", tree{"bin/sh": "sh", ".startup.toml": startup},
			Info{ImageRaw: -1, HasShell: true, Startup: &Startup{Name: "/bin/app", Args: []string{"--port", "80", "-v"},
				Dir: "/srv", Env: map[string]string{"HOME": "/root", "PATH": "/bin:/usr/bin"}}}, nil},
		{"startup without an entry", tree{".startup.toml": "[startup]\n"}, Info{ImageRaw: -1}, nil},
		{"bad startup", tree{".startup.toml": "[startup.entry.args]\nname = \"/bin/app\nx"}, Info{}, errParse},
	}
	m := newModule(t, filepath.Join(t.TempDir(), "flist"), Config{Binary: "/nonexistent"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := m.Inspect(context.Background(), buildFlist(t, tt.tr))
			switch {
			case tt.wantErr == errLoop || tt.wantErr == errParse:
				if err == nil {
					t.Fatalf("Inspect = %+v, want an error", got)
				}
				return
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Inspect error = %v, want %v", err, tt.wantErr)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Inspect = %+v (startup %+v), want %+v (startup %+v)", got, got.Startup, tt.want, tt.want.Startup)
			}
		})
	}
}

var (
	errLoop  = errors.New("any error (loop)")
	errParse = errors.New("any error (parse)")
)

func TestInspectErrorNamesURL(t *testing.T) {
	m := newModule(t, filepath.Join(t.TempDir(), "flist"), Config{Binary: "/nonexistent"})
	fl := buildFlist(t, tree{"boot/vmlinuz": "->../../x"})
	_, err := m.Inspect(context.Background(), fl)
	if err == nil || !strings.Contains(err.Error(), fl) || !strings.Contains(err.Error(), "/boot/vmlinuz") {
		t.Errorf("error = %v, want it to name %s and /boot/vmlinuz", err, fl)
	}
}
