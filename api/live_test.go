package api

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connlog/connlog/api/auth"
	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/audit"
	"github.com/connlog/connlog/store/integrity"
	"github.com/connlog/connlog/store/storetest"
)

// This file is the test harness over the REAL store on the embedded
// engine: searches, exports and the acceptance tests (authorisation matrix,
// injection, OpenAPI) run against it.

// openLiveStore returns a migrated store in databases of its own.
func openLiveStore(tb testing.TB) *store.Store {
	tb.Helper()
	return storetest.New(tb)
}

// syncBuffer is a log sink tests can read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// liveSite is the site of the seeded rows; otherSite is the one scoped
// tokens of "another site" may read.
const (
	liveSite  = "www.example.org"
	otherSite = "other.example"
)

// liveEnv is a Server over a real store with seeded rows, one token per
// role and one per role limited to another site.
type liveEnv struct {
	srv    *Server
	st     *store.Store
	logs   *syncBuffer
	tokens map[string]string // role → token; role+"@other" → token of another site
	base   time.Time         // time of the first seeded row
	hits   []store.Hit
}

// newLiveEnv seeds 203.0.113.7 (20 requests, a minute apart), 203.0.113.9
// (5) and 2001:db8::7 (5), starting two days ago, and builds a Server.
// mod, if not nil, changes the configuration; the rate limits are off unless
// mod sets them.
func newLiveEnv(tb testing.TB, mod func(*Config)) *liveEnv {
	tb.Helper()
	st := openLiveStore(tb)
	env := &liveEnv{st: st, logs: &syncBuffer{}, tokens: map[string]string{}}
	env.base = time.Now().UTC().Truncate(time.Hour).Add(-48 * time.Hour)
	var off int64
	for _, s := range []struct {
		ip string
		n  int
	}{{"203.0.113.7", 20}, {"203.0.113.9", 5}, {"2001:db8::7", 5}} {
		for i := range s.n {
			off++
			method, status := "GET", uint16(200)
			if i%4 == 3 {
				method, status = "POST", 403
			}
			env.hits = append(env.hits, store.Hit{
				Source:    store.Source{Topic: "nginx", Partition: 0, Offset: off},
				EventTime: env.base.Add(time.Duration(i) * time.Minute), Ingested: env.base.Add(time.Hour),
				ClientIP: netip.MustParseAddr(s.ip), ClientPort: uint16(50000 + i), PeerIP: netip.MustParseAddr(s.ip),
				ServerAddr: netip.MustParseAddr("192.0.2.10"), ServerPort: 443, Site: liveSite,
				Method: method, Path: fmt.Sprintf("/app/%d", i%3), Protocol: "HTTP/1.1", Status: status, BytesSent: 100,
				UserAgent: "Mozilla/5.0 (X11; Linux x86_64)", RequestTime: time.Millisecond, User: "u" + s.ip,
			})
		}
	}
	if err := st.Write(tb.Context(), store.Batch{Hits: env.hits}); err != nil {
		tb.Fatal(err)
	}
	var cfg Config
	for _, role := range auth.Roles {
		for _, scoped := range []bool{false, true} {
			tok, hash, err := NewToken()
			if err != nil {
				tb.Fatal(err)
			}
			name, key, t := role+"-person", role, Token{Role: role, SHA256: hash}
			if scoped {
				name, key, t.Sites = role+"-elsewhere", role+"@other", []string{otherSite}
			}
			t.Name = name
			cfg.Tokens = append(cfg.Tokens, t)
			env.tokens[key] = tok
		}
	}
	cfg.RateLimit.RequestsPerSecond = -1
	cfg.BadCredentials.RequestsPerSecond = -1
	if mod != nil {
		mod(&cfg)
	}
	signer, _, err := integrity.LoadOrCreate(filepath.Join(tb.TempDir(), "instance.key"))
	if err != nil {
		tb.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(env.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := New(cfg, st, prometheus.NewRegistry(), http.NotFoundHandler(), logger,
		WithRequisitions(st, signer, "test"), WithHolds(st))
	if err != nil {
		tb.Fatal(err)
	}
	srv.SetReady(true)
	env.srv = srv
	return env
}

// window is a query string fragment covering every seeded row.
func (e *liveEnv) window() string {
	return "from=" + e.base.Add(-time.Hour).Format(time.RFC3339) + "&to=" + e.base.Add(time.Hour).Format(time.RFC3339)
}

// auditCount returns the number of audit rows.
func (e *liveEnv) auditCount(tb testing.TB) uint64 {
	tb.Helper()
	var n uint64
	if err := e.st.Conn().QueryRow(tb.Context(), "SELECT count() FROM "+e.st.Databases().Ops+".audit").Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// liveResponse is a recorded answer, with the number of audit rows that
// existed when its first byte (or header) was written.
type liveResponse struct {
	*http.Response
	body          string
	auditsAtWrite uint64
	wrote         bool
}

// do sends a request with the given Authorization header value (none if
// empty), purpose and Accept, and records the answer. If checkOrder, the
// audit rows are counted when the response starts.
func (e *liveEnv) do(tb testing.TB, method, target, auth, purpose, accept, body string, checkOrder bool) *liveResponse {
	tb.Helper()
	var rd *strings.Reader
	if body != "" {
		rd = strings.NewReader(body)
	} else {
		rd = strings.NewReader("")
	}
	req := httptest.NewRequestWithContext(tb.Context(), method, target, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if purpose != "" {
		req.Header.Set("X-Purpose", purpose)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	out := &liveResponse{}
	w := &firstWrite{ResponseWriter: rec, at: func() {
		out.wrote = true
		if checkOrder {
			out.auditsAtWrite = e.auditCount(tb)
		}
	}}
	e.srv.Handler().ServeHTTP(w, req)
	out.Response = rec.Result()
	out.body = rec.Body.String()
	return out
}

// get is do for a GET with a bearer token.
func (e *liveEnv) get(tb testing.TB, target, token, accept string) *liveResponse {
	tb.Helper()
	return e.do(tb, http.MethodGet, target, "Bearer "+token, "INC-1234", accept, "", false)
}

// firstWrite calls at once, when the response starts.
type firstWrite struct {
	http.ResponseWriter
	at   func()
	done bool
}

func (w *firstWrite) start() {
	if !w.done {
		w.done = true
		w.at()
	}
}

func (w *firstWrite) WriteHeader(status int) { w.start(); w.ResponseWriter.WriteHeader(status) }

func (w *firstWrite) Write(b []byte) (int, error) { w.start(); return w.ResponseWriter.Write(b) }

func (w *firstWrite) Flush() {
	w.start()
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *firstWrite) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// auditWindowAll selects every audit row written around now.
func auditWindowAll(*liveEnv) audit.Query {
	now := time.Now().UTC()
	return audit.Query{From: now.Add(-24 * time.Hour), To: now.Add(24 * time.Hour), Limit: 10000}
}
