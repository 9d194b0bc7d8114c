package fs

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
)

// What the kernel is told: an interrupted request (its context canceled)
// is EINTR, so the caller retries rather than seeing its fsync fail; a
// timeout or a backend error is EIO.
func TestErrno(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want syscall.Errno
	}{
		{"none", nil, 0},
		{"errno kept", syscall.ENOENT, syscall.ENOENT},
		{"interrupted", fmt.Errorf("uploading block: %w", context.Canceled), syscall.EINTR},
		{"timed out", fmt.Errorf("uploading block: %w", context.DeadlineExceeded), syscall.EIO},
		{"backend", errors.New("backend unreachable"), syscall.EIO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errno(tt.err); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
