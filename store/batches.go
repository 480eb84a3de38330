package store

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/connlog/connlog/store/internal/chsql"
)

// BatchRange is a contiguous range of offsets of one Kafka partition that
// ingest writes as one [Batch]: its boundaries are recorded in the intent
// log (ops.ingest_batches) before the batch is written.
//
// An offset range alone does not name data: the embedded broker's offsets
// start again at 0 after a restart, and so do those of a Kafka topic that
// was deleted and created again. Incarnation and Digest make the identity
// unique: the same range of another log, or with other content, is another
// batch.
type BatchRange struct {
	Group     string
	Topic     string
	Partition int32
	// First and Last are the first and last offsets of the range, inclusive.
	First, Last int64
	// Incarnation names the log the range was cut from: the topic ID where
	// ingest knows it (the embedded broker), "" where the Kafka client does
	// not expose it.
	Incarnation string
	// Digest is a digest of the batch's messages (offsets, timestamps and
	// bytes), lower-case hex; "" for a range recorded by a version of
	// connlog that kept none.
	Digest string
}

// digestIDLen is how many hex digits of the digest go into the ID: 64 bits
// tell a replay from other data cut at the same offsets of the same log.
const digestIDLen = 16

// ID returns the batch's identifier, used as [Batch.ID] and therefore as the
// insert deduplication token of every table the batch goes to:
// "topic/partition/first-last", followed by "/incarnation" when known and
// "/digest" (its first 16 hex digits). A range recorded without a digest (by
// an earlier version) keeps its old ID, so that rebuilding it after an
// upgrade still matches what that version inserted. The ID does not include
// the group: two groups writing the same topic into one store would store
// it twice anyway.
func (r BatchRange) ID() string {
	b := make([]byte, 0, len(r.Topic)+len(r.Incarnation)+56)
	b = append(b, r.Topic...)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(r.Partition), 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, r.First, 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, r.Last, 10)
	if r.Digest == "" {
		return string(b)
	}
	if r.Incarnation != "" {
		b = append(b, '/')
		b = append(b, r.Incarnation...)
	}
	b = append(b, '/')
	b = append(b, r.Digest[:min(len(r.Digest), digestIDLen)]...)
	return string(b)
}

// RecordBatches appends rs to the intent log, in one insert. Ingest calls
// it before writing the batches, so that whatever happens next, the next
// owner of each partition can rebuild its batch with the same boundaries.
// Recording the same range again (with another digest, when its content
// changed) supersedes the earlier record. It returns once ClickHouse
// acknowledged the rows.
func (s *Store) RecordBatches(ctx context.Context, rs ...BatchRange) error {
	if len(rs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.InsertTimeout)
	defer cancel()
	bt, err := s.prepareInsert(ctx, s.db.Ops+".ingest_batches", "consumer_group, kafka_topic, kafka_partition, first_offset, last_offset, incarnation, digest, written_at")
	if err != nil {
		return fmt.Errorf("record batch %s: %w", rs[0].ID(), err)
	}
	defer bt.Abort() //nolint:errcheck // no-op once sent
	at := time.Now().UTC()
	for _, r := range rs {
		if err := bt.Append(r.Group, r.Topic, r.Partition, r.First, r.Last, r.Incarnation, r.Digest, at); err != nil {
			return fmt.Errorf("record batch %s: %w", r.ID(), err)
		}
	}
	if err := bt.Send(); err != nil {
		return fmt.Errorf("record batch %s: %w", rs[0].ID(), err)
	}
	return nil
}

// PendingBatches returns the recorded ranges of a partition whose last
// offset is at or after from (the committed offset: the next offset to
// consume), in order of first offset, each range once with its latest
// record. A range that overlaps an earlier one is left out: the earlier one
// is the one rebuilt.
//
// incarnation is the log now behind the partition. A range recorded from
// another incarnation belongs to a log that no longer exists and is left
// out. When incarnation is "" (the client cannot tell), every range is a
// candidate and the content digest tells a replay from new data. When it is
// set, ranges recorded without one are left out too: only a client that
// knows the incarnation records one, so they come from another log.
func (s *Store) PendingBatches(ctx context.Context, group, topic string, partition int32, from int64, incarnation string) ([]BatchRange, error) {
	ctx = chsql.WithParams(ctx, map[string]string{
		"g":    chsql.Escape(group),
		"t":    chsql.Escape(topic),
		"p":    strconv.FormatInt(int64(partition), 10),
		"from": strconv.FormatInt(from, 10),
		"i":    chsql.Escape(incarnation),
	})
	rows, err := s.conn.Query(ctx, "SELECT first_offset, last_offset, argMax(incarnation, written_at) AS inc, argMax(digest, written_at) AS dig "+
		"FROM "+s.db.Ops+".ingest_batches "+
		"WHERE consumer_group = {g:String} AND kafka_topic = {t:String} AND kafka_partition = {p:Int32} AND last_offset >= {from:Int64} "+
		"GROUP BY first_offset, last_offset HAVING {i:String} = '' OR inc = {i:String} "+
		"ORDER BY first_offset, last_offset")
	if err != nil {
		return nil, fmt.Errorf("read pending batches of %s/%d: %w", topic, partition, err)
	}
	defer rows.Close()
	var out []BatchRange
	for rows.Next() {
		r := BatchRange{Group: group, Topic: topic, Partition: partition}
		if err := rows.Scan(&r.First, &r.Last, &r.Incarnation, &r.Digest); err != nil {
			return nil, fmt.Errorf("read pending batches of %s/%d: %w", topic, partition, err)
		}
		if n := len(out); n > 0 && r.First <= out[n-1].Last {
			continue
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read pending batches of %s/%d: %w", topic, partition, err)
	}
	return out, nil
}

// StoredRows reports how many of b's hits and quarantined messages the
// store already holds, for a batch that ingest rebuilt from the intent log:
// it was written, wholly or in part, before a crash or a rebalance, and the
// engine drops what it already has. Ingest counts only the rest as stored.
//
// Rows are matched by their Kafka source (topic, partition, offset within
// the batch's range) and by the message time they carry as ingested_at (or
// received_at), which tells them from rows of an earlier incarnation of the
// same log at the same offsets; the event time bounds the day partitions
// read. All of b's rows must come from one partition.
func (s *Store) StoredRows(ctx context.Context, b Batch) (hits, quarantined int, err error) {
	if len(b.Hits) > 0 {
		where, params, f, l := hitBounds(b.Hits)
		if hits, err = s.countSource(ctx, s.db.Access+".access_log", where, params, b.Hits[0].Source, f, l); err != nil {
			return 0, 0, err
		}
	}
	if len(b.Quarantine) > 0 {
		where, params, f, l := quarantineBounds(b.Quarantine)
		if quarantined, err = s.countSource(ctx, s.db.Ops+".quarantine", where, params, b.Quarantine[0].Source, f, l); err != nil {
			return 0, 0, err
		}
	}
	return min(hits, len(b.Hits)), min(quarantined, len(b.Quarantine)), nil
}

// hitBounds returns the filter, with its parameters, that bounds the rows
// of hits (one partition's, not empty) in the access log or the connection
// records by their event and message times, and their first and last
// offsets.
func hitBounds(hits []Hit) (where string, params map[string]string, first, last int64) {
	first, last, imin, imax := hits[0].Source.Offset, hits[0].Source.Offset, hits[0].Ingested, hits[0].Ingested
	emin, emax := hits[0].EventTime, hits[0].EventTime
	for i := range hits {
		h := &hits[i]
		first, last = min(first, h.Source.Offset), max(last, h.Source.Offset)
		imin, imax = minTime(imin, h.Ingested), maxTime(imax, h.Ingested)
		emin, emax = minTime(emin, h.EventTime), maxTime(emax, h.EventTime)
	}
	return "event_time BETWEEN {emin:DateTime64(3, 'UTC')} AND {emax:DateTime64(3, 'UTC')} AND ingested_at BETWEEN {imin:DateTime64(3, 'UTC')} AND {imax:DateTime64(3, 'UTC')}",
		map[string]string{"emin": chsql.Time(emin), "emax": chsql.Time(emax), "imin": chsql.Time(imin), "imax": chsql.Time(imax)},
		first, last
}

// quarantineBounds is hitBounds for quarantined messages, bounded by the
// time they were received.
func quarantineBounds(qs []Quarantined) (where string, params map[string]string, first, last int64) {
	first, last, rmin, rmax := qs[0].Source.Offset, qs[0].Source.Offset, qs[0].Received, qs[0].Received
	for i := range qs {
		q := &qs[i]
		first, last = min(first, q.Source.Offset), max(last, q.Source.Offset)
		rmin, rmax = minTime(rmin, q.Received), maxTime(rmax, q.Received)
	}
	return "received_at BETWEEN {imin:DateTime64(3, 'UTC')} AND {imax:DateTime64(3, 'UTC')}",
		map[string]string{"imin": chsql.Time(rmin), "imax": chsql.Time(rmax)},
		first, last
}

// unstored returns, for each table a rebuilt batch goes to, the rows of b
// that table does not hold yet. The batch may have been stored, wholly or
// in part, before a crash or a rebalance, and perhaps with other
// partitions' batches under a token of their own (a write round), so the
// engine's deduplication cannot be relied on: the rows themselves are
// looked for. A stored row matches by its Kafka source (topic, partition,
// offset), its message time (ingested_at, received_at: it tells the rows
// of this log from those of an earlier incarnation at the same offsets)
// and, for hits, its event time. Each table is asked on its own, as a crash
// may fall between two tables' inserts.
func (s *Store) unstored(ctx context.Context, b Batch) (access, conns [][]Hit, quarantine [][]Quarantined, err error) {
	if len(b.Hits) > 0 {
		where, params, f, l := hitBounds(b.Hits)
		key := func(h *Hit) storedKey {
			return storedKey{h.Source.Offset, h.Ingested.UnixMilli(), h.EventTime.UnixMilli()}
		}
		for _, t := range []struct {
			table string
			out   *[][]Hit
		}{{s.db.Access + ".access_log", &access}, {s.db.Connections + ".connection_records", &conns}} {
			held, err := s.storedKeys(ctx, t.table, "toUnixTimestamp64Milli(ingested_at), toUnixTimestamp64Milli(event_time)", where, params, b.Hits[0].Source, f, l)
			if err != nil {
				return nil, nil, nil, err
			}
			*t.out = missing(b.Hits, held, key)
		}
	}
	if len(b.Quarantine) > 0 {
		where, params, f, l := quarantineBounds(b.Quarantine)
		held, err := s.storedKeys(ctx, s.db.Ops+".quarantine", "toUnixTimestamp64Milli(received_at), toInt64(0)", where, params, b.Quarantine[0].Source, f, l)
		if err != nil {
			return nil, nil, nil, err
		}
		quarantine = missing(b.Quarantine, held, func(q *Quarantined) storedKey { return storedKey{q.Source.Offset, q.Received.UnixMilli(), 0} })
	}
	return access, conns, quarantine, nil
}

// missing returns the rows whose key is not held, as the segments an
// insert takes: none when every row is held.
func missing[T any](rows []T, held map[storedKey]struct{}, key func(*T) storedKey) [][]T {
	rest := rows
	if len(held) > 0 {
		rest = make([]T, 0, len(rows))
		for i := range rows {
			if _, ok := held[key(&rows[i])]; !ok {
				rest = append(rest, rows[i])
			}
		}
	}
	if len(rest) == 0 {
		return nil
	}
	return [][]T{rest}
}

// storedKey is how unstored matches a row: its Kafka offset and two times
// in milliseconds.
type storedKey struct{ offset, t1, t2 int64 }

// storedKeys returns the keys (kafka_offset and the two time expressions
// times) of table's rows from src's topic and partition, offsets first to
// last, that also satisfy where.
func (s *Store) storedKeys(ctx context.Context, table, times, where string, params map[string]string, src Source, first, last int64) (map[storedKey]struct{}, error) {
	where, params = sourceFilter(where, params, src, first, last)
	rows, err := s.conn.Query(chsql.WithParams(ctx, params), "SELECT kafka_offset, "+times+" FROM "+table+" WHERE "+where)
	if err != nil {
		return nil, fmt.Errorf("read stored rows of %s/%d/%d-%d in %s: %w", src.Topic, src.Partition, first, last, table, err)
	}
	defer rows.Close()
	held := map[storedKey]struct{}{}
	for rows.Next() {
		var k storedKey
		if err := rows.Scan(&k.offset, &k.t1, &k.t2); err != nil {
			return nil, fmt.Errorf("read stored rows of %s/%d/%d-%d in %s: %w", src.Topic, src.Partition, first, last, table, err)
		}
		held[k] = struct{}{}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read stored rows of %s/%d/%d-%d in %s: %w", src.Topic, src.Partition, first, last, table, err)
	}
	return held, nil
}

// sourceFilter adds to where, and to a copy of its params, the rows' Kafka
// source: src's topic and partition, offsets first to last.
func sourceFilter(where string, params map[string]string, src Source, first, last int64) (string, map[string]string) {
	params = maps.Clone(params)
	params["t"] = chsql.Escape(src.Topic)
	params["p"] = strconv.FormatInt(int64(src.Partition), 10)
	params["f"] = strconv.FormatInt(first, 10)
	params["l"] = strconv.FormatInt(last, 10)
	return where + " AND kafka_topic = {t:String} AND kafka_partition = {p:Int32} AND kafka_offset BETWEEN {f:Int64} AND {l:Int64}", params
}

func (s *Store) countSource(ctx context.Context, table, where string, params map[string]string, src Source, first, last int64) (int, error) {
	where, params = sourceFilter(where, params, src, first, last)
	var n uint64
	err := s.conn.QueryRow(chsql.WithParams(ctx, params), "SELECT count() FROM "+table+" WHERE "+where).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count stored rows of %s/%d/%d-%d in %s: %w", src.Topic, src.Partition, first, last, table, err)
	}
	return int(n), nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
