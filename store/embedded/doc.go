// Package embedded runs ClickHouse inside the connlog process, for the
// embedded mode where no ClickHouse server is configured.
//
// The engine is chDB (libchdb.so, ClickHouse 26.7 as a shared library),
// loaded at run time with dlopen, so building connlog never needs the library
// (scripts/fetch-chdb.sh downloads it). Engine.Handler serves the subset of
// ClickHouse's HTTP interface that clickhouse-go uses with
// Protocol: clickhouse.HTTP, so package store talks to the embedded engine
// and to a real server with the same code.
//
// Guarantees and limits:
//   - One Engine per process, for the process lifetime (a chDB limit).
//   - One statement at a time; requests queue and stop waiting when their
//     client goes away. A running statement cannot be interrupted from
//     outside: max_execution_time (the request's, else Config.MaxQueryTime)
//     bounds it, and a disconnected client stops a streaming result at the
//     next chunk.
//   - URL settings and the database parameter apply to one statement only;
//     they are reset before the next one runs.
//   - Results stream to the client chunk by chunk; an error after the first
//     byte is sent uses ClickHouse's __exception__ block and aborts the
//     connection, so a result is never silently truncated.
//   - Query text, parameter values and inserted data are never logged: they
//     contain IP addresses.
//   - Builds without cgo compile, and Open returns an error explaining that
//     embedded ClickHouse needs a cgo build.
package embedded
