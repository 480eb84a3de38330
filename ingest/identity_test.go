package ingest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/connlog/connlog/ingest/broker"
	"github.com/connlog/connlog/ingest/kafkaclient"
	"github.com/connlog/connlog/store"
)

// These tests replace the log behind a topic (deleted and created again,
// offsets from 0 again) or rewind the consumer group, on kfake over the wire
// and the embedded ClickHouse: every line published must be stored exactly
// once, counted by rows and by distinct content, and the stored metric must
// count what the engine did not hold yet.

// contentCounts returns count() and the number of distinct request paths
// (each generated line has its own) of the access log and the connection
// records.
func contentCounts(t testing.TB, st *store.Store) (accessRows, accessDistinct, connRows uint64) {
	t.Helper()
	db := st.Databases()
	ctx := context.WithoutCancel(t.Context())
	if err := st.Conn().QueryRow(ctx, "SELECT count(), uniqExact(path) FROM "+db.Access+".access_log").Scan(&accessRows, &accessDistinct); err != nil {
		t.Fatal(err)
	}
	if err := st.Conn().QueryRow(ctx, "SELECT count() FROM "+db.Connections+".connection_records").Scan(&connRows); err != nil {
		t.Fatal(err)
	}
	return accessRows, accessDistinct, connRows
}

// waitContent waits until the access log holds want distinct lines.
func waitContent(t testing.TB, st *store.Store, want uint64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, d, _ := contentCounts(t, st)
		if d >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("access log holds %d distinct lines after %s, want %d", d, timeout, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func assertContentOnce(t testing.TB, st *store.Store, want uint64) {
	t.Helper()
	rows, distinct, conn := contentCounts(t, st)
	if rows != want || distinct != want || conn != want {
		t.Errorf("access log %d rows, %d distinct lines, connection records %d rows; want %d of each", rows, distinct, conn, want)
	}
}

func storedMetric(p *Pipeline, topic, result string) float64 {
	return testutil.ToFloat64(p.m.lines.WithLabelValues(topic, result))
}

func TestTopicRecreatedStoresEveryLineOnce(t *testing.T) {
	const topic, partitions, first, second = "nginx", 2, 600, 400
	for _, tc := range []struct {
		name string
		// incarnation: the pipeline knows the topic ID (embedded broker);
		// without it only the content digest tells the logs apart.
		incarnation, restart bool
	}{
		{"topic ID, pipeline running", true, false},
		{"topic ID, pipeline restarted", true, true},
		{"digest only, pipeline running", false, false},
		{"digest only, pipeline restarted", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t, broker.Config{Addr: "127.0.0.1:0", Topics: []string{topic}, Partitions: partitions, GroupID: "test"}, nil)
			st := openTestStore(t)
			cfg := testConfig(b.Addrs(), topic)
			var opts []Option
			if tc.incarnation {
				opts = append(opts, Incarnations(b.TopicIncarnation))
			}
			newPipeline := func() *Pipeline {
				p, err := New(cfg, st, nil, testLogger(t), opts...)
				if err != nil {
					t.Fatal(err)
				}
				return p
			}
			lines := genCombined(first + second)
			p1 := newPipeline()
			stop1 := runPipeline(t, p1)
			publishLines(t, b.Addrs(), topic, lines[:first])
			waitContent(t, st, first, 60*time.Second)
			before := b.TopicIncarnation(topic)

			p2 := p1
			if tc.restart {
				if err := stop1(); err != nil {
					t.Fatal(err)
				}
			}
			// The same offsets again, other lines.
			if err := b.Cluster().DeleteTopic(topic); err != nil {
				t.Fatal(err)
			}
			if err := b.Cluster().CreateTopic(topic, partitions, nil); err != nil {
				t.Fatal(err)
			}
			if after := b.TopicIncarnation(topic); after == before || after == "" {
				t.Fatalf("topic incarnation %q after re-creation, %q before", after, before)
			}
			publishLines(t, b.Addrs(), topic, lines[first:])
			if tc.restart {
				p2 = newPipeline()
				runPipeline(t, p2)
			}
			waitContent(t, st, first+second, 90*time.Second)
			time.Sleep(500 * time.Millisecond) // a replayed batch would land now
			assertContentOnce(t, st, first+second)
			got := storedMetric(p1, topic, "stored")
			if tc.restart {
				got += storedMetric(p2, topic, "stored")
			}
			if got != first+second {
				t.Errorf("stored metric %v, want %d", got, first+second)
			}
			if n := storedMetric(p2, topic, "already_stored"); n != 0 {
				t.Errorf("already_stored %v, want 0: no line was stored twice", n)
			}
		})
	}
}

// TestConsumerGroupResetStoresOnce resets the consumer group to the earliest
// offsets, as kafka-consumer-groups --reset-offsets does (an offset commit
// outside any generation): the next run consumes everything again, rebuilds the
// recorded batches with their boundaries and digests, and the engine drops
// them as duplicates, counted apart from stored.
func TestConsumerGroupResetStoresOnce(t *testing.T) {
	const topic, partitions, n = "nginx", 2, 1000
	b := startBroker(t, broker.Config{Addr: "127.0.0.1:0", Topics: []string{topic}, Partitions: partitions, GroupID: "test"}, nil)
	st := openTestStore(t)
	cfg := testConfig(b.Addrs(), topic)
	publishLines(t, b.Addrs(), topic, genCombined(n))

	p1, err := New(cfg, st, nil, testLogger(t), Incarnations(b.TopicIncarnation))
	if err != nil {
		t.Fatal(err)
	}
	stop1 := runPipeline(t, p1)
	waitContent(t, st, n, 60*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for sum(committedOffsets(t, b.Addrs(), cfg.GroupID, topic, partitions)) != n && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if err := stop1(); err != nil {
		t.Fatal(err)
	}
	transport, err := kafkaclient.NewTransport(b.Consumer(), kafkaclient.TLS{})
	if err != nil {
		t.Fatal(err)
	}
	c := &kafka.Client{Addr: kafka.TCP(b.Addrs()...), Transport: transport}
	reset := &kafka.OffsetCommitRequest{GroupID: cfg.GroupID, GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{}}
	for p := range partitions {
		reset.Topics[topic] = append(reset.Topics[topic], kafka.OffsetCommit{Partition: p, Offset: 0})
	}
	resp, err := c.OffsetCommit(t.Context(), reset)
	if err != nil {
		t.Fatalf("reset the group: %v", err)
	}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			t.Fatalf("reset partition %d: %v", p.Partition, p.Error)
		}
	}
	if got := sum(committedOffsets(t, b.Addrs(), cfg.GroupID, topic, partitions)); got != 0 {
		t.Fatalf("committed offsets sum to %d after the reset, want 0", got)
	}

	p2, err := New(cfg, st, nil, testLogger(t), Incarnations(b.TopicIncarnation))
	if err != nil {
		t.Fatal(err)
	}
	runPipeline(t, p2)
	deadline = time.Now().Add(60 * time.Second)
	for sum(committedOffsets(t, b.Addrs(), cfg.GroupID, topic, partitions)) != n {
		if time.Now().After(deadline) {
			t.Fatal("the reset group did not consume the topic again")
		}
		time.Sleep(50 * time.Millisecond)
	}
	assertContentOnce(t, st, n)
	if got := storedMetric(p1, topic, "stored"); got != n {
		t.Errorf("first run: stored %v, want %d", got, n)
	}
	if got := storedMetric(p2, topic, "stored"); got != 0 {
		t.Errorf("after the reset: stored %v, want 0 (every row was already held)", got)
	}
	if got := storedMetric(p2, topic, "already_stored"); got != n {
		t.Errorf("after the reset: already_stored %v, want %d", got, n)
	}
}

// TestBatchIDNamesData: the same range of another log, or with another
// digest, is another batch; a range recorded without a digest keeps the ID
// an earlier version gave it.
func TestBatchIDNamesData(t *testing.T) {
	r := store.BatchRange{Topic: "nginx", Partition: 3, First: 0, Last: 11}
	if got := r.ID(); got != "nginx/3/0-11" {
		t.Errorf("legacy ID %q", got)
	}
	a := r
	a.Incarnation, a.Digest = "aa", "0123456789abcdef0123"
	b := a
	b.Incarnation = "bb"
	c := a
	c.Digest = "fedcba9876543210"
	ids := map[string]bool{r.ID(): true}
	for _, x := range []store.BatchRange{a, b, c} {
		if ids[x.ID()] {
			t.Errorf("ID %q repeats", x.ID())
		}
		ids[x.ID()] = true
	}
	if got, want := a.ID(), fmt.Sprintf("nginx/3/0-11/aa/%s", a.Digest[:16]); got != want {
		t.Errorf("ID %q, want %q", got, want)
	}
}

// TestQuarantineIsMinimised: a line that cannot be parsed is kept in
// quarantine with its secrets redacted, as a parsed one would have been.
func TestQuarantineIsMinimised(t *testing.T) {
	const topic = "nginx"
	brokers := startTestBroker(t, topic, 1)
	st := openTestStore(t)
	p, err := New(testConfig(brokers, topic), st, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	runPipeline(t, p)
	publishLines(t, brokers, topic, []string{
		`not a log line GET /login?user=bob&password=hunter2 "https://bob:pw@ref.example/?api_key=k1"`,
	})
	db := st.Databases()
	waitRows(t, st, db.Ops+".quarantine", 1, 60*time.Second)
	var raw string
	if err := st.Conn().QueryRow(t.Context(), "SELECT raw FROM "+db.Ops+".quarantine").Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if want := `not a log line GET /login?user=bob&password=REDACTED "https://bob:REDACTED@ref.example/?api_key=REDACTED"`; raw != want {
		t.Errorf("quarantined raw line\n %s\nwant %s", raw, want)
	}
}

// BenchmarkBatchAdd measures the batcher's work per message on the hot
// path: the line parsed into the batch, and the message hashed into the
// batch's digest (its identity). Compare with and without the digest with
//
//	go test ./ingest -run '^$' -bench BatchAdd -benchmem -cpu 1 -count 6 | benchstat -
func BenchmarkBatchAdd(b *testing.B) {
	p, err := New(Config{Brokers: []string{"127.0.0.1:1"}, Topics: []string{"nginx"}, GroupID: "bench"}, nopSink{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	lines := genCombined(1000)
	msgs := make([]kafka.Message, len(lines))
	var size int
	for i, l := range lines {
		msgs[i] = kafka.Message{Topic: "nginx", Offset: int64(i), Value: []byte(l), Time: time.Now()}
		size += len(l)
	}
	var bt batch
	bt.reset()
	b.SetBytes(int64(size / len(lines)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(msgs) {
			bt.reset()
			i = 0
		}
		p.add(&bt, msgs[i])
		i++
	}
}

type nopSink struct{}

func (nopSink) Write(context.Context, ...store.Batch) error { return nil }
