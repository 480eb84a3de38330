package store

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/connlog/connlog/store/audit"
	"github.com/connlog/connlog/store/internal/chsql"
	"github.com/connlog/connlog/store/legal"
	"github.com/connlog/connlog/store/retention"
)

// Store is connlog's handle on ClickHouse. It is safe for concurrent use.
type Store struct {
	conn   driver.Conn
	cfg    Config
	db     Databases
	logger *slog.Logger

	// write is the write path of Write: the rows' inserts (tableRows),
	// wrapped by the signing of their manifests (signingWriter, with the
	// signing state SetSigner sets).
	write *signingWriter
	// heldSeen is set once the hold storage table is known to exist.
	heldSeen atomic.Bool
	// groupers recycles the audience grouping buffers between batches.
	groupers sync.Pool
	// types are the column types of the hot inserts (insert.go).
	types insertTypes
	// buffers recycle the column buffers of each table's inserts.
	buffers struct{ access, connections, quarantine sync.Pool }
	// nativeInserts: the store encodes its batch inserts itself
	// (native.go); set for the embedded engine, reached in-process.
	nativeInserts bool
	// lazyColumns: the engine knows lazyColumnsSetting (search.go), which
	// exports then set; a server older than 25.x refuses an unknown
	// setting, so Open asks system.settings.
	lazyColumns bool
	// lazyMaxRows is lazyColumnsMaxRows, lowered by tests.
	lazyMaxRows int
	// streamBlockRows is streamBlockRows (search.go), 0 in tests that
	// compare with the engine's default block size.
	streamBlockRows int

	// Enforcer applies and enforces the lifetimes of the data classes
	// and reports on them (ApplyRetention, Enforce, RunEnforcement,
	// RetentionReport): package retention.
	*retention.Enforcer
	// Trail writes and searches the audit trail (Audit, AuditMany,
	// AuditBatch, SearchAudit, SubjectConsultations): package audit.
	*audit.Trail
	// Register keeps requisitions and legal holds (CreateRequisition,
	// CreateHold, ...): package legal.
	*legal.Register
}

// Open connects to the ClickHouse named by cfg.Addrs and checks that it
// answers. It does not change the schema: call Migrate for that. For the
// embedded engine, the caller starts it first and passes its in-process
// listener's Dial and address with Protocol "http".
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(cfg.Addrs) == 0 {
		return nil, fmt.Errorf("open store: no ClickHouse address")
	}
	opts := &clickhouse.Options{
		Addr: cfg.Addrs,
		Auth: clickhouse.Auth{
			Username: cfg.Username,
			Password: string(cfg.Password),
		},
		DialTimeout:     cfg.DialTimeout,
		MaxOpenConns:    8,
		MaxIdleConns:    4,
		ConnMaxLifetime: time.Hour,
	}
	if cfg.Protocol == "http" {
		opts.Protocol = clickhouse.HTTP
	}
	if cfg.Dial != nil {
		opts.DialContext = cfg.Dial
		// No HTTP proxy from the environment: the connection is in-process.
		opts.TransportFunc = func(t *http.Transport) (http.RoundTripper, error) {
			t.Proxy = nil
			// An in-process connection (net.Pipe) hands over each write
			// to the reader goroutine: with the default 4 KiB buffer, a
			// batch's tens of megabytes took tens of thousands of
			// handovers.
			t.WriteBufferSize = inProcessBuffer
			t.ReadBufferSize = inProcessBuffer
			return t, nil
		}
	}
	if cfg.TLS {
		opts.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %v: %w", cfg.Addrs, err)
	}
	s := &Store{conn: conn, cfg: cfg, db: cfg.databases(), logger: logger.With("component", "store")}
	s.groupers.New = newCellGrouper
	s.write = &signingWriter{next: tableRows{s}, store: s}
	s.nativeInserts = cfg.Dial != nil && cfg.Protocol == "http"
	s.Register = legal.NewRegister(conn, s.db, cfg.Cluster, connectionTable.list, s.logger)
	s.Trail = audit.NewTrail(conn, s.db, cfg.QueryTimeout)
	s.Enforcer = retention.NewEnforcer(conn, s.db, cfg.Retention, cfg.Cluster, retentionHolds{s}, s.logger)
	pctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if err := s.Ping(pctx); err != nil {
		_ = conn.Close() // the first error is the one returned
		return nil, err
	}
	var known uint64
	if err := conn.QueryRow(chsql.WithParams(pctx, map[string]string{"name": lazyColumnsSetting}),
		"SELECT count() FROM system.settings WHERE name = {name:String}").Scan(&known); err != nil {
		s.logger.Warn("cannot tell whether the engine knows a setting; exports go without it", "setting", lazyColumnsSetting, "err", err)
	}
	s.lazyColumns, s.lazyMaxRows, s.streamBlockRows = known > 0, lazyColumnsMaxRows, streamBlockRows
	return s, nil
}

// inProcessBuffer is the HTTP transport's buffer size on an in-process
// connection to the embedded engine.
const inProcessBuffer = 256 << 10

// Databases names the databases this store uses.
func (s *Store) Databases() Databases { return s.db }

// Ping checks that ClickHouse answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.conn.Ping(ctx); err != nil {
		return fmt.Errorf("ping clickhouse: %w", err)
	}
	return nil
}

// Conn exposes the underlying driver connection for tests and tools that
// need plain SQL (migrations tests, the retention report).
func (s *Store) Conn() driver.Conn { return s.conn }

// Close releases the connections.
func (s *Store) Close() error { return s.conn.Close() }
