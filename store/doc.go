// Package store keeps connlog's data in ClickHouse and is the only package
// that talks to it, always through github.com/ClickHouse/clickhouse-go/v2.
//
// The data classes of PRODUCT.md live in separate databases so that access
// rights and lifetimes can be kept apart (CJEU C-470/21 asks for a
// "watertight separation"):
//
//	<prefix>_connections  connection records (legal retention, 12 months)
//	                      and the copies frozen by legal holds
//	<prefix>_access       the security access log (6 months)
//	<prefix>_stats        audience statistics, no address at all (hourly
//	                      8 weeks, daily 25 months)
//	<prefix>_ops          operations data: quarantine (30 days), audit trail
//	                      (3 years), requisitions, holds, manifests and
//	                      instance keys, retention runs, ingest batches,
//	                      daily visitor keys, schema migrations
//
// The tables ingest writes (access log, connection records, quarantine) are
// described once, in tables.go: the writer, its Native encoding, the
// searches, the hold copies and the manifest hash all read their columns
// from there.
//
// The write path is layers around one interface (writer.go): tableRows
// inserts the rows of a batch, or of the batches of several partitions
// that ingest writes together (a write round), one insert per table, and
// for a batch rebuilt after a crash only the rows each table lacks
// (batches.go, unstored; the statistics, which keep no rows, by the marker
// cells each insert carries per batch: audience.go,
// insertRebuiltAudience); signingWriter wraps it
// with the tamper evidence: once the rows are stored it chains, signs and
// stores their manifests (manifest.go). Store.Prepare does ahead what
// depends on a batch alone (prepare.go: its Native blocks, its manifests'
// hashes), so that ingest's workers do it while the round before is being
// written. On the embedded engine the store
// encodes each insert in the Native format itself (native.go); on a
// ClickHouse server it uses clickhouse-go's batch API, told the column
// types once per table instead of a DESCRIBE per batch (insert.go).
//
// Retention is enforced by ClickHouse itself: every table carries a row TTL,
// and tables are partitioned by day so that expiry drops whole parts
// (ttl_only_drop_parts) rather than rewriting them.
//
// The schema is a sequence of versioned migrations embedded in the binary
// (migrations/*.sql), applied in order at start-up and recorded in
// <prefix>_ops.schema_migrations.
//
// Every value that comes from a user or a log line reaches ClickHouse as a
// bound parameter ({name:Type}) or as column data of a batch insert; SQL text
// is built only from constants and validated identifiers.
//
// A Store is safe for concurrent use.
//
// # Packages
//
// Package store is the schema and migrations, the write path (Write, batch
// records, the audience aggregation), the searches of the access log and
// connection records, and the tamper evidence of what Write stores
// (manifests, Verify). The other jobs live in packages of their own, each
// working on the store's connection and databases; the Store embeds the
// handle of each, so its callers keep one handle:
//
//	store/retention   lifetimes, TTLs, the enforcement pass, the report
//	store/legal       requisitions and legal holds (Selector)
//	store/audit       the audit trail, its searches and the local journal
//	store/integrity   the instance key that signs manifests and packages
//	store/embedded    the embedded engine (chDB)
//	store/storetest   a migrated store on the real engine, for tests
//	store/internal/chsql  bound parameters, literals, shared query helpers
//
// The write path, the searches and the manifests stay together in this
// package (about 4,800 lines, 3,600 without comments and blank lines)
// because all three read the table descriptions of tables.go and the row
// types Hit, ConnectionRecord and Quarantined, which ingest and api name as
// store.*: splitting them needs those types in a package of their own
// first.
package store
