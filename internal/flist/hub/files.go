package hub

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/zos-go/zos/internal/atomicfile"
)

// Files appear whole: they are written under DIR/tmp, synced, and renamed
// into place (same file system).

func (h *Hub) tmpDir() string { return filepath.Join(h.cfg.Dir, "tmp") }

// receiveFile streams a signed request's body into a temporary file (and
// into also), checked as signed.receive checks it. On success the caller
// owns the file: commit it or remove it.
func (h *Hub) receiveFile(s *signed, also ...io.Writer) (string, int64, error) {
	f, err := os.CreateTemp(h.tmpDir(), "upload-*")
	if err != nil {
		return "", 0, fmt.Errorf("creating upload file: %w", err)
	}
	n, err := s.receive(io.MultiWriter(append([]io.Writer{f}, also...)...))
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", n, err
	}
	return f.Name(), n, nil
}

// commit moves the temporary file tmp to p (synced, renamed, the directory
// synced), creating p's directory.
func commit(tmp, p string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return atomicfile.Rename(tmp, p)
}

// writeFile writes small data (records, tags) to p whole.
func (h *Hub) writeFile(p string, data []byte) error {
	f, err := os.CreateTemp(h.tmpDir(), "file-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = commit(f.Name(), p)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}

// writeSynced writes a new file p.
func writeSynced(p string, data []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
