package store

import (
	"context"

	"github.com/connlog/connlog/anonymize"
)

// Hooks for the external integrity tests.

// SetManifestVersion makes st sign with hash version v (1: as connlog did
// before every column was covered), to test that old manifests verify.
func SetManifestVersion(st *Store, v uint8) {
	is := st.integrity()
	is.mu.Lock()
	is.version, is.writerKnown = v, false
	is.mu.Unlock()
}

// HashedColumns returns, per protected table (short name), the columns
// hash version 2 covers, and the stored columns it leaves out.
func HashedColumns() (map[string][]string, map[string]bool) {
	out := map[string][]string{}
	for name, t := range hashLayouts {
		out[name] = append([]string(nil), t.names...)
	}
	return out, unhashedColumns()
}

// ManifestTables are the protected tables by short name, as Write signs
// them.
var ManifestTables = []string{tableAccess, tableConnections, tableQuarantine}

// TableColumns returns, per protected table (short name), every column the
// writer stores with the engine type its description gives.
func TableColumns() map[string]map[string]string {
	out := map[string]map[string]string{}
	add := func(table, name, typ string) {
		if out[table] == nil {
			out[table] = map[string]string{}
		}
		out[table][name] = typ
	}
	for _, c := range accessTable.cols {
		add(tableAccess, c.name, c.chType)
	}
	for _, c := range connectionTable.cols {
		add(tableConnections, c.name, c.chType)
	}
	for _, c := range quarantineTable.cols {
		add(tableQuarantine, c.name, c.chType)
	}
	return out
}

// SetNativeInserts makes st encode its batch inserts itself (on) or go
// through clickhouse-go's batch API (off), as it does for a ClickHouse
// server, so that both are tested on the embedded engine.
func SetNativeInserts(st *Store, on bool) { st.nativeInserts = on }

// SetLazyColumns turns the exports' lazy materialization on or off, and
// LazyColumns tells whether Open found the engine's setting for it.
func SetLazyColumns(st *Store, on bool) { st.lazyColumns = on }

// LazyColumns reports whether exports set lazyColumnsSetting.
func LazyColumns(st *Store) bool { return st.lazyColumns }

// SetStreamBlockRows sets the block size of a streamed export, 0 for the
// engine's default.
func SetStreamBlockRows(st *Store, n int) { st.streamBlockRows = n }

// SetLazyMaxRows sets the largest result a search reads lazily.
func SetLazyMaxRows(st *Store, n int) { st.lazyMaxRows = n }

// LazyRead reports whether an access-log search of q reads lazily.
func LazyRead(ctx context.Context, st *Store, q AccessQuery) bool {
	_, where, params, err := st.accessSQL(&q)
	if err != nil {
		return false
	}
	return st.lazyRead(ctx, accessTable.full(st.db), where, params, q.Timeout, q.Limit)
}

// WriteAudienceUnmarked stores rows as the audience of batch id the way
// versions before migration 0016 did: alone, under its ID, with no marker.
func WriteAudienceUnmarked(ctx context.Context, st *Store, id string, rows []anonymize.Audience) error {
	return st.insertAudience(ctx, id, cellsTable, []audienceSegment{{rows: rows}})
}
