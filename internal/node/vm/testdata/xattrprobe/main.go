// Command xattrprobe runs inside a test guest: it tries to set extended
// attributes the host would act on (trusted.overlay.*, security.capability)
// on the files named in its arguments and lists the attributes it can see,
// one line per attempt on the console, for the vm package's tests.
package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// capV2 is a VFS_CAP_REVISION_2 security.capability granting
// CAP_SYS_ADMIN (permitted and effective).
var capV2 = []byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x00, 0x20, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

func main() {
	for _, p := range os.Args[1:] {
		for _, a := range []struct {
			name  string
			value []byte
		}{
			{"trusted.overlay.redirect", []byte("/etc")},
			{"trusted.overlay.opaque", []byte("y")},
			{"trusted.zos.probe", []byte("guest")},
			{"security.capability", capV2},
			{"user.zos.probe", []byte("guest")},
		} {
			err := syscall.Setxattr(p, a.name, a.value, 0)
			fmt.Printf("xattrprobe set %s %s: %v\n", p, a.name, errString(err))
		}
		buf := make([]byte, 64<<10)
		n, err := syscall.Listxattr(p, buf)
		var names []string
		if err == nil {
			for _, s := range strings.Split(string(buf[:n]), "\x00") {
				if s != "" {
					names = append(names, s)
				}
			}
		}
		fmt.Printf("xattrprobe list %s: %s %v\n", p, strings.Join(names, ","), errString(err))
	}
	fmt.Println("xattrprobe done")
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}
