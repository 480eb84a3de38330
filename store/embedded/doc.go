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
// connlog serves the handler on an in-process Listener and dials it with
// clickhouse-go's DialContext: the engine has no port. ServeOperator is the
// opt-in, password-protected listener for operators (full administrative
// access).
//
// Guarantees and limits:
//   - One Engine per process, for the process lifetime (a chDB limit).
//   - No file system or network access from SQL: the engine's user holds no
//     source grant and only MergeTree-family and Null table engines
//     (engineconf.go); the adapter refuses file(), INTO OUTFILE and FROM
//     INFILE, which grants do not cover in chDB (guard.go).
//   - One statement at a time; requests queue and stop waiting when their
//     client goes away or their deadline passes. Every statement runs under
//     max_execution_time, at most Config.MaxQueryTime (a profile constraint
//     keeps SETTINGS clauses from lifting it). A running statement cannot be
//     interrupted from outside: the engine's own check of that limit stops
//     it; a result nobody reads stops at the write deadline (limit + 2s), a
//     disconnected client at the next chunk. Insert data is read whole
//     before the statement takes the slot. connlog's own statements take
//     the slot before the operator listener's.
//   - The engine's log goes through the logger (enginelog.go), with
//     exception and query text withheld.
//   - URL settings and the database parameter apply to one statement only;
//     they are reset before the next one runs.
//   - Results stream to the client chunk by chunk; an error after the first
//     byte is sent uses ClickHouse's __exception__ block and aborts the
//     connection, so a result is never silently truncated.
//   - Query text, parameter values and inserted data are never logged: they
//     contain IP addresses.
//   - Builds without cgo compile, and Open returns an error explaining that
//     embedded ClickHouse needs a cgo build.
//
// The package is larger than the others (about 2,200 lines) because it is
// one adapter: the library loader, the HTTP interface clickhouse-go speaks,
// the statement guard and the engine's configuration and log all serve the
// one Engine, and none of them is used without it.
package embedded
