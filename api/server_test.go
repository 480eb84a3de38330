package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// counterValue returns the value of the counter name with the given labels
// in reg, 0 if absent.
func counterValue(tb testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func TestHealthz(t *testing.T) {
	env := newTestEnv(t, nil)
	resp := env.get(t, "/healthz", "", "")
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK || body != "ok\n" {
		t.Errorf("status %d body %q", resp.StatusCode, body)
	}
	if n := len(env.store.auditRows()); n != 0 {
		t.Errorf("%d audit rows for /healthz", n)
	}
}

func TestReadyz(t *testing.T) {
	env := newTestEnv(t, nil)
	check := func(when string, want int) {
		t.Helper()
		resp := env.get(t, "/readyz", "", "")
		body := readBody(t, resp)
		if resp.StatusCode != want {
			t.Errorf("%s: status %d, want %d", when, resp.StatusCode, want)
		}
		if want != http.StatusOK && errorCode(t, body) != CodeUnavailable {
			t.Errorf("%s: body %s", when, body)
		}
	}
	check("before SetReady", http.StatusServiceUnavailable)
	env.srv.SetReady(true)
	check("after SetReady", http.StatusOK)
	env.store.mu.Lock()
	env.store.pingErr = errors.New("no route to host")
	env.store.mu.Unlock()
	check("when the store does not answer", http.StatusServiceUnavailable)
	env.store.mu.Lock()
	env.store.pingErr = nil
	env.store.mu.Unlock()
	env.srv.SetReady(false)
	check("after SetReady(false)", http.StatusServiceUnavailable)
}

func TestUnknownDataRoutesAreAudited(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		target     string
		token      bool
		wantStatus int
		wantCode   Code
	}{
		{"unknown path is not found", http.MethodGet, "/v1/nothing", true, 404, CodeNotFound},
		{"POST to a GET endpoint is not allowed", http.MethodPost, "/v1/access", true, 405, CodeMethodNotAllowed},
		{"unknown path without token is unauthenticated", http.MethodGet, "/v1/nothing", false, 401, CodeUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, nil)
			req, err := http.NewRequestWithContext(t.Context(), tt.method, tt.target, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.RemoteAddr = "192.0.2.1:1234"
			if tt.token {
				req.Header.Set("Authorization", "Bearer "+env.tokens.analyst)
			}
			rec := &recorder{header: http.Header{}}
			env.srv.Handler().ServeHTTP(rec, req)
			if rec.status != tt.wantStatus {
				t.Fatalf("status %d, want %d", rec.status, tt.wantStatus)
			}
			if got := errorCode(t, rec.body.String()); got != tt.wantCode {
				t.Errorf("code %q, want %q", got, tt.wantCode)
			}
			if err := env.srv.FlushRefusals(t.Context()); err != nil { // the refusal without a token is counted
				t.Fatal(err)
			}
			if rows := env.store.auditRows(); len(rows) != 1 || rows[0].Endpoint != "/v1/" || rows[0].Status != tt.wantStatus {
				t.Errorf("audit rows %+v", rows)
			}
		})
	}
}

// recorder is a minimal ResponseWriter for requests built by hand.
type recorder struct {
	header http.Header
	status int
	body   strings.Builder
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(s int) {
	if r.status == 0 {
		r.status = s
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

func TestRequestMetrics(t *testing.T) {
	env := newTestEnv(t, nil)
	env.get(t, okQuery, env.tokens.analyst, "INC-42")
	env.get(t, okQuery, "", "INC-42")
	env.get(t, okQuery, "", "INC-42")
	for code, want := range map[string]float64{"200": 1, "401": 2} {
		if got := counterValue(t, env.reg, "connlog_api_requests_total", map[string]string{"endpoint": "/v1/access", "code": code}); got != want {
			t.Errorf("requests with code %s: %v, want %v", code, got, want)
		}
	}
}

func TestServeShutsDownWhenContextEnds(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv, err := New(Config{ShutdownTimeout: 5 * time.Second}, &fakeStore{}, reg,
		promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()

	// One connection per request: with keep-alives the client may dial a
	// spare connection while the previous one returns to its pool, and
	// net/http's Shutdown counts a connection that never sent a request
	// as active for its first 5 s, this test's whole shutdown budget.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for _, path := range []string{"/healthz", "/metrics"} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+ln.Addr().String()+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d", path, resp.StatusCode)
		}
	}
	srv.SetReady(true)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if srv.ready.Load() {
		t.Error("still ready after shutdown")
	}
}

func TestLogsCarryNoTokenNorAddress(t *testing.T) {
	var logs strings.Builder
	tok, hash, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	st := &fakeStore{searchErr: errors.New("connection refused"), auditErr: nil}
	srv, err := New(Config{Tokens: []Token{{Name: "alice", Role: RoleAnalyst, SHA256: hash}}}, st,
		prometheus.NewRegistry(), nil, slog.New(slog.NewJSONHandler(&syncWriter{w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	env := &testEnv{srv: srv, store: st}
	env.get(t, okQuery, tok, "INC-42") // store failure: logged
	st.mu.Lock()
	st.auditErr = errors.New("audit table read-only")
	st.mu.Unlock()
	env.get(t, okQuery, tok, "INC-42") // audit failure: logged
	got := logs.String()
	if !strings.Contains(got, "audit row not written") {
		t.Fatalf("expected log lines, got %q", got)
	}
	for _, secret := range []string{tok, "203.0.113.7", "192.0.2.1"} {
		if strings.Contains(got, secret) {
			t.Errorf("logs contain %q:\n%s", secret, got)
		}
	}
}

// syncWriter serialises writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}
