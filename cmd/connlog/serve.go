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
	"golang.org/x/term"

	"github.com/connlog/connlog/anonymize"
	"github.com/connlog/connlog/api"
	"github.com/connlog/connlog/ingest"
	"github.com/connlog/connlog/ingest/broker"
	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/audit"
	"github.com/connlog/connlog/store/embedded"
	"github.com/connlog/connlog/store/integrity"
	"github.com/connlog/connlog/store/retention"
)

// storeHandle is an open store and, in embedded mode, the engine behind it.
type storeHandle struct {
	*store.Store
	engine     *embedded.Engine
	stopEngine context.CancelFunc
	// engineDone receives the end of each of engineServers HTTP servers
	// of the engine (the in-process one, the operator listener).
	engineDone    chan error
	engineServers int
	logger        *slog.Logger
}

// openStore connects to the configured ClickHouse or, with none
// configured, loads the embedded engine, serves its HTTP interface on an
// in-process listener and connects to that: the same clickhouse-go code
// runs in both modes, and no other process can reach the engine.
func openStore(ctx context.Context, cfg *Config, logger *slog.Logger) (*storeHandle, error) {
	h := &storeHandle{logger: logger}
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
		ln := embedded.NewListener()
		ectx, stop := context.WithCancel(context.Background())
		h.engine, h.stopEngine, h.engineDone = engine, stop, make(chan error, 2)
		h.engineServers = 1
		go func() { h.engineDone <- engine.Serve(ectx, ln) }()
		cfg.ClickHouse.Addrs = []string{ln.Addr().String()}
		cfg.ClickHouse.Protocol = "http"
		cfg.ClickHouse.Dial = ln.Dial
	}
	st, err := store.Open(ctx, cfg.ClickHouse, logger)
	if err != nil {
		h.close()
		return nil, err
	}
	h.Store = st
	return h, nil
}

// serveOperators opens the embedded engine's opt-in operator listener
// (embedded_clickhouse.listen), if configured: the ClickHouse HTTP
// interface with a generated password kept 0600 in the data directory.
func (h *storeHandle) serveOperators(cfg *Config, logger *slog.Logger) error {
	addr := cfg.EmbeddedClickHouse.Listen
	if h.engine == nil || addr == "" {
		return nil
	}
	// A port alone binds to loopback, not to every interface.
	if host, port, err := net.SplitHostPort(addr); err == nil && host == "" {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	pwFile := filepath.Join(cfg.DataDir, "clickhouse.password")
	pw, created, err := embedded.LoadOrCreatePassword(pwFile)
	if err != nil {
		return fmt.Errorf("embedded_clickhouse.listen: %w", err)
	}
	if created {
		logger.Info("created the embedded ClickHouse operator password", "path", pwFile)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("embedded_clickhouse.listen: %w", err)
	}
	ectx, stop := context.WithCancel(context.Background())
	prev := h.stopEngine
	h.stopEngine = func() { stop(); prev() }
	h.engineServers++
	go func() { h.engineDone <- h.engine.ServeOperator(ectx, ln, pw) }()
	attrs := []any{"addr", ln.Addr().String(), "user", embedded.OperatorUser, "password_file", pwFile}
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		attrs = append(attrs, "exposed", "beyond this host")
	}
	logger.Warn("embedded ClickHouse operator listener open: whoever has its password has full administrative access to every table, the audit trail included (embedded_clickhouse.listen)", attrs...)
	return nil
}

// close releases the connection and the embedded engine; what fails is
// logged, since nothing is left to retry at that point.
func (h *storeHandle) close() {
	if h.Store != nil {
		if err := h.Close(); err != nil {
			h.logger.Warn("close ClickHouse connection", "err", err)
		}
	}
	if h.engine != nil {
		h.stopEngine()
		for range h.engineServers {
			if err := <-h.engineDone; err != nil {
				h.logger.Warn("embedded ClickHouse HTTP interface", "err", err)
			}
		}
		if err := h.engine.Close(); err != nil {
			h.logger.Warn("close embedded ClickHouse", "err", err)
		}
	}
}

// prepare brings the store up to the configuration: schema migrations,
// the per-role ClickHouse users (on a server), and the lifetimes — a change
// since the last start becomes ALTER TABLE … MODIFY TTL, recorded in
// retention_changes. serve and migrate both run it.
func (h *storeHandle) prepare(ctx context.Context) ([]int, []retention.RetentionChange, error) {
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
	if err := prepareDataDir(&cfg); err != nil {
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

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
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
	warnDeprecated(&cfg, logger)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := prepareDataDir(&cfg); err != nil {
		return err
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
	if err := st.serveOperators(&cfg, logger); err != nil {
		return err
	}

	if len(cfg.API.Tokens) == 0 {
		if !embeddedMode {
			return errors.New("api.tokens: no credential configured; create one with `connlog token create`")
		}
		tok, err := bootstrapAdminToken(cfg.DataDir, stdout, logger)
		if err != nil {
			return err
		}
		cfg.API.Tokens = []api.Token{tok}
	}

	var kafkaBroker *broker.Broker
	if len(cfg.Kafka.Brokers) == 0 {
		bcfg := cfg.EmbeddedKafka
		if len(bcfg.Topics) == 0 {
			bcfg.Topics = cfg.Kafka.Topics
		}
		bcfg.GroupID = cfg.Kafka.GroupID
		// Shippers authenticate with the produce-only identity, connlog
		// with its own; both are kept in the data directory (0600).
		users, created, err := broker.LoadOrCreateUsers(cfg.DataDir)
		if err != nil {
			return fmt.Errorf("embedded Kafka: %w", err)
		}
		bcfg.Users = users
		// Not ctx: the broker must outlive SIGTERM until the pipeline has
		// drained it (drainBroker); the deferred Close stops it.
		kafkaBroker, err = broker.Start(context.WithoutCancel(ctx), bcfg, reg, logger)
		if err != nil {
			return fmt.Errorf("embedded Kafka: %w", err)
		}
		defer kafkaBroker.Close()
		cfg.Kafka.Brokers = kafkaBroker.Addrs()
		cfg.Kafka.SASL = kafkaBroker.Consumer()
		shipperFile := filepath.Join(cfg.DataDir, broker.ShipperCredentialsFile)
		if len(created) > 0 {
			// The path only, never the password: logs travel further than the file.
			logger.Info("embedded Kafka requires SASL: created the produce-only shipper credentials; connlog publish reads them, shippers and kcat -F use them",
				"user", kafkaBroker.Shipper().Username, "path", shipperFile)
		}
		logger.Warn("embedded Kafka-protocol broker: messages are kept in memory only, for evaluation and single-host use", "addr", strings.Join(kafkaBroker.Addrs(), ","), "topics", strings.Join(bcfg.Topics, ","), "shipper_credentials", shipperFile)
	}

	// Audience statistics: the only path from hits to aggregates goes
	// through anonymize, and the statistics rows share the batch's
	// deduplication token.
	var sink ingest.Sink = st.Store
	var keys *anonymize.Keys
	if cfg.Statistics.Enabled {
		// The daily visitor key is held in memory only (PRODUCT.md) on a
		// single instance; several instances of one consumer group must
		// hash a visitor alike, so on a ClickHouse server they share it
		// in ops.visitor_keys, which only connlog's ingest user can read.
		var keyStore anonymize.KeyStore = anonymize.NewMemoryKeyStore()
		if !embeddedMode {
			keyStore = st.VisitorKeys()
		}
		keys = anonymize.NewKeys(keyStore)
		an, err := anonymize.New(cfg.Statistics, keys, reg, logger)
		if err != nil {
			return fmt.Errorf("statistics: %w", err)
		}
		defer func() { _ = an.Close() }()
		sink = ingest.WithAudience(st.Store, an)
	}

	var popts []ingest.Option
	if kafkaBroker != nil {
		// The embedded broker's log lives in memory: after a restart its
		// offsets start again at 0, under new topic IDs.
		popts = append(popts, ingest.Incarnations(kafkaBroker.TopicIncarnation))
	}
	pipeline, err := ingest.New(cfg.Kafka, sink, reg, logger, popts...)
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
	// in ClickHouse in batches (store/audit: Journal).
	var apiStore api.Store = st.Store
	var journal *audit.Journal
	if cfg.AuditJournal.Enabled {
		journal, err = audit.OpenJournal(audit.JournalOptions{
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
			if err := journal.Close(); err != nil {
				logger.Error("audit journal: close", "err", err)
			}
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
	// Operator commands while serving (adminsock.go): audited like API
	// requests.
	admin, err := listenAdmin(cfg.DataDir, opEnv{store: st.Store, signer: signer}, apiStore, logger)
	if err != nil {
		return err
	}
	if admin != nil {
		defer func() { _ = admin.Close() }()
	}
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return fmt.Errorf("api listen: %w", err)
	}
	logger.Info("connlog serving", "api", ln.Addr().String(), "version", versionString())

	g, gctx := errgroup.WithContext(ctx)
	// The pipeline stops after the rest: with the embedded broker, what it
	// holds is drained first (drainBroker), since it is lost with the
	// process.
	pctx, stopPipeline := context.WithCancel(context.WithoutCancel(gctx))
	defer stopPipeline()
	pipelineDone := make(chan struct{})
	g.Go(func() error {
		defer close(pipelineDone)
		return pipeline.Run(pctx)
	})
	g.Go(func() error {
		select {
		case <-gctx.Done():
		case <-pipelineDone:
			return nil
		}
		if kafkaBroker != nil {
			drainBroker(gctx, kafkaBroker, &cfg, pipelineDone, logger)
		}
		stopPipeline()
		return nil
	})
	g.Go(func() error { return srv.Serve(gctx, ln) })
	// ClickHouse's TTL merges are lazy: the enforcement pass makes expiry
	// happen on schedule, and records what it removed.
	g.Go(func() error {
		return st.RunEnforcement(gctx, cfg.Retention.EnforceInterval, reg, logger)
	})
	if keys != nil {
		g.Go(func() error {
			return keys.Run(gctx, time.Minute, func(err error) { logger.Warn("visitor keys", "err", err) })
		})
	}
	if journal != nil {
		g.Go(func() error { return journal.Run(gctx) })
	}
	if admin != nil {
		g.Go(func() error { return admin.Serve(gctx) })
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
	// Stopping: readiness goes first so load balancers stop sending; the
	// embedded broker is drained (drainBroker), then the pipeline stops
	// fetching, flushes and commits (it watches pctx).
	srv.SetReady(false)
	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		if kafkaBroker != nil {
			if lost := lostInBroker(kafkaBroker, &cfg, logger); lost > 0 {
				return fmt.Errorf("stopped with %d published messages not stored", lost)
			}
		}
		logger.Info("stopped cleanly")
		return nil
	case <-time.After(cfg.ShutdownTimeout):
		logger.Error("shutdown timed out; goroutines still running follow on stderr", "timeout", cfg.ShutdownTimeout.String())
		pprof.Lookup("goroutine").WriteTo(stderr, 1) //nolint:errcheck // best effort on the way out
		return fmt.Errorf("shutdown took longer than %s", cfg.ShutdownTimeout)
	}
}

// drainBroker gives the pipeline time to store what the embedded broker
// holds before the broker goes away with the process: the shutdown budget
// left after the pipeline's own final flush (shutdown_timeout minus the
// pipeline's share, shutdownShares, minus shutdownReserve). What is still
// not committed once the pipeline has stopped is lost, and reported by
// lostInBroker.
func drainBroker(ctx context.Context, kafkaBroker *broker.Broker, cfg *Config, pipelineDone <-chan struct{}, logger *slog.Logger) {
	budget := cfg.ShutdownTimeout - cfg.Kafka.ShutdownTimeout - shutdownReserve
	if budget <= 0 || len(kafkaBroker.Backlog(cfg.Kafka.GroupID, cfg.Kafka.Topics)) == 0 {
		return
	}
	logger.Info("draining the embedded broker before stopping", "timeout", budget.String())
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), budget)
	defer cancel()
	go func() {
		select {
		case <-pipelineDone: // nothing consumes any more
			cancel()
		case <-dctx.Done():
		}
	}()
	if left := kafkaBroker.Drain(dctx, cfg.Kafka.GroupID, cfg.Kafka.Topics, 50*time.Millisecond); len(left) > 0 {
		logger.Warn("the embedded broker was not drained in time; stopping the pipeline", "partitions", len(left))
	}
}

// lostInBroker logs what the stopped pipeline left in the embedded broker,
// which is lost with the process: each partition's count and offsets, then
// the total. It returns the total.
func lostInBroker(kafkaBroker *broker.Broker, cfg *Config, logger *slog.Logger) int64 {
	var total int64
	left := kafkaBroker.Backlog(cfg.Kafka.GroupID, cfg.Kafka.Topics)
	for _, p := range left {
		total += p.Messages()
		logger.Error("embedded broker stopped with messages not stored: they are lost", "topic", p.Topic, "partition", p.Partition,
			"messages", p.Messages(), "first_offset", p.Committed, "last_offset", p.HighWatermark-1)
	}
	if total > 0 {
		logger.Error("embedded broker stopped with messages not stored: they are lost", "messages", total, "partitions", len(left))
	}
	return total
}

// journaledStore is the API's store with the audit journal in front of the
// audit trail: Audit appends to the journal; the audit searches store the
// journal's pending rows first, so an auditor sees every request this
// instance has answered.
type journaledStore struct {
	*store.Store
	journal *audit.Journal
}

func (s journaledStore) Audit(ctx context.Context, e audit.Entry) error {
	return s.journal.Audit(ctx, e)
}

func (s journaledStore) AuditMany(ctx context.Context, entries []audit.Entry) error {
	return s.journal.AuditMany(ctx, entries)
}

func (s journaledStore) SearchAudit(ctx context.Context, q audit.Query) ([]audit.Record, error) {
	if err := s.journal.Flush(ctx); err != nil {
		return nil, err
	}
	return s.Store.SearchAudit(ctx, q)
}

func (s journaledStore) SubjectConsultations(ctx context.Context, q audit.SubjectQuery) ([]audit.Consultation, error) {
	if err := s.journal.Flush(ctx); err != nil {
		return nil, err
	}
	return s.Store.SubjectConsultations(ctx, q)
}

// bootstrapAdminToken gives a fresh embedded installation one credential:
// an admin token created on first start, kept in a file of the data
// directory readable only by its owner. Later starts reuse it. The token
// never goes to the log stream, which journald or a log shipper keep where
// far more people can read it than the file: it is shown once on stdout
// only when stdout is a terminal (someone watching); the log says where the
// file is.
func bootstrapAdminToken(dataDir string, stdout io.Writer, logger *slog.Logger) (api.Token, error) {
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
	shown := isTerminal(stdout)
	if shown {
		fmt.Fprintf(stdout, "\nNo API token configured: created an admin token (shown once, also saved in %s, mode 0600):\n\n    %s\n\n", file, tok)
	}
	logger.Info("no API token configured: created an admin token; read it from its file", "path", file, "shown_on_terminal", shown)
	return api.Token{Name: "admin", Role: "admin", SHA256: sum}, nil
}

// isTerminal reports whether w is a terminal: a secret may be shown there,
// never in a file or a pipe (a log collector).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
