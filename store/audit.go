package store

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// AuditEntry records one API call that touched (or tried to touch) data:
// who, when, in which role, why, with which filters, and what came out.
type AuditEntry struct {
	Time     time.Time
	Actor    string // credential name (a person); "" if unauthenticated
	Role     string
	Source   string // remote address of the API client
	Method   string // HTTP method
	Endpoint string // route pattern, e.g. "/v1/access"
	Purpose  string
	Filters  string // canonical JSON of the request's filters
	Status   int    // HTTP status returned
	Rows     int
	Outcome  string // "ok", "denied", "invalid", "error"
	Reason   string // why refused or failed, for the auditor
}

// Audit appends e to the audit trail and returns once ClickHouse has
// acknowledged it (synchronous insert into a table with fsync_after_insert), so a caller
// that waits for Audit before answering never serves data that left no
// trace.
func (s *Store) Audit(ctx context.Context, e AuditEntry) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
		"async_insert": 0,
	}))
	bt, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.db.Ops+".audit (time, actor, role, source, method, endpoint, purpose, filters, status, rows, outcome, reason)")
	if err != nil {
		return fmt.Errorf("write audit row: %w", err)
	}
	defer bt.Abort() //nolint:errcheck // no-op once sent
	if err := bt.Append(e.Time, e.Actor, e.Role, e.Source, e.Method, e.Endpoint, e.Purpose, e.Filters,
		uint16(e.Status), uint64(e.Rows), e.Outcome, e.Reason); err != nil {
		return fmt.Errorf("write audit row: %w", err)
	}
	if err := bt.Send(); err != nil {
		return fmt.Errorf("write audit row: %w", err)
	}
	return nil
}
