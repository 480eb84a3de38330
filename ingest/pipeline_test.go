package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/connlog/connlog/ingest/broker"
	"github.com/connlog/connlog/ingest/kafkaclient"
	"github.com/connlog/connlog/store"
)

// testSink is a Sink that records what it stored and can fail on demand.
// It is a fake on purpose: the tests inject write failures.
type testSink struct {
	mu         sync.Mutex
	failFirst  int // fail this many writes
	writes     int
	failures   int
	hits       map[store.Source]store.Hit
	quarantine map[store.Source]store.Quarantined
	dups       int
	delay      time.Duration
	changed    chan struct{}
	// batches counts the writes by how many batches each carried.
	batches map[int]int
}

func newTestSink() *testSink {
	return &testSink{
		hits:       map[store.Source]store.Hit{},
		quarantine: map[store.Source]store.Quarantined{},
		changed:    make(chan struct{}, 1),
		batches:    map[int]int{},
	}
}

func (s *testSink) Write(ctx context.Context, bs ...store.Batch) error {
	if s.delay > 0 {
		select {
		case <-time.After(s.delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	if s.failures < s.failFirst {
		s.failures++
		s.notify()
		return errors.New("injected failure")
	}
	s.batches[len(bs)]++
	parts := map[int32]bool{}
	for _, b := range bs {
		for _, h := range b.Hits[:min(1, len(b.Hits))] {
			if parts[h.Source.Partition] {
				s.dups++ // two batches of one partition in one write
			}
			parts[h.Source.Partition] = true
		}
		for _, h := range b.Hits {
			if _, ok := s.hits[h.Source]; ok {
				s.dups++
			}
			s.hits[h.Source] = h // a Hit's strings alias its message, which the pipeline does not reuse
		}
		for _, q := range b.Quarantine {
			if _, ok := s.quarantine[q.Source]; ok {
				s.dups++
			}
			s.quarantine[q.Source] = q
		}
	}
	s.notify()
	return nil
}

// preparingSink is a testSink that is a Preparer: it records what it was
// given to prepare, and counts the batches written as prepared (same ID,
// same hits) and the others.
type preparingSink struct {
	*testSink
	prepared                    map[string]int // hits by batch ID, under mu
	writtenPrepared, unprepared int
}

func (s *preparingSink) Prepare(b *store.Batch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prepared[b.ID] = len(b.Hits)
}

func (s *preparingSink) Write(ctx context.Context, bs ...store.Batch) error {
	s.mu.Lock()
	for _, b := range bs {
		if n, ok := s.prepared[b.ID]; ok && n == len(b.Hits) {
			s.writtenPrepared++
		} else {
			s.unprepared++
		}
	}
	s.mu.Unlock()
	return s.testSink.Write(ctx, bs...)
}

func (s *testSink) notify() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *testSink) stored() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.hits) + len(s.quarantine)
}

// waitFor polls cond on every sink change until it holds or the test times out.
func (s *testSink) waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for !cond() {
		select {
		case <-s.changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// testBrokers are the running test brokers by address: the tests pass
// addresses around, and the helpers below look up the broker's identities.
var testBrokers sync.Map // string → *broker.Broker

func testBroker(t testing.TB, brokers []string) *broker.Broker {
	t.Helper()
	b, ok := testBrokers.Load(brokers[0])
	if !ok {
		t.Fatalf("no test broker at %s", brokers[0])
	}
	return b.(*broker.Broker)
}

func startTestBroker(t testing.TB, topic string, partitions int) []string {
	t.Helper()
	return startBroker(t, broker.Config{Addr: "127.0.0.1:0", Topics: []string{topic}, Partitions: partitions, GroupID: "test"}, nil).Addrs()
}

// startBroker starts an embedded broker for the test and registers it for
// the helpers.
func startBroker(t testing.TB, cfg broker.Config, reg prometheus.Registerer) *broker.Broker {
	t.Helper()
	b, err := broker.Start(t.Context(), cfg, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	testBrokers.Store(b.Addrs()[0], b)
	t.Cleanup(func() { b.Close(); testBrokers.Delete(b.Addrs()[0]) })
	return b
}

func publishLines(t testing.TB, brokers []string, topic string, lines []string) {
	t.Helper()
	dst := kafkaclient.PublishConfig{Brokers: brokers, Topic: topic, SASL: testBroker(t, brokers).Shipper()}
	n, err := kafkaclient.Publish(t.Context(), dst, strings.NewReader(strings.Join(lines, "\n")+"\n"))
	if err != nil || n != len(lines) {
		t.Fatalf("Publish = %d, %v; want %d", n, err, len(lines))
	}
}

func testConfig(brokers []string, topic string) Config {
	var sasl kafkaclient.SASL
	if b, ok := testBrokers.Load(brokers[0]); ok {
		sasl = b.(*broker.Broker).Consumer()
	}
	return Config{
		Brokers:         brokers,
		SASL:            sasl,
		Topics:          []string{topic},
		GroupID:         "test",
		BatchRows:       100,
		FlushInterval:   100 * time.Millisecond,
		ShutdownTimeout: 5 * time.Second,
		RetryBackoff:    10 * time.Millisecond,
		MaxRetryBackoff: 50 * time.Millisecond,
	}
}

// runPipeline starts p.Run and returns a function that cancels it and
// returns Run's error.
func runPipeline(t testing.TB, p *Pipeline) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(30 * time.Second):
				err = errors.New("Run did not return")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() && os.Getenv("INGEST_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// realLines returns n lines of the parser's real nginx sample, cycled.
func realLines(t testing.TB, n int) []string {
	t.Helper()
	b, err := os.ReadFile("logline/testdata/access.log")
	if err != nil {
		t.Fatal(err)
	}
	sample := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	var lines []string
	for len(lines) < n {
		for _, l := range sample {
			if len(lines) < n {
				lines = append(lines, l)
			}
		}
	}
	return lines
}

// committedOffsets returns the group's committed offset per partition
// (-1: none), asked from the broker over the wire.
func committedOffsets(t testing.TB, brokers []string, group, topic string, partitions int) []int64 {
	t.Helper()
	parts := make([]int, partitions)
	for i := range parts {
		parts[i] = i
	}
	transport, err := kafkaclient.NewTransport(testBroker(t, brokers).Consumer(), kafkaclient.TLS{})
	if err != nil {
		t.Fatal(err)
	}
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: transport}
	resp, err := c.OffsetFetch(t.Context(), &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int64, partitions)
	for _, p := range resp.Topics[topic] {
		out[p.Partition] = p.CommittedOffset
	}
	return out
}

func sum(xs []int64) (s int64) {
	for _, x := range xs {
		s += max(x, 0)
	}
	return s
}

func TestPipelineStoresEveryLine(t *testing.T) {
	const topic = "nginx"
	brokers := startTestBroker(t, topic, 4)
	lines := realLines(t, 1000)
	publishLines(t, brokers, topic, lines)

	sink := newTestSink()
	reg := prometheus.NewRegistry()
	p, err := New(testConfig(brokers, topic), sink, reg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	stop := runPipeline(t, p)
	sink.waitFor(t, "all lines stored", func() bool { return sink.stored() == len(lines) })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if sink.dups != 0 || len(sink.quarantine) != 0 {
		t.Errorf("%d duplicates, %d quarantined; want none", sink.dups, len(sink.quarantine))
	}
	for src, h := range sink.hits {
		if src.Topic != topic || !h.PeerIP.IsValid() || h.Ingested.IsZero() || h.EventTime.IsZero() {
			t.Fatalf("bad hit %+v", h)
		}
	}
	if got := sum(committedOffsets(t, brokers, "test", topic, 4)); got != int64(len(lines)) {
		t.Errorf("committed offsets sum to %d, want %d", got, len(lines))
	}
	if got := metricValue(t, reg, "connlog_ingest_lines_total", "topic", topic, "result", "stored"); got != float64(len(lines)) {
		t.Errorf("connlog_ingest_lines_total{result=stored} = %v, want %d", got, len(lines))
	}
	for part := range 4 {
		if got := metricValue(t, reg, "connlog_ingest_committed_offset", "topic", topic, "partition", fmt.Sprint(part)); got < 1 {
			t.Errorf("connlog_ingest_committed_offset{partition=%d} = %v, want > 0", part, got)
		}
	}
}

// TestPartitionsBatchesAreWrittenTogether: under a backlog, the batches of
// the partitions an instance consumes go to the sink together (a write
// round), at most one per partition in a write, each committed.
func TestPartitionsBatchesAreWrittenTogether(t *testing.T) {
	const topic, partitions = "nginx", 4
	brokers := startTestBroker(t, topic, partitions)
	lines := realLines(t, 40000)
	publishLines(t, brokers, topic, lines)

	sink := &preparingSink{testSink: newTestSink(), prepared: map[string]int{}}
	sink.delay = 5 * time.Millisecond // a write takes time, as the engine's does
	cfg := testConfig(brokers, topic)
	cfg.BatchRows = 500
	p, err := New(cfg, sink, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	stop := runPipeline(t, p)
	sink.waitFor(t, "all lines stored", func() bool { return sink.stored() == len(lines) })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	batches, together := 0, 0
	for n, k := range sink.batches {
		batches += n * k
		if n > 1 {
			together += n * k
		}
	}
	t.Logf("writes by batches carried: %v", sink.batches)
	if sink.dups != 0 {
		t.Errorf("%d duplicates (or two batches of one partition in one write)", sink.dups)
	}
	if together*4 < batches*3 {
		t.Errorf("%d of %d batches went with other partitions' batches, want three quarters at least", together, batches)
	}
	if sink.unprepared != 0 || sink.writtenPrepared != batches {
		t.Errorf("%d batches written as prepared, %d not (or changed since), of %d", sink.writtenPrepared, sink.unprepared, batches)
	}
	if got := sum(committedOffsets(t, brokers, "test", topic, partitions)); got != int64(len(lines)) {
		t.Errorf("committed offsets sum to %d, want %d", got, len(lines))
	}
}

func TestPipelineRetriesFailingSinkBeforeCommitting(t *testing.T) {
	const topic = "nginx"
	brokers := startTestBroker(t, topic, 2)
	lines := realLines(t, 300)
	publishLines(t, brokers, topic, lines)

	sink := newTestSink()
	sink.failFirst = 1 << 30 // until released below
	cfg := testConfig(brokers, topic)
	cfg.BatchRows = 1000 // one batch
	cfg.FlushInterval = 500 * time.Millisecond
	cfg.RetryBackoff = 100 * time.Millisecond
	cfg.MaxRetryBackoff = 200 * time.Millisecond
	reg := prometheus.NewRegistry()
	p, err := New(cfg, sink, reg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	stop := runPipeline(t, p)
	sink.waitFor(t, "three failed writes", func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return sink.failures >= 3
	})
	// The sink fails until released: asking the broker for the committed
	// offsets (a SASL login each time) cannot race the first success.
	if got := committedOffsets(t, brokers, "test", topic, 2); sum(got) != 0 {
		t.Fatalf("offsets %v committed while the sink fails", got)
	}
	sink.mu.Lock()
	sink.failFirst = sink.failures // release: the next write succeeds
	failures := sink.failures
	sink.mu.Unlock()
	sink.waitFor(t, "all lines stored", func() bool { return sink.stored() == len(lines) })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if sink.dups != 0 || sink.failures != failures {
		t.Errorf("dups=%d failures=%d; want 0 and %d", sink.dups, sink.failures, failures)
	}
	if got := sum(committedOffsets(t, brokers, "test", topic, 2)); got != int64(len(lines)) {
		t.Errorf("committed %d, want %d", got, len(lines))
	}
	if got := metricValue(t, reg, "connlog_ingest_write_retries_total"); got != float64(failures) {
		t.Errorf("connlog_ingest_write_retries_total = %v, want %d (one per failed write)", got, failures)
	}
}

func TestPipelineSinkDownAtShutdownCommitsNothing(t *testing.T) {
	const topic = "nginx"
	brokers := startTestBroker(t, topic, 1)
	publishLines(t, brokers, topic, realLines(t, 50))

	sink := newTestSink()
	sink.failFirst = 1 << 30
	cfg := testConfig(brokers, topic)
	cfg.ShutdownTimeout = 300 * time.Millisecond
	p, err := New(cfg, sink, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	stop := runPipeline(t, p)
	sink.waitFor(t, "a failed write", func() bool { sink.mu.Lock(); defer sink.mu.Unlock(); return sink.failures > 0 })
	if err := stop(); err == nil {
		t.Fatal("Run returned nil although the last batch was not written")
	}
	if got := committedOffsets(t, brokers, "test", topic, 1); got[0] != -1 {
		t.Errorf("committed %v, want nothing", got)
	}
}

func TestPipelineRestartResumesAfterLastCommit(t *testing.T) {
	const topic = "nginx"
	brokers := startTestBroker(t, topic, 4)
	lines := realLines(t, 3000)
	publishLines(t, brokers, topic, lines)

	sink := newTestSink()
	sink.delay = 20 * time.Millisecond // slow enough to stop mid-run
	cfg := testConfig(brokers, topic)
	p1, err := New(cfg, sink, prometheus.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	stop := runPipeline(t, p1)
	sink.waitFor(t, "some lines stored", func() bool { return sink.stored() >= 500 })
	if err := stop(); err != nil {
		t.Fatalf("first Run: %v", err)
	}
	first := sink.stored()
	if first >= len(lines) {
		t.Fatalf("first run stored everything (%d); the test needs a mid-run stop", first)
	}
	if got := sum(committedOffsets(t, brokers, "test", topic, 4)); got != int64(first) {
		t.Errorf("after drain, committed %d, stored %d: want equal", got, first)
	}

	sink.delay = 0
	p2, err := New(cfg, sink, prometheus.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	stop = runPipeline(t, p2)
	sink.waitFor(t, "all lines stored", func() bool { return sink.stored() == len(lines) })
	if err := stop(); err != nil {
		t.Fatalf("second Run: %v", err)
	}
	if sink.dups != 0 {
		t.Errorf("%d lines stored twice", sink.dups)
	}
	t.Logf("first run stored %d of %d", first, len(lines))
}

func TestPipelineQuarantinesBadLinesWithoutBlocking(t *testing.T) {
	const topic = "nginx"
	brokers := startTestBroker(t, topic, 1)
	good := realLines(t, 20)
	lines := append([]string{}, good[:10]...)
	lines = append(lines,
		"garbage",
		`1.2.3.4 - - [07/Dec/2016:11:05:07 +0000] "GET /`+strings.Repeat("a", 2000)+` HTTP/1.1" 200 5`,
		"\x00\x01\x02\xff binary",
	)
	lines = append(lines, good[10:]...)
	publishLines(t, brokers, topic, lines)

	sink := newTestSink()
	cfg := testConfig(brokers, topic)
	cfg.MaxLineBytes = 1024
	cfg.BatchRows = 4 // several batches: the pipeline reuses its batch slices
	reg := prometheus.NewRegistry()
	p, err := New(cfg, sink, reg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	stop := runPipeline(t, p)
	sink.waitFor(t, "all messages handled", func() bool { return sink.stored() == len(lines) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if len(sink.hits) != 20 || len(sink.quarantine) != 3 {
		t.Fatalf("%d hits, %d quarantined; want 20 and 3", len(sink.hits), len(sink.quarantine))
	}
	// Hits alias their message's bytes: after many batches they must still
	// read their own line (kafka-go gives each message its own Value).
	for src, h := range sink.hits {
		line := lines[src.Offset]
		if !strings.Contains(line, h.Path) || !strings.Contains(line, h.UserAgent) || h.Path == "" {
			t.Errorf("offset %d: path %q / user agent %q do not come from its line", src.Offset, h.Path, h.UserAgent)
		}
	}
	wantReason := map[int64]string{10: "time_local", 11: "exceeds max_line_bytes 1024", 12: "binary data"}
	for src, q := range sink.quarantine {
		if !strings.Contains(q.Reason, wantReason[src.Offset]) || string(q.Raw) != lines[src.Offset] || q.Received.IsZero() {
			t.Errorf("offset %d: reason %q, raw %.20q; want reason containing %q and the raw line", src.Offset, q.Reason, q.Raw, wantReason[src.Offset])
		}
	}
	if got := committedOffsets(t, brokers, "test", topic, 1); got[0] != int64(len(lines)) {
		t.Errorf("committed %v, want %d", got, len(lines))
	}
	if got := metricValue(t, reg, "connlog_ingest_lines_total", "topic", topic, "result", "quarantined"); got != 3 {
		t.Errorf("quarantined counter = %v, want 3", got)
	}
}

func TestConfigValidate(t *testing.T) {
	err := Config{BatchRows: -1, Topics: []string{""}, Format: "xml"}.Validate()
	for _, want := range []string{"topics[0]", "batch_rows", "unknown log format"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want a problem about %s", err, want)
		}
	}
	if err := (Config{Brokers: []string{"k:9092"}, Topics: []string{"t"}}).Validate(); err != nil {
		t.Errorf("minimal config: %v", err)
	}
	if _, err := New(Config{}, newTestSink(), nil, nil); err == nil {
		t.Error("New accepted an empty config")
	}
	if _, err := New(Config{Topics: []string{"t"}}, newTestSink(), nil, nil); err == nil || !strings.Contains(err.Error(), "brokers") {
		t.Errorf("New without brokers: %v, want a problem about brokers", err)
	}
	c := Config{}.withDefaults()
	if c.GroupID != "connlog" || c.BatchRows != 25000 || c.BatchBytes != 16<<20 || c.FlushInterval != time.Second ||
		c.MaxLineBytes != 64<<10 || c.ShutdownTimeout != 10*time.Second {
		t.Errorf("defaults: %+v", c)
	}
}

func ExamplePublish() {
	ctx := context.Background()
	b, err := broker.Start(ctx, broker.Config{Addr: "127.0.0.1:0", Topics: []string{"nginx"}, Partitions: 1}, nil, nil)
	if err != nil {
		panic(err)
	}
	defer b.Close()
	dst := kafkaclient.PublishConfig{Brokers: b.Addrs(), Topic: "nginx", SASL: b.Shipper()}
	n, err := kafkaclient.Publish(ctx, dst, strings.NewReader(
		`203.0.113.7 - - [07/Dec/2016:11:05:07 +0100] "GET /ocelot HTTP/1.1" 200 571 "-" "curl/8.0"`+"\n"))
	fmt.Println(n, err)
	// Output: 1 <nil>
}

// metricValue gathers reg and returns the value of the counter or gauge
// name with the given label pairs, failing the test if it is absent.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, labelPairs ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labelPairs); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labelPairs[i] && lp.GetValue() == labelPairs[i+1] {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("metric %s%v not found", name, labelPairs)
	return 0
}

// TestBrokerDefaultGroupIsThePipelines: the embedded broker honours the
// commits of the group the pipeline uses by default.
func TestBrokerDefaultGroupIsThePipelines(t *testing.T) {
	if DefaultGroupID != broker.DefaultGroupID {
		t.Errorf("ingest.DefaultGroupID %q, broker.DefaultGroupID %q", DefaultGroupID, broker.DefaultGroupID)
	}
}
