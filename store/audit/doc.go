// Package audit keeps the audit trail: who asked what, when, why and what
// they got, for every request to the API and every operator command
// (PRODUCT.md: the trail is kept 3 years in <prefix>_ops.audit).
//
// Trail writes the rows (Audit, AuditMany, AuditBatch) and runs the
// auditor's searches (SearchAudit) and a data subject's (SubjectConsultations).
// store.Store embeds the Trail of its databases. Searches wrap
// store.ErrBadFilter when they cannot run as asked.
//
// The journal (Journal, OpenJournal) makes audit rows durable on the instance's disk
// before they reach ClickHouse, so that answering a request costs one
// append and one fsync instead of a synchronous, fsynced ClickHouse insert
// (a new part in connlog_ops.audit per request).
//
// Guarantees:
//   - Audit returns only once the row is on stable storage (write + fsync of
//     the journal file); if that fails, it returns the error and the caller
//     serves no data.
//   - Rows reach ClickHouse in batches, every JournalOptions.Interval and on Flush
//     (the audit search endpoints flush first, so an auditor sees every row
//     of this instance). A batch is a closed journal segment: its content and
//     its deduplication token never change, so a batch shipped again after a
//     crash (inserted, but not yet deleted) is stored once.
//   - Segments left by a stopped or crashed process are shipped by the next
//     Flush of a new Journal on the same directory. A last line cut short by
//     a crash belonged to a request that was never answered; it is skipped
//     and logged.
//   - When ClickHouse cannot take the rows for long, the journal grows up to
//     JournalOptions.MaxBacklog bytes; then Audit fails (and the API serves no data)
//     until the backlog is shipped.
//
// The rows are plain JSON lines in the journal directory: its permissions
// must be those of the data directory (0700), like the rest of the data.
package audit
