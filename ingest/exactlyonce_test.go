package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/embedded/embeddedtest"
	"github.com/connlog/connlog/store/storetest"
)

// These tests run the pipeline against kfake over the Kafka protocol and
// the embedded ClickHouse, and count what the tables hold.

// openTestStore returns a migrated store in databases of its own.
func openTestStore(t testing.TB) *store.Store {
	t.Helper()
	return storetest.New(t)
}

// genCombined returns n distinct combined lines with recent request times
// (the tables have TTLs), the client address encoding the line number.
func genCombined(n int) []string {
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	methods := []string{"GET", "POST", "PUT", "DELETE", "HEAD"}
	out := make([]string, n)
	for i := range out {
		t := base.Add(time.Duration(i%3600) * time.Second)
		out[i] = fmt.Sprintf(`10.%d.%d.%d - - [%s] "%s /p/%d?q=%d HTTP/1.1" %d %d "-" "Mozilla/5.0 (test %d)"`,
			i/65536%256, i/256%256, i%256, t.Format("02/Jan/2006:15:04:05 -0700"), methods[i%len(methods)], i, i, 200+i%5, i*7, i)
	}
	return out
}

// tableCounts returns count() and the number of distinct (partition, offset)
// of a table.
func tableCounts(t testing.TB, st *store.Store, table string) (rows, distinct uint64) {
	t.Helper()
	row := st.Conn().QueryRow(context.WithoutCancel(t.Context()), "SELECT count(), uniqExact(kafka_partition, kafka_offset) FROM "+table)
	if err := row.Scan(&rows, &distinct); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return rows, distinct
}

// waitRows waits until table holds at least want distinct offsets.
func waitRows(t testing.TB, st *store.Store, table string, want uint64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, d := tableCounts(t, st, table)
		if d >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d distinct offsets after %s, want %d", table, d, timeout, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// assertExactlyOnce checks that each data table holds want rows, one per offset.
func assertExactlyOnce(t testing.TB, st *store.Store, want uint64) {
	t.Helper()
	db := st.Databases()
	for _, table := range []string{db.Access + ".access_log", db.Connections + ".connection_records"} {
		rows, distinct := tableCounts(t, st, table)
		if rows != want || distinct != want {
			t.Errorf("%s: %d rows, %d distinct offsets; want %d of each", table, rows, distinct, want)
		}
	}
}

// faultySink wraps the real store to inject failures: it implements Journal
// by delegating, so the pipeline uses the intent log.
type faultySink struct {
	st *store.Store
	// before returns an error to fail a write before it reaches the store.
	before func() error
	// after returns an error to fail a write after the store acknowledged
	// it: a timeout or a lost connection after the commit.
	after  func() error
	writes atomic.Int64
	// rounds counts the writes of several partitions' batches at once.
	rounds atomic.Int64
}

func (s *faultySink) Write(ctx context.Context, bs ...store.Batch) error {
	if s.before != nil {
		if err := s.before(); err != nil {
			return err
		}
	}
	if err := s.st.Write(ctx, bs...); err != nil {
		return err
	}
	s.writes.Add(1)
	if len(bs) > 1 {
		s.rounds.Add(1)
	}
	if s.after != nil {
		return s.after()
	}
	return nil
}

func (s *faultySink) RecordBatches(ctx context.Context, rs ...store.BatchRange) error {
	if s.before != nil {
		if err := s.before(); err != nil {
			return err
		}
	}
	return s.st.RecordBatches(ctx, rs...)
}

func (s *faultySink) PendingBatches(ctx context.Context, group, topic string, partition int32, from int64, incarnation string) ([]store.BatchRange, error) {
	return s.st.PendingBatches(ctx, group, topic, partition, from, incarnation)
}

func (s *faultySink) StoredRows(ctx context.Context, b store.Batch) (int, int, error) {
	return s.st.StoredRows(ctx, b)
}

// TestCrashBetweenInsertAndCommitStoresOnce simulates a process that dies
// after ClickHouse stored a batch but before the offset was committed (and
// with more recorded batches in flight on other partitions), then a new
// process with different batch limits: it must rebuild the recorded batches
// with their boundaries so the store drops the repeated inserts.
func TestCrashBetweenInsertAndCommitStoresOnce(t *testing.T) {
	const topic, n = "nginx", 20000
	brokers := startTestBroker(t, topic, 4)
	publishLines(t, brokers, topic, genCombined(n))
	st := openTestStore(t)

	var crashed atomic.Bool
	sink := &faultySink{st: st}
	sink.after = func() error {
		if sink.writes.Load() >= 7 {
			crashed.Store(true)
			return errors.New("simulated crash: connection lost after the insert")
		}
		return nil
	}
	sink.before = func() error {
		if crashed.Load() {
			return errors.New("simulated crash: process dead")
		}
		return nil
	}
	cfg := testConfig(brokers, topic)
	cfg.BatchRows = 700
	cfg.ShutdownTimeout = time.Second
	p1, err := New(cfg, sink, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	stop := runPipeline(t, p1)
	deadline := time.Now().Add(60 * time.Second)
	for !crashed.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !crashed.Load() {
		t.Fatal("no crash simulated")
	}
	if sink.rounds.Load() == 0 {
		t.Fatal("no write round held several partitions' batches: the rebuild would not have to find rows stored under another token")
	}
	time.Sleep(300 * time.Millisecond) // let other partitions record and fail their batches
	if err := stop(); err == nil {
		t.Error("first Run returned nil although its last batches were not acknowledged")
	}
	db := st.Databases()
	_, before := tableCounts(t, st, db.Access+".access_log")

	cfg.BatchRows = 1900 // different limits: only the intent log gives the same boundaries
	cfg.FlushInterval = 30 * time.Millisecond
	reg := prometheus.NewRegistry()
	p2, err := New(cfg, st, reg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	stop = runPipeline(t, p2)
	waitRows(t, st, db.Access+".access_log", n, 60*time.Second)
	waitRows(t, st, db.Connections+".connection_records", n, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatalf("second Run: %v", err)
	}
	assertExactlyOnce(t, st, n)
	rebuilt := metricValue(t, reg, "connlog_ingest_rebuilt_batches_total")
	if rebuilt < 1 {
		t.Errorf("connlog_ingest_rebuilt_batches_total = %v, want at least the batch stored before the crash", rebuilt)
	}
	t.Logf("before restart: %d lines stored; after: %d batches rebuilt from the intent log", before, int(rebuilt))
}

// TestClickHouseUnavailableLosesNothingStoresOnce makes the embedded engine
// refuse every insert for a while mid-run, and then fails some writes after
// ClickHouse stored them (a timeout after the commit): no loss, no
// duplicate, and the fetch queue never exceeds its bound.
func TestClickHouseUnavailableLosesNothingStoresOnce(t *testing.T) {
	const topic, n, partitions = "nginx", 30000, 4
	engine, _ := embeddedtest.StartEngine(t)
	brokers := startTestBroker(t, topic, partitions)
	publishLines(t, brokers, topic, genCombined(n))
	st := openTestStore(t)

	var inserts atomic.Int64
	var refuseUntil atomic.Int64 // unix nanos
	engine.SetInsertFault(func(query string) error {
		if !strings.Contains(query, st.Databases().Access) && !strings.Contains(query, st.Databases().Ops) && !strings.Contains(query, st.Databases().Connections) {
			return nil // another test's database
		}
		k := inserts.Add(1)
		if k == 20 {
			refuseUntil.Store(time.Now().Add(2 * time.Second).UnixNano())
		}
		if time.Now().UnixNano() < refuseUntil.Load() {
			return errors.New("injected: ClickHouse unavailable")
		}
		return nil
	})
	t.Cleanup(func() { engine.SetInsertFault(nil) })

	var afterFaults atomic.Int64
	sink := &faultySink{st: st, after: func() error {
		if afterFaults.Load() < 5 && time.Now().UnixNano()%3 == 0 {
			afterFaults.Add(1)
			return errors.New("injected: timeout after ClickHouse committed the insert")
		}
		return nil
	}}
	cfg := testConfig(brokers, topic)
	cfg.BatchRows = 500
	cfg.QueueMessages = 200
	reg := prometheus.NewRegistry()
	p, err := New(cfg, sink, reg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	var maxQueued float64
	samplerDone := make(chan struct{})
	sampleCtx, stopSampler := context.WithCancel(t.Context())
	go func() {
		defer close(samplerDone)
		for sampleCtx.Err() == nil {
			maxQueued = max(maxQueued, metricValue(t, reg, "connlog_ingest_queued_messages"))
			time.Sleep(5 * time.Millisecond)
		}
	}()
	stop := runPipeline(t, p)
	db := st.Databases()
	waitRows(t, st, db.Access+".access_log", n, 90*time.Second)
	waitRows(t, st, db.Connections+".connection_records", n, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	stopSampler()
	<-samplerDone
	assertExactlyOnce(t, st, n)
	retries := metricValue(t, reg, "connlog_ingest_write_retries_total")
	if retries < 1 || afterFaults.Load() == 0 {
		t.Errorf("%v retries, %d failures after commit: the faults did not happen", retries, afterFaults.Load())
	}
	// per partition: the inbox, which counts under its own lock
	if bound := float64(cfg.QueueMessages * partitions); maxQueued > bound {
		t.Errorf("queue reached %v messages, bound %v", maxQueued, bound)
	}
	t.Logf("%v retries, %d failures after commit, queue peaked at %v of %d", retries, afterFaults.Load(), maxQueued, cfg.QueueMessages*partitions)
}

// TestRebalanceStoresOnce runs two pipelines in one group and stops one
// mid-run: its partitions move to the other, and every line is stored once.
func TestRebalanceStoresOnce(t *testing.T) {
	const topic, n = "nginx", 30000
	brokers := startTestBroker(t, topic, 4)
	publishLines(t, brokers, topic, genCombined(n))
	st := openTestStore(t)
	slow := &faultySink{st: st, before: func() error { time.Sleep(30 * time.Millisecond); return nil }}
	cfg := testConfig(brokers, topic)
	cfg.BatchRows = 400
	cfg.SessionTimeout = 6 * time.Second
	p1, err := New(cfg, slow, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	p2, err := New(cfg, slow, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	stop1 := runPipeline(t, p1)
	stop2 := runPipeline(t, p2)
	db := st.Databases()
	waitRows(t, st, db.Access+".access_log", n/4, 60*time.Second)
	if err := stop1(); err != nil {
		t.Fatalf("stopping the first member: %v", err)
	}
	_, mid := tableCounts(t, st, db.Access+".access_log")
	waitRows(t, st, db.Access+".access_log", n, 90*time.Second)
	waitRows(t, st, db.Connections+".connection_records", n, 30*time.Second)
	if err := stop2(); err != nil {
		t.Fatalf("second member: %v", err)
	}
	assertExactlyOnce(t, st, n)
	if got := sum(committedOffsets(t, brokers, "test", topic, 4)); got != n {
		t.Errorf("committed offsets sum to %d, want %d", got, n)
	}
	t.Logf("first member stopped with %d of %d lines stored", mid, n)
}

// TestPoisonLinesAreQuarantinedNeverBlock interleaves 10,000 malformed,
// binary, oversized and invalid-UTF-8 lines with 100,000 good ones.
func TestPoisonLinesAreQuarantinedNeverBlock(t *testing.T) {
	if testing.Short() {
		t.Skip("110,000 lines")
	}
	const topic, good, bad, partitions = "nginx", 100000, 10000, 4
	brokers := startTestBroker(t, topic, partitions)
	st := openTestStore(t)
	lines := genCombined(good)
	const maxLine = 4096
	kinds := []struct {
		line   func(i int) string
		reason string
	}{
		{func(i int) string { return fmt.Sprintf("garbage %d not a log line", i) }, "malformed"},
		{func(i int) string { return fmt.Sprintf("\x00\x01\x02binary\x03%d\xfe", i) }, "binary data"},
		{func(i int) string { return lines[i%good] + strings.Repeat("x", maxLine) }, "exceeds max_line_bytes"},
		{func(i int) string { return strings.Replace(lines[i%good], "Mozilla", "Moz\xffilla", 1) }, "invalid UTF-8"},
	}
	var all []string
	wantReason := map[int]string{}
	for i, b := 0, 0; i < good; i++ {
		all = append(all, lines[i])
		if i%10 == 5 {
			k := kinds[b%len(kinds)]
			wantReason[len(all)] = k.reason
			all = append(all, k.line(b))
			b++
		}
	}
	if len(all) != good+bad {
		t.Fatalf("generated %d lines", len(all))
	}
	publishLines(t, brokers, topic, all)

	cfg := testConfig(brokers, topic)
	cfg.BatchRows = 5000
	cfg.MaxLineBytes = maxLine
	reg := prometheus.NewRegistry()
	p, err := New(cfg, st, reg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	stop := runPipeline(t, p)
	db := st.Databases()
	waitRows(t, st, db.Access+".access_log", good, 120*time.Second)
	waitRows(t, st, db.Ops+".quarantine", bad, 30*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for part := range partitions {
		for metricValue(t, reg, "connlog_ingest_lag_messages", "topic", topic, "partition", fmt.Sprint(part)) != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("lag of partition %d does not return to zero", part)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	assertExactlyOnce(t, st, good)
	if rows, distinct := tableCounts(t, st, db.Ops+".quarantine"); rows != bad || distinct != bad {
		t.Errorf("quarantine: %d rows, %d distinct; want %d", rows, distinct, bad)
	}
	// Every quarantined line is kept whole with its reason. Offsets are per
	// partition, so match the raw bytes to the published lines.
	rows, err := st.Conn().Query(t.Context(), "SELECT reason, raw FROM "+db.Ops+".quarantine")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	byLine := map[string]string{}
	for i, reason := range wantReason {
		byLine[all[i]] = reason
	}
	seen := 0
	for rows.Next() {
		var reason, raw string
		if err := rows.Scan(&reason, &raw); err != nil {
			t.Fatal(err)
		}
		want, ok := byLine[raw]
		switch {
		case !ok:
			t.Fatalf("quarantined raw line %.60q was not published as bad", raw)
		case want == "malformed" && reason == "":
			t.Fatalf("no reason for %.60q", raw)
		case want != "malformed" && !strings.Contains(reason, want):
			t.Fatalf("reason %q for %.60q, want %q", reason, raw, want)
		}
		seen++
	}
	if seen != bad {
		t.Errorf("read %d quarantined lines, want %d", seen, bad)
	}
	if got := metricValue(t, reg, "connlog_ingest_lines_total", "topic", topic, "result", "quarantined"); got != bad {
		t.Errorf("quarantined counter %v, want %d", got, bad)
	}
	if got := sum(committedOffsets(t, brokers, "test", topic, partitions)); got != good+bad {
		t.Errorf("committed %d, want %d", got, good+bad)
	}
}

// TestShipperDuplicatesStoredOnce publishes JSON lines carrying
// $request_id, some of them twice (as rsyslog resends after a broker
// outage): each request is stored once and the repeats are counted.
func TestShipperDuplicatesStoredOnce(t *testing.T) {
	const topic, n, resent = "nginx", 2000, 300
	brokers := startTestBroker(t, topic, 2)
	st := openTestStore(t)
	base := time.Now().UTC().Add(-time.Hour)
	var lines []string
	for i := range n {
		lines = append(lines, fmt.Sprintf(`{"time_iso8601":"%s","remote_addr":"10.1.%d.%d","remote_port":"%d","host":"www.example.org","request_id":"req%08d","request":"GET /x/%d HTTP/1.1","status":"200","body_bytes_sent":"1","http_referer":"","http_user_agent":"t"}`,
			base.Add(time.Duration(i)*time.Second).Format(time.RFC3339), i/256, i%256, 1000+i, i, i))
	}
	lines = append(lines, lines[n-resent:]...)
	publishLines(t, brokers, topic, lines)
	cfg := testConfig(brokers, topic)
	cfg.Sites = []string{"www.example.org"}
	reg := prometheus.NewRegistry()
	p, err := New(cfg, st, reg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	stop := runPipeline(t, p)
	deadline := time.Now().Add(60 * time.Second)
	for sum(committedOffsets(t, brokers, "test", topic, 2)) < int64(len(lines)) {
		if time.Now().After(deadline) {
			t.Fatal("not all lines committed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var rows, ids uint64
	if err := st.Conn().QueryRow(t.Context(), "SELECT count(), uniqExact(request_id) FROM "+st.Databases().Access+".access_log").Scan(&rows, &ids); err != nil {
		t.Fatal(err)
	}
	if rows != n || ids != n {
		t.Errorf("access log: %d rows, %d request ids; want %d", rows, ids, n)
	}
	if got := metricValue(t, reg, "connlog_ingest_lines_total", "topic", topic, "result", "duplicate"); got != resent {
		t.Errorf("duplicate counter %v, want %d", got, resent)
	}
	if got := metricValue(t, reg, "connlog_ingest_last_event_timestamp_seconds", "site", "www.example.org"); got < float64(base.Unix()) {
		t.Errorf("last event time of the configured site = %v", got)
	}
}
