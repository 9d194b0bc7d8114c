package hub

import (
	"net/http"
	"os"

	"github.com/zos-go/zos/internal/flist"
)

// Blocks in the layout rfs reads from an http store: GET BASE/ab/abcd...,
// then BASE/abcd.... The first shares its shape with a flist download
// (/{repo}/{name}): a path that names a block the hub holds (two hex
// digits, then the 64 hex digits of an id starting with them) serves the
// block, anything else is a download. Either way the client checks what
// it gets against the id it asked for.

// rfsBlockID reports whether /{prefix}/{name} is the rfs path of a block.
func rfsBlockID(prefix, name string) ([flist.HashSize]byte, bool) {
	id, err := flist.ParseID(name)
	if err != nil || len(prefix) != 2 || name[:2] != prefix {
		return id, false
	}
	return id, true
}

// getPair serves /{repo}/{name}: a block the hub holds (rfs layout), else a
// flist download.
func (h *Hub) getPair(w http.ResponseWriter, r *http.Request) {
	if id, ok := rfsBlockID(r.PathValue("repo"), r.PathValue("name")); ok {
		if _, err := os.Stat(h.blockPath(id)); err == nil {
			r.SetPathValue("id", r.PathValue("name"))
			h.getBlock(w, r)
			return
		}
	}
	h.download(w, r)
}

// getFlat serves /{id}, the flat rfs layout.
func (h *Hub) getFlat(w http.ResponseWriter, r *http.Request) {
	if _, err := flist.ParseID(r.PathValue("id")); err != nil {
		http.NotFound(w, r)
		return
	}
	h.getBlock(w, r)
}
