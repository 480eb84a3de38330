package store

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// insertTypes remembers, per INSERT column list, the types an HTTP insert
// sends its columns as.
//
// Over HTTP, clickhouse-go learns the types of an INSERT's columns with a
// DESCRIBE TABLE before every batch (a statement of its own, one per table
// per flush), unless it is told them. And it encodes a LowCardinality column
// through a map keyed by interface values, row by row: the costliest step
// of encoding an access-log batch. Both are avoided by describing each
// table once and sending LowCardinality(T) columns as plain T, which the
// engine converts on the way in (the Native input format's
// input_format_native_allow_types_conversion, on by default). Over the
// native protocol the server itself names the types of the block, so
// nothing here applies.
type insertTypes struct {
	mu sync.Mutex
	by map[string][]clickhouse.ColumnNameAndType // by "table (columns)"
}

// forget drops what is known: the schema may have changed (Migrate).
func (t *insertTypes) forget() {
	t.mu.Lock()
	t.by = nil
	t.mu.Unlock()
}

// lookup returns the columns of table named by columns (comma-separated)
// with the types to send them as, describing the table on first use.
func (t *insertTypes) lookup(ctx context.Context, conn driver.Conn, table, columns string) ([]clickhouse.ColumnNameAndType, error) {
	key := table + " (" + columns + ")"
	t.mu.Lock()
	cols, ok := t.by[key]
	t.mu.Unlock()
	if ok {
		return cols, nil
	}
	rows, err := conn.Query(ctx, "DESCRIBE TABLE "+table)
	if err != nil {
		return nil, fmt.Errorf("describe %s: %w", table, err)
	}
	defer rows.Close()
	types := map[string]string{}
	for rows.Next() {
		var name, typ, kind, ignore string
		if err := rows.Scan(&name, &typ, &kind, &ignore, &ignore, &ignore, &ignore); err != nil {
			return nil, fmt.Errorf("describe %s: %w", table, err)
		}
		types[name] = insertType(typ)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("describe %s: %w", table, err)
	}
	for _, name := range strings.Split(columns, ",") {
		name = strings.TrimSpace(name)
		typ, ok := types[name]
		if !ok {
			return nil, fmt.Errorf("insert into %s: no column %s", table, name)
		}
		cols = append(cols, clickhouse.ColumnNameAndType{Name: name, Type: typ})
	}
	t.mu.Lock()
	if t.by == nil {
		t.by = map[string][]clickhouse.ColumnNameAndType{}
	}
	t.by[key] = cols
	t.mu.Unlock()
	return cols, nil
}

// insertType is the type an insert sends a column of type typ as: its own,
// but LowCardinality(T) as T.
func insertType(typ string) string {
	if inner, ok := strings.CutPrefix(typ, "LowCardinality("); ok && strings.HasSuffix(inner, ")") {
		return inner[:len(inner)-1]
	}
	return typ
}

// prepareInsert prepares a batch inserting into table (qualified) the
// columns named by columns (comma-separated), with ctx's settings.
func (s *Store) prepareInsert(ctx context.Context, table, columns string) (driver.Batch, error) {
	if s.cfg.Protocol == "http" {
		cols, err := s.types.lookup(ctx, s.conn, table, columns)
		if err != nil {
			return nil, err
		}
		ctx = clickhouse.Context(ctx, clickhouse.WithColumnNamesAndTypes(cols))
	}
	return s.conn.PrepareBatch(ctx, "INSERT INTO "+table+" ("+columns+")")
}
