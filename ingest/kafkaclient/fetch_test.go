package kafkaclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestFetcherReadsWhatTheReaderReads produces records in batches of every
// compression codec a shipper may use, with values of every size class
// (empty, absent, small, larger than a chunk's quarter), and checks that
// the fetcher returns, message for message, what kafka.Reader returns:
// offsets, values, times and high watermark (the batch digest covers them,
// so a batch recorded before the fetcher must be rebuilt the same).
func TestFetcherReadsWhatTheReaderReads(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "fetch"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	codecs := []kgo.CompressionCodec{kgo.NoCompression(), kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()}
	big := bytes.Repeat([]byte("x"), chunkSize/2)
	n := 0
	for i, codec := range codecs {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ProducerBatchCompression(codec), kgo.DefaultProduceTopic("fetch"), kgo.ProducerLinger(50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		var recs []*kgo.Record
		for j := range 700 {
			v := fmt.Appendf(nil, "codec %d line %d %s", i, j, bytes.Repeat([]byte("a"), j%300))
			switch j % 97 {
			case 0:
				v = nil
			case 1:
				v = []byte{}
			case 2:
				v = big
			}
			recs = append(recs, &kgo.Record{Value: v, Timestamp: time.UnixMilli(1_700_000_000_000 + int64(j))})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		cl.Close()
		n += len(recs)
	}

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: c.ListenAddrs(), Topic: "fetch", Partition: 0, MinBytes: 1, MaxBytes: 4 << 20, MaxWait: time.Second})
	defer func() { _ = r.Close() }()
	var want []kafka.Message
	for len(want) < n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("reader, after %d messages: %v", len(want), err)
		}
		want = append(want, m)
	}

	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	f := NewFetcher(tr, c.ListenAddrs(), "fetch", 0, 64<<10, time.Second, kafka.FirstOffset) // small fetches: many responses, batches cut
	var got []kafka.Message
	for len(got) < n {
		if got, err = f.Fetch(ctx, got); err != nil {
			t.Fatalf("fetcher, after %d messages: %v", len(got), err)
		}
	}
	if len(got) != n {
		t.Fatalf("fetcher read %d messages, the reader %d", len(got), n)
	}
	for i := range want {
		w, g := want[i], got[i]
		if g.Offset != w.Offset || g.Partition != w.Partition || g.Topic != w.Topic || g.HighWaterMark != w.HighWaterMark ||
			!g.Time.Equal(w.Time) || g.Time.Location() != w.Time.Location() || !bytes.Equal(g.Value, w.Value) || (g.Value == nil) != (w.Value == nil) {
			t.Fatalf("message %d: fetcher offset %d time %v hwm %d value %d bytes (nil %t); reader offset %d time %v hwm %d value %d bytes (nil %t)",
				i, g.Offset, g.Time, g.HighWaterMark, len(g.Value), g.Value == nil, w.Offset, w.Time, w.HighWaterMark, len(w.Value), w.Value == nil)
		}
	}

	// The values stay as read while later fetches fill the chunks.
	first := bytes.Clone(got[3].Value)
	f.SetOffset(kafka.FirstOffset)
	if _, err := f.Fetch(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[3].Value, first) {
		t.Fatal("a later fetch overwrote a value already returned")
	}
}

func TestFetcherOffsetOutOfRange(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "fetch"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("fetch"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("one")}, &kgo.Record{Value: []byte("two")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	f := NewFetcher(tr, c.ListenAddrs(), "fetch", 0, 4<<20, time.Second, 50)
	if _, err := f.Fetch(ctx, nil); !errors.Is(err, kafka.OffsetOutOfRange) {
		t.Fatalf("fetch past the end of the log: %v, want OffsetOutOfRange", err)
	}
	f.SetOffset(kafka.FirstOffset)
	msgs, err := f.Fetch(ctx, nil)
	if err != nil || len(msgs) != 2 || string(msgs[1].Value) != "two" || f.Offset() != 2 {
		t.Fatalf("from the first offset: %d messages, next %d, %v", len(msgs), f.Offset(), err)
	}
}

func TestMessageTimeIsTheReaders(t *testing.T) {
	for _, c := range []struct {
		in   time.Time
		want time.Time
	}{
		{time.UnixMilli(-1), time.Time{}},
		{time.Unix(0, 0), time.Time{}},
		{time.UnixMilli(1), time.UnixMilli(1).UTC()},
		{time.UnixMilli(1_700_000_000_123), time.UnixMilli(1_700_000_000_123).UTC()},
	} {
		if got := messageTime(c.in); !got.Equal(c.want) || got.Location() != c.want.Location() || got.IsZero() != c.want.IsZero() {
			t.Errorf("messageTime(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
