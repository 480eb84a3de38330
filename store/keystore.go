package store

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/connlog/connlog/anonymize"
	"github.com/connlog/connlog/store/internal/chsql"
)

// VisitorKeys is the [anonymize.KeyStore] of the instances sharing this
// store: the daily visitor keys in the operations database
// (<prefix>_ops.visitor_keys), never next to the statistics. Only the
// ingest user may read or write that table. Create it with
// [Store.VisitorKeys]; it is safe for concurrent use.
type VisitorKeys struct{ s *Store }

var _ anonymize.KeyStore = (*VisitorKeys)(nil)

// VisitorKeys returns the KeyStore kept in this store.
func (s *Store) VisitorKeys() *VisitorKeys { return &VisitorKeys{s: s} }

// Get implements anonymize.KeyStore. If several keys were stored for day
// (a deduplication window exceeded), the earliest wins, as for PutIfAbsent.
func (v *VisitorKeys) Get(ctx context.Context, day anonymize.Day) (anonymize.Key, bool, error) {
	ctx = chsql.WithParams(ctx, map[string]string{"day": day.String()})
	rows, err := v.s.conn.Query(ctx, "SELECT key FROM "+v.s.db.Ops+".visitor_keys WHERE day = {day:Date} ORDER BY created_at, key LIMIT 1")
	if err != nil {
		return anonymize.Key{}, false, fmt.Errorf("read visitor key of %s: %w", day, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return anonymize.Key{}, false, fmt.Errorf("read visitor key of %s: %w", day, err)
		}
		return anonymize.Key{}, false, nil
	}
	var raw string
	if err := rows.Scan(&raw); err != nil {
		return anonymize.Key{}, false, fmt.Errorf("read visitor key of %s: %w", day, err)
	}
	var k anonymize.Key
	if len(raw) != len(k) {
		return anonymize.Key{}, false, fmt.Errorf("read visitor key of %s: %d bytes, want %d", day, len(raw), len(k))
	}
	copy(k[:], raw)
	return k, true, nil
}

// PutIfAbsent implements anonymize.KeyStore. The insert carries a
// deduplication token derived from the day alone, so when two instances
// race, ClickHouse keeps the first insert and drops the other as a
// duplicate; both then read back the same stored key.
func (v *VisitorKeys) PutIfAbsent(ctx context.Context, day anonymize.Day, key anonymize.Key) (anonymize.Key, error) {
	ictx := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
		"insert_deduplication_token": "visitor-key-" + day.String(),
		"async_insert":               0,
	}))
	bt, err := v.s.conn.PrepareBatch(ictx, "INSERT INTO "+v.s.db.Ops+".visitor_keys (day, key, created_at)")
	if err != nil {
		return anonymize.Key{}, fmt.Errorf("store visitor key of %s: %w", day, err)
	}
	defer bt.Abort() //nolint:errcheck // no-op once sent
	if err := bt.Append(day.Start(), string(key[:]), time.Now()); err != nil {
		return anonymize.Key{}, fmt.Errorf("store visitor key of %s: %w", day, err)
	}
	if err := bt.Send(); err != nil {
		return anonymize.Key{}, fmt.Errorf("store visitor key of %s: %w", day, err)
	}
	winner, ok, err := v.Get(ctx, day)
	if err != nil {
		return anonymize.Key{}, err
	}
	if !ok {
		return anonymize.Key{}, fmt.Errorf("store visitor key of %s: not found after insert", day)
	}
	return winner, nil
}

// Delete implements anonymize.KeyStore: it removes the keys of every day
// before olderThan and waits until the rows are gone (a synchronous
// mutation), so a destroyed key cannot be read back.
func (v *VisitorKeys) Delete(ctx context.Context, olderThan anonymize.Day) error {
	ctx = chsql.WithParams(ctx, map[string]string{"day": olderThan.String()})
	// Keys.Sweep calls Delete every minute: start a mutation only when
	// there is something to delete.
	var n uint64
	if err := v.s.conn.QueryRow(ctx, "SELECT count() FROM "+v.s.db.Ops+".visitor_keys WHERE day < {day:Date}").Scan(&n); err != nil {
		return fmt.Errorf("count visitor keys before %s: %w", olderThan, err)
	}
	if n == 0 {
		return nil
	}
	ctx = clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{"day": olderThan.String()}),
		clickhouse.WithSettings(clickhouse.Settings{"mutations_sync": 2}))
	if err := v.s.conn.Exec(ctx, "ALTER TABLE "+v.s.db.Ops+".visitor_keys DELETE WHERE day < {day:Date}"); err != nil {
		return fmt.Errorf("delete visitor keys before %s: %w", olderThan, err)
	}
	return nil
}
