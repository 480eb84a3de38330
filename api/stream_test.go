package api

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/connlog/connlog/store"
)

// getAccept is testEnv.get with an Accept header.
func (e *testEnv) getAccept(tb testing.TB, target, token, accept string) *http.Response {
	tb.Helper()
	req := httptest.NewRequestWithContext(tb.Context(), http.MethodGet, target, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Purpose", "INC-42")
	req.Header.Set("Accept", accept)
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(&orderWriter{ResponseWriter: rec, store: e.store}, req)
	return rec.Result()
}

func TestExportAuditOrderAndFailures(t *testing.T) {
	hits := []store.Hit{{ClientIP: netip.MustParseAddr("203.0.113.7"), Path: "/secret"}}

	// The first audit row precedes the first byte; the second follows the
	// last.
	env := newTestEnv(t, &fakeStore{hits: hits})
	resp := env.getAccept(t, okQuery, env.tokens.analyst, "text/csv")
	body := readBody(t, resp)
	if resp.StatusCode != 200 || !strings.Contains(body, "/secret") || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("status %d %q", resp.StatusCode, body)
	}
	if got := env.store.events; !reflect.DeepEqual(got, []string{"audit", "write", "audit"}) {
		t.Errorf("events %q, want audit, write, audit", got)
	}

	// No audit row, no data.
	env = newTestEnv(t, &fakeStore{hits: hits, auditErr: errors.New("disk full")})
	resp = env.getAccept(t, okQuery, env.tokens.analyst, "application/x-ndjson")
	if body := readBody(t, resp); resp.StatusCode != 503 || strings.Contains(body, "/secret") || errorCode(t, body) != CodeAuditUnavailable {
		t.Errorf("audit down: status %d %q", resp.StatusCode, body)
	}

	// A store failure before the first row is a JSON error, and the second
	// audit row says the export was interrupted.
	env = newTestEnv(t, &fakeStore{searchErr: errors.New("connection refused")})
	resp = env.getAccept(t, okQuery, env.tokens.analyst, "text/csv")
	if body := readBody(t, resp); resp.StatusCode != 503 || errorCode(t, body) != CodeUnavailable {
		t.Errorf("store down: status %d %q", resp.StatusCode, body)
	}
	a := env.store.auditRows()
	if len(a) != 2 || a[1].Outcome != outcomeInterrupted || a[1].Status != 503 || !strings.Contains(a[1].Reason, "connection refused") {
		t.Errorf("audit rows %+v", a)
	}
}
