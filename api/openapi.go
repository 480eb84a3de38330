package api

import (
	_ "embed"
	"net/http"
)

// openapiJSON is the OpenAPI 3 description of this API, served at
// /v1/openapi.json. TestOpenAPI checks every endpoint's real answers
// against it, so it stays true.
//
//go:embed openapi.json
var openapiJSON []byte

// OpenAPI returns the OpenAPI 3 document describing the API.
func OpenAPI() []byte { return append([]byte(nil), openapiJSON...) }

// openapi serves the OpenAPI document. It carries no data: anyone may read
// it, and it is not audited.
func (s *Server) openapi(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(openapiJSON)
}
