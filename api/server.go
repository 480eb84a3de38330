package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connlog/connlog/api/auth"
	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/audit"
	"github.com/connlog/connlog/store/legal/export"
)

// Store is what the API needs from storage; *store.Store satisfies it.
type Store interface {
	// SearchAccess returns the access-log rows matching q, at most q.Limit.
	SearchAccess(ctx context.Context, q store.AccessQuery) ([]store.Hit, error)
	// Audit durably records one audit row.
	Audit(ctx context.Context, e audit.Entry) error
	// Ping reports whether the store can answer.
	Ping(ctx context.Context) error
	// searchStore: connection records, exports, IP summary, audit search
	// (api/connections.go).
	searchStore
}

// Timeouts of the store calls that are not searches.
const (
	pingTimeout  = 2 * time.Second
	auditTimeout = 5 * time.Second
)

// Server is the query API. Create it with [New]; it is safe for concurrent use.
type Server struct {
	cfg     Config
	store   Store
	metrics *metrics
	logger  *slog.Logger
	ready   atomic.Bool
	handler http.Handler
	// dataPaths are the paths of the data endpoints, all served with GET.
	dataPaths map[string]bool
	// now is the clock; tests replace it.
	now func() time.Time
	// limiter enforces the per-credential rate limit (api/ratelimit.go).
	limiter *limiter
	// proxies are the trusted reverse proxies (api/proxy.go).
	proxies proxies
	// badLimiter and refusals limit and count the requests with a missing
	// or unknown credential, per source (api/badcreds.go).
	badLimiter *sourceLimiter
	refusals   *refusals
	// authn tells the guard who the caller is (package api/auth); signIn
	// is the same authenticator when the console may sign in with the
	// identity provider (api/signin.go), nil otherwise.
	authn  authenticator
	signIn *auth.Authenticator
	// Optional parts, set by Options (api/requisitions.go, api/holds.go):
	// nil when not served.
	requisitions RequisitionStore
	packages     *export.Packager
	holds        HoldStore
}

// New builds a Server from cfg, which must pass [Config.Validate]. Searches
// and audit rows go to st; metrics are registered on reg; metricsHandler is
// served at /metrics (nil serves 404 there). The server starts not ready: call
// [Server.SetReady] once the rest of the process is. opts add the optional
// endpoints (e.g. [WithRequisitions], [WithHolds]).
func New(cfg Config, st Store, reg prometheus.Registerer, metricsHandler http.Handler, logger *slog.Logger, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("api config: %w", err)
	}
	if st == nil {
		return nil, errors.New("api: nil store")
	}
	cfg = cfg.withDefaults()
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		store:     st,
		metrics:   m,
		logger:    logger.With("component", "api"),
		now:       time.Now,
		dataPaths: map[string]bool{},
	}
	s.limiter = newLimiter(cfg.RateLimit)
	s.proxies, _ = parseProxies(cfg.TrustedProxies) // checked by Validate
	s.badLimiter = newSourceLimiter(cfg.BadCredentials)
	s.refusals = newRefusals(cfg.BadCredentials)
	if metricsHandler == nil {
		metricsHandler = http.NotFoundHandler()
	}
	for _, o := range opts {
		o(s)
	}
	a, err := auth.New(auth.Config{Tokens: cfg.Tokens, OIDC: cfg.OIDC}, func() time.Time { return s.now() })
	if err != nil {
		return nil, err
	}
	s.authn = a
	if a.SignInEnabled() {
		s.signIn = a
	}

	mux := http.NewServeMux()
	route := func(pattern string, h http.Handler) {
		mux.Handle("GET "+pattern, s.instrument(pattern, h))
	}
	route("/healthz", http.HandlerFunc(s.healthz))
	route("/readyz", http.HandlerFunc(s.readyz))
	route("/metrics", metricsHandler)
	// The API description carries no data: served to anyone, not audited.
	route("/v1/openapi.json", http.HandlerFunc(s.openapi))
	// Data endpoints: each one is guarded and audited by s.data.
	for _, d := range []struct {
		path string
		role string
		h    dataHandler
	}{
		{"/v1/access", RoleAnalyst, s.access},
		{"/v1/connections", RoleOfficer, s.connections},
		{"/v1/ip/{ip}", RoleAnalyst, s.ipSummary},
		{"/v1/audit", RoleAuditor, s.auditSearch},
		{"/v1/audit/subject", RoleAuditor, s.subject},
		{"/v1/stats/audience", RoleStats, s.audience},
		{"/v1/retention", RoleAuditor, s.retention},
	} {
		route(d.path, s.data(d.path, d.role, d.h))
		s.dataPaths[d.path] = true
	}
	// Endpoints with methods other than GET, served when their stores are given.
	s.requisitionRoutes(mux)
	s.holdRoutes(mux)
	// The web console at /ui/, with /v1/me and download tickets (api/me.go).
	s.consoleRoutes(mux)
	// Anything else under /v1/ is audited too, so that probing is visible.
	mux.Handle("/v1/", s.instrument("/v1/", s.data("/v1/", "", s.noRoute)))
	s.handler = mux
	return s, nil
}

// Handler returns the HTTP handler serving every route.
func (s *Server) Handler() http.Handler { return s.handler }

// SetReady sets whether /readyz may report ready (it also needs the store to
// answer a ping). Serve sets it to false when shutting down.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// Serve answers HTTP requests on ln until ctx ends, then marks the server
// not ready and shuts down gracefully, waiting at most Config.ShutdownTimeout
// for in-flight requests, and writes the counted audit rows of refused bad
// credentials ([Server.FlushRefusals]). It returns nil after a clean
// shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) (err error) {
	ln, err = s.tlsListener(ln)
	if err != nil {
		return err
	}
	rctx, stopRefusals := context.WithCancel(ctx)
	refusalsDone := make(chan struct{})
	go func() { s.runRefusals(rctx); close(refusalsDone) }()
	defer func() {
		stopRefusals()
		<-refusalsDone
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
		defer cancel()
		if ferr := s.FlushRefusals(fctx); ferr != nil {
			s.logger.Error("audit rows of refused bad credentials lost at shutdown", "err", ferr)
			err = errors.Join(err, fmt.Errorf("write the counted audit rows of refused credentials: %w", ferr))
		}
	}()
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	s.SetReady(false)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		s.logger.Warn("shutdown timed out, closing open connections", "err", err)
		_ = srv.Close()
		err = fmt.Errorf("shut down http server: %w", err)
		if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) {
			err = errors.Join(err, fmt.Errorf("serve http: %w", serveErr))
		}
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", err)
	}
	return nil
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if !s.ready.Load() {
		writeError(w, errorf(CodeUnavailable, "not ready: starting or shutting down"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), pingTimeout)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.logger.Warn("readiness: store ping", "err", err)
		writeError(w, errorf(CodeUnavailable, "not ready: the store does not answer"))
		return
	}
	writeBody(w, http.StatusOK, []byte(`{"status":"ready"}`))
}

// instrument counts and times the requests h answers under the route pattern
// endpoint.
func (s *Server) instrument(endpoint string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		s.metrics.requests.WithLabelValues(endpoint, strconv.Itoa(sw.status)).Inc()
		s.metrics.duration.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
	})
}

// statusWriter remembers the status written through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
