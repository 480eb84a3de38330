package kafkaclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/segmentio/kafka-go"
)

// Fetcher reads one partition with kafka-go's protocol-level Client.Fetch
// rather than a kafka.Reader: ingest reads every partition it is assigned
// with one, and bench/e2e's Kafka floor measures it alone. A Reader
// allocates each message's value on its own and hands every message from
// a goroutine of its own over a channel; reading the bench's million lines
// that way cost 1.94-2.04 µs of CPU per line, against 1.21-1.40 µs with a
// Fetcher (the Kafka floor, BENCHMARKS.md). The messages it returns are the
// Reader's: same offsets, values, times (kafka-go's conversion, see
// messageTime) and high watermark, so a batch recorded before the change
// is rebuilt with the same digest.
type Fetcher struct {
	client    *kafka.Client
	topic     string
	partition int
	maxBytes  int
	maxWait   time.Duration
	// next is the offset of the next message; kafka.FirstOffset or
	// kafka.LastOffset until resolved.
	next int64
	// chunk is where values are copied, shared by the messages of one or
	// more fetches (one allocation per chunkSize bytes, not per message);
	// a chunk stays alive while a message or a row of a batch holds it.
	chunk []byte
}

// chunkSize is the size of the chunks values are copied into: a few
// thousand lines, so that a chunk a quarantined line still holds pins
// little.
const chunkSize = 1 << 20

// NewFetcher reads partition of topic from offset, through t to the
// cluster of the bootstrap brokers.
func NewFetcher(t *kafka.Transport, brokers []string, topic string, partition, maxBytes int, maxWait time.Duration, offset int64) *Fetcher {
	return &Fetcher{client: &kafka.Client{Addr: kafka.TCP(brokers...), Transport: t}, topic: topic, partition: partition, maxBytes: maxBytes, maxWait: maxWait, next: offset}
}

// SetOffset makes offset the next one read (kafka.FirstOffset: the first the
// log holds).
func (f *Fetcher) SetOffset(offset int64) { f.next = offset }

// Offset is the offset of the next message read (negative: not resolved
// yet).
func (f *Fetcher) Offset() int64 { return f.next }

// Fetch appends to out the messages of one fetch from the next offset on,
// waiting up to maxWait for at least one, and moves past them. An offset
// past either end of the log is an error wrapping kafka.OffsetOutOfRange.
func (f *Fetcher) Fetch(ctx context.Context, out []kafka.Message) ([]kafka.Message, error) {
	if f.next < 0 {
		if err := f.resolve(ctx); err != nil {
			return out, err
		}
	}
	res, err := f.client.Fetch(ctx, &kafka.FetchRequest{
		Topic: f.topic, Partition: f.partition, Offset: f.next,
		MinBytes: 1, MaxBytes: int64(f.maxBytes), MaxWait: f.maxWait,
	})
	if err != nil {
		return out, err
	}
	if res.Error != nil {
		return out, res.Error
	}
	for {
		rec, err := res.Records.ReadRecord()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("read fetched records at offset %d: %w", f.next, err)
		}
		if rec.Offset < f.next {
			// A compressed batch comes whole, from its first offset.
			continue
		}
		v, err := f.value(rec.Value)
		if err != nil {
			return out, fmt.Errorf("read the value at offset %d: %w", rec.Offset, err)
		}
		out = append(out, kafka.Message{
			Topic: f.topic, Partition: f.partition, Offset: rec.Offset,
			HighWaterMark: res.HighWatermark, Value: v, Time: messageTime(rec.Time),
		})
		f.next = rec.Offset + 1
	}
}

// resolve turns a next offset of kafka.FirstOffset or kafka.LastOffset into
// the partition's.
func (f *Fetcher) resolve(ctx context.Context) error {
	res, err := f.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
		Topics: map[string][]kafka.OffsetRequest{f.topic: {{Partition: f.partition, Timestamp: f.next}}},
	})
	if err != nil {
		return fmt.Errorf("list offsets: %w", err)
	}
	for _, po := range res.Topics[f.topic] {
		if po.Partition != f.partition {
			continue
		}
		if po.Error != nil {
			return fmt.Errorf("list offsets: %w", po.Error)
		}
		if f.next == kafka.FirstOffset {
			f.next = po.FirstOffset
		} else {
			f.next = po.LastOffset
		}
		return nil
	}
	return fmt.Errorf("list offsets: no answer for partition %d", f.partition)
}

// value copies v into the current chunk, starting another when it is full;
// nil for a record without a value or with an empty one, as the Reader
// gives both.
func (f *Fetcher) value(v kafka.Bytes) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	n := v.Len()
	if n == 0 {
		return nil, nil
	}
	if n > chunkSize/4 {
		// A large value gets its own allocation rather than most of a
		// chunk.
		b := make([]byte, n)
		_, err := io.ReadFull(v, b)
		return b, err
	}
	if cap(f.chunk)-len(f.chunk) < n {
		f.chunk = make([]byte, 0, chunkSize)
	}
	start := len(f.chunk)
	f.chunk = f.chunk[:start+n]
	b := f.chunk[start : start+n : start+n]
	_, err := io.ReadFull(v, b)
	return b, err
}

// messageTime is a record's time as kafka.Reader gives it: none for a
// timestamp of zero or less, else the millisecond in UTC (kafka-go's
// makeTime; the protocol package keeps negative timestamps and the local
// zone). The batch digest covers it (ingest.Pipeline.add).
func messageTime(t time.Time) time.Time {
	ms := t.UnixMilli()
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
