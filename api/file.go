package api

import (
	"net/http"
	"strconv"
)

// fileBody is a data handler's answer that is a file, not JSON: the guard
// audits it like any answer, then sends the bytes unchanged.
type fileBody struct {
	contentType string
	filename    string
	sha256      string
	data        []byte
}

// write sends f as the response.
func (f *fileBody) write(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("Content-Disposition", `attachment; filename="`+f.filename+`"`)
	h.Set("Content-Length", strconv.Itoa(len(f.data)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if f.sha256 != "" {
		h.Set("X-Export-SHA256", f.sha256)
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(f.data)
}
