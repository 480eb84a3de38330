package api

import (
	"net/http"

	"github.com/connlog/connlog/console"
)

// consoleRoutes serves the web console (package console) at /ui/ and the two
// endpoints it needs beyond the data endpoints: GET /v1/me, so that the
// console shows only what the caller's role may do, and the single-use
// download tickets of api/download.go, so that a browser can stream an
// export to disk without the token leaving page memory.
func (s *Server) consoleRoutes(mux *http.ServeMux) {
	mux.Handle("GET "+console.Prefix, s.instrument(console.Prefix, console.Handler()))
	mux.Handle("GET /v1/me", s.instrument("/v1/me", s.data("/v1/me", "", s.me)))
	s.dataPaths["/v1/me"] = true
	s.downloadRoutes(mux)
	s.sessionRoutes(mux)
}

// meAnswer is the answer of GET /v1/me.
type meAnswer struct {
	Name  string   `json:"name"`
	Role  string   `json:"role"`
	Sites []string `json:"sites"`
}

// me answers who the credential belongs to: its name, role and sites (empty:
// every site). It needs no purpose: it reads no stored data, and the console
// calls it to sign in; like every /v1/ request it is audited.
func (s *Server) me(_ *http.Request, c *call) (any, error) {
	sites := c.who.Sites
	if sites == nil {
		sites = []string{}
	}
	return meAnswer{Name: c.who.Name, Role: c.who.Role, Sites: sites}, nil
}
