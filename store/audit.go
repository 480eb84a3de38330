package store

import (
	"context"
	"fmt"
	"strconv"
	"time"
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

// auditInsert is one statement: the values are bound parameters and the
// setting is part of the text, so the row costs a single round trip (a
// prepared batch would first ask for the table's structure, and a settings
// parameter costs the embedded engine two more statements).
// async_insert = 0 whatever the user's profile says: the insert must not
// return before the row is in a part on disk.
const auditInsert = ".audit (time, actor, role, source, method, endpoint, purpose, filters, status, rows, outcome, reason) SETTINGS async_insert = 0 VALUES " +
	"({time:DateTime64(3, 'UTC')}, {actor:String}, {role:String}, {source:String}, {method:String}, {endpoint:String}, {purpose:String}, {filters:String}, {status:UInt16}, {rows:UInt64}, {outcome:String}, {reason:String})"

// Audit appends e to the audit trail and returns once ClickHouse has
// acknowledged it (synchronous insert into a table with fsync_after_insert), so a caller
// that waits for Audit before answering never serves data that left no
// trace.
func (s *Store) Audit(ctx context.Context, e AuditEntry) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	ctx = withParams(ctx, map[string]string{
		"time":     formatTime(e.Time),
		"actor":    escapeParam(e.Actor),
		"role":     escapeParam(e.Role),
		"source":   escapeParam(e.Source),
		"method":   escapeParam(e.Method),
		"endpoint": escapeParam(e.Endpoint),
		"purpose":  escapeParam(e.Purpose),
		"filters":  escapeParam(e.Filters),
		"status":   strconv.FormatUint(uint64(uint16(e.Status)), 10),
		"rows":     strconv.FormatUint(uint64(max(e.Rows, 0)), 10),
		"outcome":  escapeParam(e.Outcome),
		"reason":   escapeParam(e.Reason),
	})
	if err := s.conn.Exec(ctx, "INSERT INTO "+s.db.Ops+auditInsert); err != nil {
		return fmt.Errorf("write audit row: %w", err)
	}
	return nil
}
