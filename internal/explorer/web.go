package explorer

import (
	"embed"
	"io/fs"
	"net/http"
)

// webFiles is the page at / and its script and style; nothing is fetched
// from anywhere but this server.
//
//go:embed web
var webFiles embed.FS

// contentSecurityPolicy keeps the page to this server's own files and API.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func (e *Explorer) mountWeb(mux *http.ServeMux) {
	root, err := fs.Sub(webFiles, "web")
	if err != nil { // only if the embed directive and the path disagree
		e.log.Error("web_files_missing", "err", err)
		return
	}
	files := http.FileServerFS(root)
	secure := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Security-Policy", contentSecurityPolicy)
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.Header().Set("Cache-Control", "no-cache")
			h.ServeHTTP(w, r)
		})
	}
	mux.Handle("GET /{$}", secure(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, root, "index.html")
	})))
	mux.Handle("GET /static/", secure(files))
}
