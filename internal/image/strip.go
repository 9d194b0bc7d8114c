package image

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// stripper makes stripped copies of ELF executables in dir.
type stripper struct {
	ctx  context.Context
	dir  string
	log  *slog.Logger
	done []string // sources stripped
	n    int
}

// hasSymbols reports whether the ELF file p carries a symbol table or
// debug sections (what strip removes). Not an ELF file is an error.
func hasSymbols(p string) (bool, error) {
	f, err := elf.Open(p)
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", p, err)
	}
	defer f.Close()
	for _, s := range f.Sections {
		if s.Type == elf.SHT_SYMTAB || strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
			return true, nil
		}
	}
	return false, nil
}

// strip returns a stripped copy of the executable src, or src itself when
// it has nothing to strip or strip is not on the build host (with a
// warning: the image is larger but works).
func (s *stripper) strip(src string) (string, error) {
	has, err := hasSymbols(src)
	if err != nil || !has {
		return src, err
	}
	tool, err := exec.LookPath("strip")
	if err != nil {
		s.log.Warn("not_stripped", "file", src, "err", err)
		return src, nil
	}
	s.n++
	dst := filepath.Join(s.dir, strconv.Itoa(s.n)+"-"+filepath.Base(src))
	cmd := exec.CommandContext(s.ctx, tool, "--strip-all", "-o", dst, src)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("stripping %s: %w: %s", src, err, strings.TrimSpace(out.String()))
	}
	if has, err := hasSymbols(dst); err != nil || has {
		return "", fmt.Errorf("stripping %s: the copy still has symbols (%v)", src, err)
	}
	s.done = append(s.done, src)
	return dst, nil
}
