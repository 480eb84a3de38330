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
// described once, in tables.go: the writer, the searches, the hold copies
// and the manifest hash all read their columns from there.
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
package store
