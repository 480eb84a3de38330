package api

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/connlog/connlog/api/auth"
	"github.com/connlog/connlog/store/audit"
)

// A download ticket lets a browser stream an export to disk with a plain
// link. The web console keeps its token in page memory, never in a cookie,
// so a link cannot carry it; fetching the export and saving it as a Blob
// would hold the whole export in the page. Instead the console asks, with
// its token and purpose, POST /v1/downloads for a ticket naming one export;
// the browser then follows GET /v1/downloads/{ticket}, which replays the
// export request with the ticket's credential and purpose through the
// ordinary guard, so it is authorised and audited exactly as if sent with
// curl. A ticket is random (256 bits), works once, only from the address
// that asked for it, and only for ticketTTL.
const (
	ticketTTL  = time.Minute
	maxTickets = 1000
	// maxTicketBody bounds the POST /v1/downloads body.
	maxTicketBody = 16 << 10
)

// exportable are the endpoints that stream an export, which a ticket may
// name, with the role they need.
var exportable = map[string]string{
	"/v1/access":      RoleAnalyst,
	"/v1/connections": RoleOfficer,
}

var ticketFormats = map[string]string{"csv": mediaCSV, "ndjson": mediaNDJSON}

// ticket is one minted download.
type ticket struct {
	// auth is the Authorization header of the request that minted it;
	// session and csrf are its console session, if it came with one
	// instead (api/signin.go).
	auth    string
	session string
	csrf    string
	purpose string
	path    string
	query   string
	accept  string
	format  string
	client  string // host of the minting request's remote address
	expires time.Time
}

// tickets holds the outstanding tickets; safe for concurrent use.
type tickets struct {
	mu sync.Mutex
	m  map[string]ticket
}

// take removes and returns the ticket id, if it exists and has not expired.
func (ts *tickets) take(id string, now time.Time) (ticket, bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t, ok := ts.m[id]
	delete(ts.m, id)
	return t, ok && now.Before(t.expires)
}

func (ts *tickets) add(t ticket, now time.Time) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("ticket id: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(b[:])
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for k, v := range ts.m {
		if !now.Before(v.expires) {
			delete(ts.m, k)
		}
	}
	if len(ts.m) >= maxTickets {
		return "", errorf(CodeUnavailable, "too many downloads are waiting to start; try again in a minute")
	}
	ts.m[id] = t
	return id, nil
}

// downloadRoutes serves POST /v1/downloads and GET /v1/downloads/{ticket}.
func (s *Server) downloadRoutes(mux *http.ServeMux) {
	ts := &tickets{m: map[string]ticket{}}
	mux.Handle("POST /v1/downloads", s.instrument("/v1/downloads", s.data("/v1/downloads", "", func(r *http.Request, c *call) (any, error) {
		return s.mintTicket(ts, r, c)
	})))
	mux.Handle("GET /v1/downloads/{ticket}", s.instrument("/v1/downloads/{ticket}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.redeemTicket(ts, w, r)
	})))
}

// ticketRequest is the body of POST /v1/downloads.
type ticketRequest struct {
	Path   string `json:"path"`
	Query  string `json:"query"`
	Format string `json:"format"`
}

// ticketAnswer is the answer of POST /v1/downloads.
type ticketAnswer struct {
	URL     string    `json:"url"`
	Expires time.Time `json:"expires"`
}

func (s *Server) mintTicket(ts *tickets, r *http.Request, c *call) (any, error) {
	var req ticketRequest
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxTicketBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, errorf(CodeBadRequest, "the body must be a JSON object {path, query, format}")
	}
	filters, _ := json.Marshal(req) // the audit row names the export asked for
	c.filters = string(filters)
	// The guard asks no purpose of this endpoint (role ""), so check it
	// here: the export it names will need it.
	if err := checkPurpose(c.purpose); err != nil {
		return nil, err
	}
	role, ok := exportable[req.Path]
	if !ok {
		return nil, errorf(CodeBadRequest, "path must be /v1/access or /v1/connections")
	}
	accept, ok := ticketFormats[req.Format]
	if !ok {
		return nil, errorf(CodeBadRequest, "format must be csv or ndjson")
	}
	q, err := url.ParseQuery(req.Query)
	if err != nil || len(req.Query) > 8<<10 {
		return nil, errorf(CodeBadRequest, "query must be a URL query string of at most 8 KiB")
	}
	// Refuse now what the export would refuse, so the browser does not
	// save an error as the file.
	if c.who.Role != role && c.who.Role != RoleAdmin {
		return nil, &apiError{code: CodeForbidden, msg: fmt.Sprintf("this export needs the %s role", role), reason: fmt.Sprintf("role %s, export needs %s", c.who.Role, role)}
	}
	q.Del("purpose") // the ticket's purpose is the one stated now
	q.Del("cursor")  // an export is the whole result
	now := s.now()
	id, err := ts.add(ticket{
		auth: r.Header.Get("Authorization"), session: s.sessionID(r), csrf: r.Header.Get(auth.CSRFHeader), purpose: c.purpose, path: req.Path, query: q.Encode(),
		accept: accept, format: req.Format, client: s.clientHost(r), expires: now.Add(ticketTTL),
	}, now)
	if err != nil {
		return nil, err
	}
	return ticketAnswer{URL: "/v1/downloads/" + id, Expires: now.Add(ticketTTL).UTC()}, nil
}

// redeemTicket replays the ticket's export through the guarded handler,
// adding a Content-Disposition to a successful answer so that the browser
// saves it.
func (s *Server) redeemTicket(ts *tickets, w http.ResponseWriter, r *http.Request) {
	client, source := s.proxies.client(r)
	t, ok := ts.take(r.PathValue("ticket"), s.now())
	if !ok || t.client != client.String() {
		entry := audit.Entry{
			Time: s.now().UTC(), Source: source, Method: r.Method, Endpoint: "/v1/downloads/{ticket}",
			Status: http.StatusNotFound, Outcome: outcome(http.StatusNotFound), Reason: "unknown, used, expired or foreign download ticket",
		}
		if !ok {
			// A ticket is a credential: guessing tickets is limited per
			// source and counted like bad tokens, without an fsync each
			// (api/badcreds.go).
			writeError(w, s.refuseBadCredential(entry, client, errorf(CodeNotFound, "unknown, used or expired download ticket: start the export again")))
			return
		}
		// A valid ticket presented from elsewhere is burnt, and audited
		// on its own: someone else had it.
		entry.Purpose, entry.Reason = t.purpose, "download ticket presented from another address than its own"
		actx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), auditTimeout)
		err := s.store.Audit(actx, entry)
		cancel()
		if err != nil {
			s.logger.Error("audit row not written; request refused", "endpoint", entry.Endpoint, "err", err)
			writeError(w, errorf(CodeAuditUnavailable, "the audit trail cannot be written, so no data can be served; try again later"))
			return
		}
		writeError(w, errorf(CodeNotFound, "unknown, used or expired download ticket: start the export again"))
		return
	}
	inner := r.Clone(r.Context())
	inner.Method = http.MethodGet
	inner.URL = &url.URL{Path: t.path, RawQuery: t.query}
	inner.RequestURI = t.path + "?" + t.query
	inner.Body = http.NoBody
	inner.Header = http.Header{}
	if t.auth != "" {
		inner.Header.Set("Authorization", t.auth)
	} else if t.session != "" {
		inner.AddCookie(&http.Cookie{Name: s.signIn.SessionCookie(), Value: t.session}) //nolint:gosec // G124: a cookie on the request replayed inside the server, never sent to a browser
		inner.Header.Set(auth.CSRFHeader, t.csrf)
	}
	inner.Header.Set("X-Purpose", t.purpose)
	inner.Header.Set("Accept", t.accept)
	name := fmt.Sprintf("connlog%s-%s.%s", strings.ReplaceAll(t.path[len("/v1"):], "/", "-"), s.now().UTC().Format("20060102T150405Z"), t.format)
	s.handler.ServeHTTP(&attachmentWriter{ResponseWriter: w, name: name}, inner)
}

// clientHost is the client a ticket is bound to: the real client behind
// the trusted proxies (api.trusted_proxies), as for the audit source.
func (s *Server) clientHost(r *http.Request) string {
	client, _ := s.proxies.client(r)
	return client.String()
}

// attachmentWriter marks a 200 answer as a file to save under name.
type attachmentWriter struct {
	http.ResponseWriter
	name    string
	written bool
}

func (w *attachmentWriter) WriteHeader(status int) {
	if !w.written && status == http.StatusOK {
		w.Header().Set("Content-Disposition", `attachment; filename="`+w.name+`"`)
	}
	w.written = true
	w.ResponseWriter.WriteHeader(status)
}

func (w *attachmentWriter) Write(b []byte) (int, error) {
	if !w.written {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer (flushes
// and trailers of the stream).
func (w *attachmentWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
