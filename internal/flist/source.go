package flist

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// AddSource adds a build source: a directory, an OCI image layout
// directory, a tar or tar.gz archive, or an OCI / `docker save` image
// archive (detected by their index.json or manifest.json).
func AddSource(ctx context.Context, b *Builder, src string) error {
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("reading source: %w", err)
	}
	if st.IsDir() {
		if _, err := os.Stat(filepath.Join(src, "index.json")); err == nil {
			return addImage(ctx, b, dirFS{src})
		}
		return AddDir(ctx, b, src)
	}
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("reading source: %w", err)
	}
	defer f.Close()
	if gz, err := isGzip(f); err != nil {
		return err
	} else if gz {
		return AddTar(ctx, b, f)
	}
	arch, err := indexTar(f)
	if err != nil {
		return fmt.Errorf("reading %s: %w", src, err)
	}
	if arch.has("index.json") || arch.has("manifest.json") {
		return addImage(ctx, b, arch)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return AddTar(ctx, b, f)
}

func isGzip(f *os.File) (bool, error) {
	var magic [2]byte
	n, err := f.ReadAt(magic[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("reading source: %w", err)
	}
	return n == 2 && magic[0] == 0x1f && magic[1] == 0x8b, nil
}

// AddDir adds a directory tree (not following symlinks); hard links are
// kept as hard links.
func AddDir(ctx context.Context, b *Builder, root string) error {
	type devIno struct{ dev, ino uint64 }
	links := map[devIno]string{}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("walking %s: %w", root, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		info, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("reading %s: no stat", p)
		}
		e := Entry{Path: rel, Mode: st.Mode, UID: st.Uid, GID: st.Gid, Rdev: st.Rdev,
			Mtime: st.Mtim.Sec, Ctime: st.Ctim.Sec}
		switch st.Mode & ModeType {
		case ModeSymlink:
			t, err := os.Readlink(p)
			if err != nil {
				return fmt.Errorf("reading link %s: %w", p, err)
			}
			e.Target = t
			return b.Add(ctx, e, nil)
		case ModeRegular:
			if st.Nlink > 1 {
				k := devIno{st.Dev, st.Ino}
				if first, ok := links[k]; ok {
					e.Link = first
					return b.Add(ctx, e, nil)
				}
				links[k] = rel
			}
			f, err := os.Open(p)
			if err != nil {
				return fmt.Errorf("reading %s: %w", p, err)
			}
			defer f.Close()
			return b.Add(ctx, e, f)
		}
		return b.Add(ctx, e, nil)
	})
}

// AddTar adds the entries of a tar or tar.gz stream.
func AddTar(ctx context.Context, b *Builder, r io.Reader) error {
	br := bufio.NewReaderSize(r, 1<<20)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("reading gzip: %w", err)
		}
		defer gz.Close()
		return addTarEntries(ctx, b, tar.NewReader(gz), false)
	}
	return addTarEntries(ctx, b, tar.NewReader(br), false)
}

// addTarEntries adds a tar's entries; with whiteouts, ".wh." files remove
// entries of earlier layers (OCI layers).
func addTarEntries(ctx context.Context, b *Builder, tr *tar.Reader, whiteouts bool) error {
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading tar: %w", err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		name := h.Name
		if whiteouts {
			dir, base := path.Split(strings.TrimSuffix(name, "/"))
			if base == ".wh..wh..opq" {
				if err := b.Opaque(dir); err != nil {
					return err
				}
				continue
			}
			if strings.HasPrefix(base, ".wh.") {
				if err := b.Whiteout(dir + strings.TrimPrefix(base, ".wh.")); err != nil {
					return err
				}
				continue
			}
		}
		e := Entry{Path: name, UID: uint32(h.Uid), GID: uint32(h.Gid), Mode: uint32(h.Mode) & 0o7777,
			Mtime: h.ModTime.Unix(), Ctime: h.ChangeTime.Unix()}
		if h.ChangeTime.IsZero() {
			e.Ctime = e.Mtime
		}
		var content io.Reader
		switch h.Typeflag {
		case tar.TypeReg:
			e.Mode |= ModeRegular
			content = tr
		case tar.TypeDir:
			e.Mode |= ModeDir
		case tar.TypeSymlink:
			e.Mode |= ModeSymlink
			e.Target = h.Linkname
		case tar.TypeLink:
			e.Link = h.Linkname
		case tar.TypeChar:
			e.Mode |= ModeChar
			e.Rdev = mkdev(h.Devmajor, h.Devminor)
		case tar.TypeBlock:
			e.Mode |= ModeBlock
			e.Rdev = mkdev(h.Devmajor, h.Devminor)
		case tar.TypeFifo:
			e.Mode |= ModeFIFO
		case tar.TypeXGlobalHeader:
			continue
		default:
			return fmt.Errorf("entry %q: unsupported tar type %q", name, h.Typeflag)
		}
		if err := b.Add(ctx, e, content); err != nil {
			return err
		}
	}
}

// mkdev encodes a device number as Linux does.
func mkdev(major, minor int64) uint64 {
	ma, mi := uint64(major), uint64(minor)
	return (ma&0xfff)<<8 | (mi & 0xff) | (mi&^0xff)<<12 | (ma&^0xfff)<<32
}

// imageFS is where an image's files come from: a layout directory or an
// archive.
type imageFS interface {
	open(name string) (io.ReadCloser, error)
}

type dirFS struct{ root string }

func (d dirFS) open(name string) (io.ReadCloser, error) {
	if _, err := splitPath(name); err != nil {
		return nil, err
	}
	return os.Open(filepath.Join(d.root, filepath.FromSlash(name)))
}

// tarIndex maps the regular files of an uncompressed archive to where
// their content sits.
type tarIndex struct {
	f     *os.File
	files map[string]struct{ off, size int64 }
}

func indexTar(f *os.File) (*tarIndex, error) {
	t := &tarIndex{f: f, files: map[string]struct{ off, size int64 }{}}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return t, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading tar: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		t.files[strings.TrimPrefix(path.Clean(h.Name), "./")] = struct{ off, size int64 }{off, h.Size}
	}
}

func (t *tarIndex) has(name string) bool { _, ok := t.files[name]; return ok }

func (t *tarIndex) open(name string) (io.ReadCloser, error) {
	e, ok := t.files[path.Clean(name)]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, os.ErrNotExist)
	}
	return io.NopCloser(io.NewSectionReader(t.f, e.off, e.size)), nil
}

// addImage applies the layers of the first image of an OCI layout or a
// docker save archive, in order, with whiteouts.
func addImage(ctx context.Context, b *Builder, ifs imageFS) error {
	layers, err := imageLayers(ifs)
	if err != nil {
		return err
	}
	for i, l := range layers {
		b.NextLayer()
		if err := addLayer(ctx, b, ifs, l); err != nil {
			return fmt.Errorf("layer %d (%s): %w", i, l, err)
		}
	}
	return nil
}

func addLayer(ctx context.Context, b *Builder, ifs imageFS, name string) error {
	rc, err := ifs.open(name)
	if err != nil {
		return err
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 1<<20)
	var r io.Reader = br
	if magic, err := br.Peek(4); err == nil {
		switch {
		case magic[0] == 0x1f && magic[1] == 0x8b:
			gz, err := gzip.NewReader(br)
			if err != nil {
				return fmt.Errorf("reading gzip: %w", err)
			}
			defer gz.Close()
			r = gz
		case magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd:
			return errors.New("zstd layers are not supported")
		}
	}
	return addTarEntries(ctx, b, tar.NewReader(r), true)
}

func readJSON(ifs imageFS, name string, v any) error {
	rc, err := ifs.open(name)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := json.NewDecoder(io.LimitReader(rc, 16<<20)).Decode(v); err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	return nil
}

type ociDescriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
}

// blobPath maps a digest to its blob in an OCI layout.
func blobPath(digest string) (string, error) {
	alg, hex, ok := strings.Cut(digest, ":")
	if !ok || alg == "" || hex == "" || strings.ContainsAny(digest, "/.") {
		return "", fmt.Errorf("bad digest %q", digest)
	}
	return "blobs/" + alg + "/" + hex, nil
}

func imageLayers(ifs imageFS) ([]string, error) {
	var docker []struct {
		Layers []string `json:"Layers"`
	}
	if err := readJSON(ifs, "manifest.json", &docker); err == nil {
		if len(docker) == 0 {
			return nil, errors.New("manifest.json lists no image")
		}
		return docker[0].Layers, nil
	}
	var index struct {
		Manifests []ociDescriptor `json:"manifests"`
	}
	if err := readJSON(ifs, "index.json", &index); err != nil {
		return nil, fmt.Errorf("reading image: %w", err)
	}
	for depth := 0; depth < 4; depth++ {
		if len(index.Manifests) == 0 {
			return nil, errors.New("image index lists no manifest")
		}
		p, err := blobPath(index.Manifests[0].Digest)
		if err != nil {
			return nil, err
		}
		var m struct {
			Manifests []ociDescriptor `json:"manifests"`
			Layers    []ociDescriptor `json:"layers"`
		}
		if err := readJSON(ifs, p, &m); err != nil {
			return nil, err
		}
		if len(m.Manifests) > 0 { // a nested index
			index.Manifests = m.Manifests
			continue
		}
		var out []string
		for _, l := range m.Layers {
			p, err := blobPath(l.Digest)
			if err != nil {
				return nil, err
			}
			out = append(out, p)
		}
		return out, nil
	}
	return nil, errors.New("image index nested too deep")
}
