package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/audit"
)

// fakeStore is a hand-written Store whose failures tests inject. It records
// the queries and audit rows it receives, and appends "audit" to events when
// an audit row is written, so tests can check what happened first.
type fakeStore struct {
	mu        sync.Mutex
	hits      []store.Hit
	queries   []store.AccessQuery
	audits    []audit.Entry
	events    []string
	auditErr  error
	searchErr error
	pingErr   error
}

func (f *fakeStore) SearchAccess(ctx context.Context, q store.AccessQuery) ([]store.Hit, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, q)
	if _, ok := ctx.Deadline(); !ok {
		panic("SearchAccess without a deadline")
	}
	if f.searchErr != nil {
		return nil, f.searchErr
	}
	return f.hits[:min(len(f.hits), q.Limit)], nil
}

func (f *fakeStore) Audit(_ context.Context, e audit.Entry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.auditErr != nil {
		return f.auditErr
	}
	f.audits = append(f.audits, e)
	f.events = append(f.events, "audit")
	return nil
}

func (f *fakeStore) Ping(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pingErr
}

func (f *fakeStore) event(e string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, e)
}

func (f *fakeStore) auditRows() []audit.Entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]audit.Entry(nil), f.audits...)
}

// testTokens are bearer tokens of the test server, by role or purpose.
type testTokens struct {
	analyst, scoped, auditor, admin string
}

// testEnv is a Server over a fakeStore, with its tokens and registry.
type testEnv struct {
	srv    *Server
	store  *fakeStore
	tokens testTokens
	reg    *prometheus.Registry
}

// newTestEnv builds a Server with one token per role of interest. The clock
// is fixed at 2026-03-04T00:00:00Z.
func newTestEnv(tb testing.TB, st *fakeStore) *testEnv {
	tb.Helper()
	if st == nil {
		st = &fakeStore{}
	}
	return newTestEnvWith(tb, st, nil)
}

// newTestEnvWith is newTestEnv with mod, if not nil, changing the
// configuration before the Server is built.
func newTestEnvWith(tb testing.TB, st Store, mod func(*Config)) *testEnv {
	tb.Helper()
	if st == nil {
		st = &fakeStore{}
	}
	fake, _ := st.(*fakeStore)
	if fake == nil {
		fake = st.(interface{ fake() *fakeStore }).fake()
	}
	var toks testTokens
	var cfg Config
	add := func(dst *string, name, role string, sites ...string) {
		tok, hash, err := NewToken()
		if err != nil {
			tb.Fatal(err)
		}
		*dst = tok
		cfg.Tokens = append(cfg.Tokens, Token{Name: name, Role: role, SHA256: hash, Sites: sites})
	}
	add(&toks.analyst, "alice", RoleAnalyst)
	add(&toks.scoped, "sam", RoleAnalyst, "a.example", "b.example")
	add(&toks.auditor, "audrey", RoleAuditor)
	add(&toks.admin, "root", RoleAdmin)
	if mod != nil {
		mod(&cfg)
	}
	reg := prometheus.NewRegistry()
	srv, err := New(cfg, st, reg, http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	srv.now = func() time.Time { return time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC) }
	return &testEnv{srv: srv, store: fake, tokens: toks, reg: reg}
}

// get sends a GET to the server's handler, with a bearer token and a purpose
// if not empty, and returns the response. Writes to the client are recorded
// as the event "write" in the fake store.
func (e *testEnv) get(tb testing.TB, target, token, purpose string) *http.Response {
	tb.Helper()
	req := httptest.NewRequestWithContext(tb.Context(), http.MethodGet, target, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if purpose != "" {
		req.Header.Set("X-Purpose", purpose)
	}
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(&orderWriter{ResponseWriter: rec, store: e.store}, req)
	return rec.Result()
}

// orderWriter records in the fake store's events when the response starts.
type orderWriter struct {
	http.ResponseWriter
	store   *fakeStore
	written bool
}

func (w *orderWriter) mark() {
	if !w.written {
		w.written = true
		w.store.event("write")
	}
}

func (w *orderWriter) WriteHeader(status int) { w.mark(); w.ResponseWriter.WriteHeader(status) }

func (w *orderWriter) Write(b []byte) (int, error) { w.mark(); return w.ResponseWriter.Write(b) }

func readBody(tb testing.TB, resp *http.Response) string {
	tb.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}
