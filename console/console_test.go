package console

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	resp := rec.Result()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestEveryAnswerCarriesTheSecurityHeaders(t *testing.T) {
	for _, path := range []string{"/ui/", "/ui/app.js", "/ui/favicon.svg", "/ui/nope", "/ui/vendor/"} {
		resp, _ := get(t, path)
		h := resp.Header
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %s", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-") {
			t.Errorf("%s: CSP %q allows unsafe sources", path, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", path, h)
		}
	}
}

func TestFilesAndTypes(t *testing.T) {
	for path, want := range map[string]string{
		"/ui/":                         "text/html; charset=utf-8",
		"/ui/index.html":               "text/html; charset=utf-8",
		"/ui/app.js":                   "text/javascript; charset=utf-8",
		"/ui/app.css":                  "text/css; charset=utf-8",
		"/ui/favicon.svg":              "image/svg+xml",
		"/ui/vendor/uPlot.iife.min.js": "text/javascript; charset=utf-8",
		"/ui/vendor/uPlot.min.css":     "text/css; charset=utf-8",
	} {
		resp, _ := get(t, path)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != want {
			t.Errorf("%s: %d %q, want 200 %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), want)
		}
	}
	// Directories are not listed; nothing outside the assets is reachable.
	for _, path := range []string{"/ui/vendor/", "/ui/vendor", "/ui/../console.go", "/ui/.hidden", "/ui/missing.js"} {
		if resp, body := get(t, path); resp.StatusCode != 404 {
			t.Errorf("%s: %d %.100s, want 404", path, resp.StatusCode, body)
		}
	}
}

// The page must work under its own CSP: no inline script or style, no
// event-handler attribute, every script and style from the console's files;
// and the scripts must never parse data as markup.
func TestPagesNeedNothingTheCSPForbids(t *testing.T) {
	_, page := get(t, "/ui/")
	if m := regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>[^<]+</script>|<style|\son[a-z]+=|style=|javascript:`).FindString(page); m != "" {
		t.Errorf("index.html has %q, which the CSP blocks", m)
	}
	for _, ref := range regexp.MustCompile(`(?:src|href)="([^"#]+)"`).FindAllStringSubmatch(page, -1) {
		if strings.Contains(ref[1], ":") || strings.HasPrefix(ref[1], "/") {
			t.Errorf("index.html loads %q: only relative references to the console's own files", ref[1])
		}
		if resp, _ := get(t, "/ui/"+ref[1]); resp.StatusCode != 200 {
			t.Errorf("index.html refers to %s, which is not served", ref[1])
		}
	}
	if !strings.Contains(page, `rel="icon" href="favicon.svg"`) {
		t.Error("index.html links no icon: browsers would ask /favicon.ico")
	}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".js") || strings.Contains(p, "/vendor/") {
			return err
		}
		b, _ := assets.ReadFile(p)
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "localStorage", "sessionStorage", "document.cookie"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s uses %s", p, bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
