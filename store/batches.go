package store

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// BatchRange is a contiguous range of offsets of one Kafka partition that
// ingest writes as one [Batch]: its boundaries are recorded in the intent
// log (ops.ingest_batches) before the batch is written.
type BatchRange struct {
	Group     string
	Topic     string
	Partition int32
	// First and Last are the first and last offsets of the range, inclusive.
	First, Last int64
}

// ID returns the batch's identifier, "topic/partition/first-last", used as
// [Batch.ID] and therefore as the insert deduplication token of every table
// the batch goes to. It does not include the group: two groups writing the
// same topic into one store would store it twice anyway.
func (r BatchRange) ID() string {
	b := make([]byte, 0, len(r.Topic)+32)
	b = append(b, r.Topic...)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(r.Partition), 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, r.First, 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, r.Last, 10)
	return string(b)
}

// RecordBatch appends r to the intent log. Ingest calls it before writing
// the batch, so that whatever happens next, the next owner of the partition
// can rebuild the batch with the same boundaries. It returns once ClickHouse
// acknowledged the row.
func (s *Store) RecordBatch(ctx context.Context, r BatchRange) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.InsertTimeout)
	defer cancel()
	ctx = withParams(ctx, map[string]string{
		"g":  escapeParam(r.Group),
		"t":  escapeParam(r.Topic),
		"p":  strconv.FormatInt(int64(r.Partition), 10),
		"f":  strconv.FormatInt(r.First, 10),
		"l":  strconv.FormatInt(r.Last, 10),
		"at": formatTime(time.Now()),
	})
	err := s.conn.Exec(ctx, "INSERT INTO "+s.db.Ops+".ingest_batches (consumer_group, kafka_topic, kafka_partition, first_offset, last_offset, written_at) "+
		"SELECT {g:String}, {t:String}, {p:Int32}, {f:Int64}, {l:Int64}, {at:DateTime64(3, 'UTC')}")
	if err != nil {
		return fmt.Errorf("record batch %s: %w", r.ID(), err)
	}
	return nil
}

// PendingBatches returns the recorded ranges of a partition whose last
// offset is at or after from (the committed offset: the next offset to
// consume), in order of first offset, each range once. A range that overlaps
// an earlier one is left out: the earlier one is the one rebuilt.
func (s *Store) PendingBatches(ctx context.Context, group, topic string, partition int32, from int64) ([]BatchRange, error) {
	ctx = withParams(ctx, map[string]string{
		"g":    escapeParam(group),
		"t":    escapeParam(topic),
		"p":    strconv.FormatInt(int64(partition), 10),
		"from": strconv.FormatInt(from, 10),
	})
	rows, err := s.conn.Query(ctx, "SELECT DISTINCT first_offset, last_offset FROM "+s.db.Ops+".ingest_batches "+
		"WHERE consumer_group = {g:String} AND kafka_topic = {t:String} AND kafka_partition = {p:Int32} AND last_offset >= {from:Int64} "+
		"ORDER BY first_offset, last_offset")
	if err != nil {
		return nil, fmt.Errorf("read pending batches of %s/%d: %w", topic, partition, err)
	}
	defer rows.Close()
	var out []BatchRange
	for rows.Next() {
		r := BatchRange{Group: group, Topic: topic, Partition: partition}
		if err := rows.Scan(&r.First, &r.Last); err != nil {
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
