package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/connlog/connlog/anonymize"
	"github.com/connlog/connlog/api"
	"github.com/connlog/connlog/ingest"
	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/auditjournal"
	"github.com/connlog/connlog/store/embedded"
	"github.com/connlog/connlog/store/integrity"
)

// storeHandle is an open store and, in embedded mode, the engine behind it.
type storeHandle struct {
	*store.Store
	engine     *embedded.Engine
	stopEngine context.CancelFunc
	engineDone chan error
}

// openStore connects to the configured ClickHouse or, with none
// configured, loads the embedded engine, serves its HTTP interface on the
// loopback address of the configuration and connects to that: the same
// clickhouse-go code runs in both modes.
func openStore(ctx context.Context, cfg *Config, logger *slog.Logger) (*storeHandle, error) {
	h := &storeHandle{}
	if cfg.ClickHouse.Embedded() {
		ecfg := cfg.engineConfig()
		if _, err := os.Stat(ecfg.Library); err != nil {
			return nil, fmt.Errorf("embedded ClickHouse: library %s not found: run scripts/fetch-chdb.sh (or make run), or set embedded_clickhouse.library, or configure clickhouse.addrs", ecfg.Library)
		}
		logger.Info("loading embedded ClickHouse engine (chDB)", "library", ecfg.Library, "dir", ecfg.Dir)
		engine, err := embedded.Open(ecfg, logger)
		if err != nil {
			return nil, fmt.Errorf("embedded ClickHouse: %w", err)
		}
		ln, err := net.Listen("tcp", cfg.EmbeddedClickHouse.Listen)
		if err != nil {
			engine.Close()
			return nil, fmt.Errorf("embedded ClickHouse: listen: %w", err)
		}
		ectx, stop := context.WithCancel(context.Background())
		h.engine, h.stopEngine, h.engineDone = engine, stop, make(chan error, 1)
		go func() { h.engineDone <- engine.Serve(ectx, ln) }()
		logger.Info("embedded ClickHouse HTTP interface", "addr", ln.Addr().String(), "version", engine.Version())
		cfg.ClickHouse.Addrs = []string{ln.Addr().String()}
		cfg.ClickHouse.Protocol = "http"
	}
	st, err := store.Open(ctx, cfg.ClickHouse, logger)
	if err != nil {
		h.close()
		return nil, err
	}
	h.Store = st
	return h, nil
}

func (h *storeHandle) close() {
	if h.Store != nil {
		h.Store.Close()
	}
	if h.engine != nil {
		h.stopEngine()
		<-h.engineDone
		h.engine.Close()
	}
}

// prepare brings the store up to the configuration: schema migrations,
// the per-role ClickHouse users (on a server), and the lifetimes — a change
// since the last start becomes ALTER TABLE … MODIFY TTL, recorded in
// retention_changes. serve and migrate both run it.
func (h *storeHandle) prepare(ctx context.Context) ([]int, []store.RetentionChange, error) {
	applied, err := h.Migrate(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := h.ApplyRoles(ctx); err != nil {
		return applied, nil, err
	}
	changes, err := h.ApplyRetention(ctx)
	return applied, changes, err
}

func cmdMigrate(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path, os.Environ())
	if err != nil {
		return err
	}
	logger := newLogger(cfg.LogLevel)
	st, err := openStore(ctx, &cfg, logger)
	if err != nil {
		return err
	}
	defer st.close()
	applied, changes, err := st.prepare(ctx)
	if err != nil {
		return err
	}
	for _, c := range changes {
		fmt.Fprintf(stdout, "retention changed: %+v\n", c)
	}
	v, err := st.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "schema version %d (applied now: %v)\n", v, applied)
	return nil
}

func cmdServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path, os.Environ())
	if err != nil {
		return err
	}
	logger := newLogger(cfg.LogLevel)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metricsHandler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})

	embeddedMode := cfg.ClickHouse.Embedded()
	st, err := openStore(ctx, &cfg, logger)
	if err != nil {
		return err
	}
	defer st.close()
	if _, _, err := st.prepare(ctx); err != nil {
		return err
	}

	if len(cfg.API.Tokens) == 0 {
		if !embeddedMode {
			return errors.New("api.tokens: no credential configured; create one with `connlog token create`")
		}
		tok, err := bootstrapAdminToken(cfg.DataDir, stderr)
		if err != nil {
			return err
		}
		cfg.API.Tokens = []api.Token{tok}
	}

	var broker *ingest.Broker
	if len(cfg.Kafka.Brokers) == 0 {
		bcfg := cfg.EmbeddedKafka
		if len(bcfg.Topics) == 0 {
			bcfg.Topics = cfg.Kafka.Topics
		}
		bcfg.GroupID = cfg.Kafka.GroupID
		// Shippers authenticate with the produce-only identity, connlog
		// with its own; both are kept in the data directory (0600).
		users, created, err := ingest.LoadOrCreateBrokerUsers(cfg.DataDir)
		if err != nil {
			return fmt.Errorf("embedded Kafka: %w", err)
		}
		bcfg.Users = users
		broker, err = ingest.StartBroker(ctx, bcfg, reg, logger)
		if err != nil {
			return fmt.Errorf("embedded Kafka: %w", err)
		}
		defer broker.Close()
		cfg.Kafka.Brokers = broker.Addrs()
		cfg.Kafka.SASL = broker.Consumer()
		shipperFile := filepath.Join(cfg.DataDir, ingest.ShipperCredentialsFile)
		if len(created) > 0 {
			// The path only, never the password: logs travel further than the file.
			logger.Info("embedded Kafka requires SASL: created the produce-only shipper credentials; connlog publish reads them, shippers and kcat -F use them",
				"user", broker.Shipper().Username, "path", shipperFile)
		}
		logger.Warn("embedded Kafka-protocol broker: messages are kept in memory only, for evaluation and single-host use", "addr", strings.Join(broker.Addrs(), ","), "topics", strings.Join(bcfg.Topics, ","), "shipper_credentials", shipperFile)
	}

	// Audience statistics: the only path from hits to aggregates goes
	// through anonymize, and the statistics rows share the batch's
	// deduplication token.
	var sink ingest.Sink = st.Store
	var keys *anonymize.Keys
	if cfg.Statistics.Enabled {
		keys = anonymize.NewKeys(st.Store.VisitorKeys())
		an, err := anonymize.New(cfg.Statistics, keys, reg, logger)
		if err != nil {
			return fmt.Errorf("statistics: %w", err)
		}
		defer an.Close()
		sink = ingest.WithAudience(st.Store, an)
	}

	pipeline, err := ingest.New(cfg.Kafka, sink, reg, logger)
	if err != nil {
		return err
	}
	// The instance key signs batch manifests and requisition packages;
	// `connlog key` prints its public half for auditors and authorities.
	signer, created, err := integrity.LoadOrCreate(instanceKeyPath(&cfg))
	if err != nil {
		return err
	}
	if created {
		logger.Info("created the instance signing key", "path", instanceKeyPath(&cfg), "key_id", integrity.KeyID(signer.Public()))
	}
	st.SetSigner(signer)

	// Audit rows: fsynced in the local journal before data leaves, stored
	// in ClickHouse in batches (store/auditjournal).
	var apiStore api.Store = st.Store
	var journal *auditjournal.Journal
	if cfg.AuditJournal.Enabled {
		journal, err = auditjournal.Open(auditjournal.Options{
			Dir:        filepath.Join(cfg.DataDir, "audit-journal"),
			Interval:   cfg.AuditJournal.Interval,
			MaxBacklog: cfg.AuditJournal.MaxBacklog,
			Logger:     logger,
		}, st.Store)
		if err != nil {
			return err
		}
		// Runs before st.close (defers run last first): the rows of the
		// last requests are stored before the store goes away.
		defer func() {
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := journal.Flush(fctx); err != nil {
				logger.Error("audit journal: rows left in the journal at shutdown; the next start stores them", "err", err)
			}
			journal.Close()
		}()
		apiStore = journaledStore{Store: st.Store, journal: journal}
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "connlog_audit_journal_backlog_bytes",
			Help: "Bytes of audit rows fsynced in the local journal but not yet stored in ClickHouse; data requests are refused when it reaches audit_journal.max_backlog.",
		}, func() float64 { return float64(journal.Backlog()) }))
	}

	srv, err := api.New(cfg.API, apiStore, reg, metricsHandler, logger,
		api.WithRequisitions(st.Store, signer, versionString()), api.WithHolds(st.Store))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return fmt.Errorf("api listen: %w", err)
	}
	logger.Info("connlog serving", "api", ln.Addr().String(), "version", versionString())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return pipeline.Run(gctx) })
	g.Go(func() error { return srv.Serve(gctx, ln) })
	// ClickHouse's TTL merges are lazy: the enforcement pass makes expiry
	// happen on schedule, and records what it removed.
	g.Go(func() error {
		return st.RunEnforcement(gctx, cfg.ClickHouse.Retention.EnforceInterval, reg, logger)
	})
	if keys != nil {
		g.Go(func() error {
			return keys.Run(gctx, time.Minute, func(err error) { logger.Warn("visitor keys", "err", err) })
		})
	}
	if journal != nil {
		g.Go(func() error { return journal.Run(gctx) })
	}
	srv.SetReady(true)

	done := make(chan error, 1)
	go func() { done <- g.Wait() }()
	select {
	case err := <-done:
		srv.SetReady(false)
		return err
	case <-gctx.Done():
	}
	// Stopping: readiness goes first so load balancers stop sending, then
	// the pipeline stops fetching, flushes and commits (it watches gctx).
	srv.SetReady(false)
	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		logger.Info("stopped cleanly")
		return nil
	case <-time.After(cfg.ShutdownTimeout):
		logger.Error("shutdown timed out; goroutines still running follow on stderr", "timeout", cfg.ShutdownTimeout.String())
		pprof.Lookup("goroutine").WriteTo(stderr, 1) //nolint:errcheck // best effort on the way out
		return fmt.Errorf("shutdown took longer than %s", cfg.ShutdownTimeout)
	}
}

// journaledStore is the API's store with the audit journal in front of the
// audit trail: Audit appends to the journal; the audit searches store the
// journal's pending rows first, so an auditor sees every request this
// instance has answered.
type journaledStore struct {
	*store.Store
	journal *auditjournal.Journal
}

func (s journaledStore) Audit(ctx context.Context, e store.AuditEntry) error {
	return s.journal.Audit(ctx, e)
}

func (s journaledStore) SearchAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditRecord, error) {
	if err := s.journal.Flush(ctx); err != nil {
		return nil, err
	}
	return s.Store.SearchAudit(ctx, q)
}

func (s journaledStore) SubjectConsultations(ctx context.Context, q store.SubjectQuery) ([]store.Consultation, error) {
	if err := s.journal.Flush(ctx); err != nil {
		return nil, err
	}
	return s.Store.SubjectConsultations(ctx, q)
}

// bootstrapAdminToken gives a fresh embedded installation one credential:
// an admin token created on first start, printed once and kept in a file of
// the data directory readable only by its owner. Later starts reuse it.
func bootstrapAdminToken(dataDir string, stderr io.Writer) (api.Token, error) {
	file := filepath.Join(dataDir, "admin.token")
	raw, err := os.ReadFile(file)
	switch {
	case err == nil:
		tok := strings.TrimSpace(string(raw))
		return api.Token{Name: "admin", Role: "admin", SHA256: api.HashToken(tok)}, nil
	case !errors.Is(err, os.ErrNotExist):
		return api.Token{}, fmt.Errorf("read admin token: %w", err)
	}
	tok, sum, err := api.NewToken()
	if err != nil {
		return api.Token{}, err
	}
	if err := os.WriteFile(file, []byte(tok+"\n"), 0o600); err != nil {
		return api.Token{}, fmt.Errorf("save admin token: %w", err)
	}
	fmt.Fprintf(stderr, "\nNo API token configured: created an admin token (shown once, also saved in %s, mode 0600):\n\n    %s\n\n", file, tok)
	return api.Token{Name: "admin", Role: "admin", SHA256: sum}, nil
}
