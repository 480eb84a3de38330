package console

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed assets
var assets embed.FS

// Prefix is the path the console is served under.
const Prefix = "/ui/"

// CallbackPath is where the identity provider sends the browser back after
// an OIDC sign-in (the redirect URI registered there). The API answers it:
// it moves the answer's parameters into the fragment of the console's page,
// whose script hands them to the API (api/signin.go).
const CallbackPath = Prefix + "oidc/callback"

// SetSecurityHeaders sets the headers every console response carries; the
// API sets them on the console's other answers (the OIDC callback).
func SetSecurityHeaders(h http.Header) { setSecurityHeaders(h) }

// ContentSecurityPolicy is sent with every console response. Scripts and
// styles come only from the console's own files ('self', no inline, no
// eval); requests go only to the same origin (the API); nothing may frame
// the console, and forms post nowhere.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler returns the handler serving the console's files under [Prefix]. It
// is safe for concurrent use. Directories are never listed: a path that is
// not a file is 404, except the prefix itself, which serves index.html.
func Handler() http.Handler {
	root, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setSecurityHeaders(w.Header())
		name := strings.TrimPrefix(r.URL.Path, Prefix)
		if name == "" {
			name = "index.html"
		}
		name = path.Clean(name)
		if !fs.ValidPath(name) || strings.HasPrefix(name, ".") {
			http.NotFound(w, r)
			return
		}
		f, err := root.Open(name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer func() { _ = f.Close() }()
		st, err := f.Stat()
		if err != nil || st.IsDir() {
			http.NotFound(w, r)
			return
		}
		rs, ok := f.(readSeeker)
		if !ok {
			http.Error(w, "unreadable", http.StatusInternalServerError)
			return
		}
		if name == "index.html" {
			// The page names the scripts: always revalidate it, so that a
			// new binary's page never runs with an old script.
			w.Header().Set("Cache-Control", "no-cache")
		}
		// Embedded files have no modification time: ServeContent then sends
		// no Last-Modified, and the type comes from the extension.
		http.ServeContent(w, r, name, st.ModTime(), rs)
	})
}

type readSeeker interface {
	Read([]byte) (int, error)
	Seek(int64, int) (int64, error)
}

// setSecurityHeaders sets the headers every console response carries.
func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
}
