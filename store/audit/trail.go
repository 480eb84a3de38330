package audit

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/connlog/connlog/store/internal/chsql"
)

// Trail is the audit trail in ClickHouse: the rows written for every
// request to the API and every operator command, and the searches an
// auditor and a data subject's request run over them. It is safe for
// concurrent use.
type Trail struct {
	conn         driver.Conn
	db           chsql.Databases
	queryTimeout time.Duration
}

// NewTrail returns the audit trail of the databases db on conn; searches
// stop after queryTimeout on the server.
func NewTrail(conn driver.Conn, db chsql.Databases, queryTimeout time.Duration) *Trail {
	return &Trail{conn: conn, db: db, queryTimeout: queryTimeout}
}

func (s *Trail) queryContext(ctx context.Context, params map[string]string, limit int) context.Context {
	return chsql.QueryContext(ctx, params, s.queryTimeout, limit, nil)
}

// Entry records one API call that touched (or tried to touch) data:
// who, when, in which role, why, with which filters, and what came out.
type Entry struct {
	Time     time.Time `json:"time"`
	Actor    string    `json:"actor"` // credential name (a person); "" if unauthenticated
	Role     string    `json:"role"`
	Source   string    `json:"source"`   // remote address of the API client
	Method   string    `json:"method"`   // HTTP method
	Endpoint string    `json:"endpoint"` // route pattern, e.g. "/v1/access"
	Purpose  string    `json:"purpose"`
	Filters  string    `json:"filters"` // canonical JSON of the request's filters
	Status   int       `json:"status"`  // HTTP status returned
	Rows     int       `json:"rows"`
	Outcome  string    `json:"outcome"` // "ok", "denied", "invalid", "error"
	Reason   string    `json:"reason"`  // why refused or failed, for the auditor
	// Requests is how many requests the row stands for: 0 and 1 both mean
	// one. Only the aggregated refusals of bad or missing credentials (one
	// row per source and minute, api/badcreds.go) carry more.
	Requests int `json:"requests,omitempty"`
}

// auditColumns are the columns both audit inserts write, in Entry's
// order.
const auditColumns = "time, actor, role, source, method, endpoint, purpose, filters, status, rows, outcome, reason, requests"

// auditInsert is one statement: the values are bound parameters and the
// setting is part of the text, so the row costs a single round trip (a
// prepared batch would first ask for the table's structure, and a settings
// parameter costs the embedded engine two more statements).
// async_insert = 0 whatever the user's profile says: the insert must not
// return before the row is in a part on disk. A random deduplication token
// per row: the table deduplicates inserts (for the journal's batches,
// migration 0009), by content when no token is given, and two requests
// identical to the millisecond must leave two rows (insert_deduplicate = 0
// does not turn that off for a non-replicated table).
const auditInsert = ".audit (" + auditColumns + ") SETTINGS async_insert = 0, insert_deduplication_token = {token:String} VALUES " +
	"({time:DateTime64(3, 'UTC')}, {actor:String}, {role:String}, {source:String}, {method:String}, {endpoint:String}, {purpose:String}, {filters:String}, {status:UInt16}, {rows:UInt64}, {outcome:String}, {reason:String}, {requests:UInt64})"

// Audit appends e to the audit trail and returns once ClickHouse has
// acknowledged it (synchronous insert into a table with fsync_after_insert), so a caller
// that waits for Audit before answering never serves data that left no
// trace.
func (s *Trail) Audit(ctx context.Context, e Entry) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	ctx = chsql.WithParams(ctx, map[string]string{
		"token":    "audit/" + chsql.NewID(),
		"time":     chsql.Time(e.Time),
		"actor":    chsql.Escape(e.Actor),
		"role":     chsql.Escape(e.Role),
		"source":   chsql.Escape(e.Source),
		"method":   chsql.Escape(e.Method),
		"endpoint": chsql.Escape(e.Endpoint),
		"purpose":  chsql.Escape(e.Purpose),
		"filters":  chsql.Escape(e.Filters),
		"status":   strconv.FormatUint(uint64(uint16(e.Status)), 10),
		"rows":     strconv.FormatUint(uint64(max(e.Rows, 0)), 10),
		"outcome":  chsql.Escape(e.Outcome),
		"reason":   chsql.Escape(e.Reason),
		"requests": strconv.FormatUint(e.requests(), 10),
	})
	if err := s.conn.Exec(ctx, "INSERT INTO "+s.db.Ops+auditInsert); err != nil {
		return fmt.Errorf("write audit row: %w", err)
	}
	return nil
}

// requests is the stored value of e.Requests: at least 1.
func (e *Entry) requests() uint64 { return uint64(max(e.Requests, 1)) }

// AuditMany appends entries to the audit trail in one insert (AuditBatch
// with a fresh deduplication token). Like Audit, it returns once the rows
// are in a part on disk.
func (s *Trail) AuditMany(ctx context.Context, entries []Entry) error {
	return s.AuditBatch(ctx, "audit/"+chsql.NewID(), entries)
}

// AuditBatch appends entries to the audit trail in one insert, once per
// token: a batch sent again with the same token (a journal segment shipped
// again after a crash) is not stored twice (insert_deduplication_token,
// migration 0009's deduplication window). Like Audit, it returns once the
// rows are in a part on disk.
func (s *Trail) AuditBatch(ctx context.Context, token string, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	if token == "" {
		return fmt.Errorf("write %d audit rows: a batch needs a deduplication token", len(entries))
	}
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
		"async_insert":                    0,
		"insert_deduplication_token":      token,
		"max_partitions_per_insert_block": 1000,
	}))
	bt, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.db.Ops+".audit ("+auditColumns+")")
	if err != nil {
		return fmt.Errorf("write %d audit rows: %w", len(entries), err)
	}
	defer bt.Abort() //nolint:errcheck // no-op once sent
	for _, e := range entries {
		if e.Time.IsZero() {
			return fmt.Errorf("write %d audit rows: a row without time", len(entries))
		}
		if err := bt.Append(e.Time, e.Actor, e.Role, e.Source, e.Method, e.Endpoint, e.Purpose, e.Filters,
			uint16(e.Status), uint64(max(e.Rows, 0)), e.Outcome, e.Reason, e.requests()); err != nil {
			return fmt.Errorf("write %d audit rows: %w", len(entries), err)
		}
	}
	if err := bt.Send(); err != nil {
		return fmt.Errorf("write %d audit rows: %w", len(entries), err)
	}
	return nil
}
