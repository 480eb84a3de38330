package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// sink records what reaches ClickHouse, once per token like the real
// table; fail makes the next calls fail (a ClickHouse outage).
type sink struct {
	mu      sync.Mutex
	tokens  map[string]bool
	rows    []Entry
	calls   []string
	fail    error
	dropped int // batches received again with a known token
}

func (s *sink) AuditBatch(_ context.Context, token string, entries []Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, token)
	if s.fail != nil {
		return s.fail
	}
	if s.tokens == nil {
		s.tokens = map[string]bool{}
	}
	if s.tokens[token] {
		s.dropped++
		return nil
	}
	s.tokens[token] = true
	s.rows = append(s.rows, entries...)
	return nil
}

func (s *sink) stored() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.rows)
}

func entry(i int) Entry {
	return Entry{
		Time: time.Date(2026, 11, 22, 10, 0, 0, i*int(time.Millisecond), time.UTC), Actor: fmt.Sprintf("alice-%d", i), Role: "analyst",
		Source: "127.0.0.1:5000", Method: "GET", Endpoint: "/v1/access", Purpose: "INC-1 \"quoted\"\n\\ é",
		Filters: `{"ip":"203.0.113.7"}`, Status: 200, Rows: i, Outcome: "ok",
	}
}

func open(t *testing.T, dir string, s Sink) *Journal {
	t.Helper()
	j, err := OpenJournal(JournalOptions{Dir: dir}, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// auditN appends entry(0) to entry(n-1).
func auditN(t *testing.T, j *Journal, n int) {
	t.Helper()
	for i := range n {
		if err := j.Audit(t.Context(), entry(i)); err != nil {
			t.Fatal(err)
		}
	}
}

// auditConcurrently runs writers goroutines appending n rows each, distinct
// across writers, and waits for them.
func auditConcurrently(t *testing.T, j *Journal, writers, n int) {
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				if err := j.Audit(t.Context(), entry(w*1000+i)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
}

// checkEachOnce fails unless s stored want distinct rows, each once.
func checkEachOnce(t *testing.T, s *sink, want int) {
	t.Helper()
	seen := map[string]int{}
	for _, e := range s.stored() {
		seen[e.Actor]++
	}
	if len(seen) != want {
		t.Errorf("%d distinct rows stored, want %d", len(seen), want)
	}
	for a, n := range seen {
		if n != 1 {
			t.Errorf("%s stored %d times", a, n)
		}
	}
}

func TestRowsReachTheSinkInOrderOnce(t *testing.T) {
	s := &sink{}
	j := open(t, t.TempDir(), s)
	var want []Entry
	for i := range 5 {
		e := entry(i)
		if err := j.Audit(t.Context(), e); err != nil {
			t.Fatal(err)
		}
		want = append(want, e)
		if i == 2 {
			if err := j.Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := j.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := j.Flush(t.Context()); err != nil { // nothing new: no call
		t.Fatal(err)
	}
	if got := s.stored(); !equal(got, want) {
		t.Fatalf("stored %+v\nwant %+v", got, want)
	}
	if len(s.calls) != 2 || s.calls[0] == s.calls[1] {
		t.Errorf("calls %v: want two batches with distinct tokens", s.calls)
	}
	if j.Backlog() != 0 {
		t.Errorf("backlog %d after flush", j.Backlog())
	}
}

// equal compares entries, times by instant (JSON keeps the nanoseconds).
func equal(a, b []Entry) bool {
	return slices.EqualFunc(a, b, func(x, y Entry) bool {
		tx, ty := x.Time, y.Time
		x.Time, y.Time = time.Time{}, time.Time{}
		return tx.Equal(ty) && x == y
	})
}

// A row is on disk when Audit returns: a process that dies right after
// (no Flush, no Close) leaves it to the next Journal on the directory.
func TestRowsSurviveACrash(t *testing.T) {
	dir := t.TempDir()
	s := &sink{}
	crashed, err := OpenJournal(JournalOptions{Dir: dir}, s)
	if err != nil {
		t.Fatal(err)
	}
	auditN(t, crashed, 3)
	// no Flush, no Close: the file descriptor simply goes away
	j := open(t, dir, s)
	if j.Backlog() == 0 {
		t.Error("backlog 0 after a crash with 3 rows")
	}
	if err := j.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := s.stored(); len(got) != 3 || got[2].Actor != "alice-2" {
		t.Fatalf("after the crash: %+v", got)
	}
}

// A segment stored in ClickHouse but not yet deleted when the process died
// is sent again with the same token and the same rows: the table keeps one
// copy (the sink drops the repeat like insert_deduplication_token does).
func TestSegmentShippedTwiceIsStoredOnce(t *testing.T) {
	dir := t.TempDir()
	s := &sink{}
	j := open(t, dir, s)
	auditN(t, j, 4)
	j.mu.Lock()
	if err := j.rotateLocked(); err != nil {
		t.Fatal(err)
	}
	j.mu.Unlock()
	segs, _ := j.segments()
	saved, err := os.ReadFile(filepath.Join(dir, segs[0]))
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The crash: the segment is back, as if the delete never happened.
	if err := os.WriteFile(filepath.Join(dir, segs[0]), saved, 0o600); err != nil {
		t.Fatal(err)
	}
	j2 := open(t, dir, s)
	if err := j2.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := s.stored(); len(got) != 4 || s.dropped != 1 {
		t.Fatalf("stored %d rows, %d repeats dropped; want 4 and 1", len(got), s.dropped)
	}
	if s.calls[0] != s.calls[1] {
		t.Errorf("tokens %q then %q: the same segment must keep its token", s.calls[0], s.calls[1])
	}
}

// While ClickHouse refuses rows they stay in the journal; once the backlog
// is full, Audit fails (the API then serves no data); when ClickHouse is
// back, everything arrives, in order.
func TestOutageKeepsRowsAndBoundsTheBacklog(t *testing.T) {
	s := &sink{fail: errors.New("connection refused")}
	j, err := OpenJournal(JournalOptions{Dir: t.TempDir(), MaxBacklog: 4 << 10}, s)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	var accepted []Entry
	for i := range 100 {
		e := entry(i)
		err := j.Audit(t.Context(), e)
		if errors.Is(err, ErrBacklog) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		accepted = append(accepted, e)
		if i%5 == 0 {
			if err := j.Flush(t.Context()); err == nil {
				t.Fatal("flush succeeded during the outage")
			}
		}
	}
	if len(accepted) == 0 || len(accepted) == 100 {
		t.Fatalf("%d rows accepted before the backlog was full; want some, not all", len(accepted))
	}
	s.mu.Lock()
	s.fail = nil
	s.mu.Unlock()
	if err := j.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := s.stored(); !equal(got, accepted) {
		t.Fatalf("after the outage: %d rows, want the %d accepted in order", len(got), len(accepted))
	}
	if err := j.Audit(t.Context(), entry(1000)); err != nil {
		t.Errorf("audit after the backlog drained: %v", err)
	}
}

// A last line cut short (a write interrupted by a crash, whose request was
// never answered) is skipped; the complete rows before it are shipped.
func TestTornLastLineIsSkipped(t *testing.T) {
	dir := t.TempDir()
	s := &sink{}
	j := open(t, dir, s)
	auditN(t, j, 2)
	j.mu.Lock()
	if _, err := j.active.WriteString(`{"time":"2026-11-22T10:00:00Z","actor":"cut`); err != nil {
		t.Fatal(err)
	}
	j.mu.Unlock()
	j2 := open(t, dir, s)
	if err := j2.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := s.stored(); len(got) != 2 {
		t.Fatalf("stored %d rows, want the 2 complete ones", len(got))
	}
}

// Concurrent requests and shipments: every row arrives exactly once.
func TestConcurrentAuditAndFlush(t *testing.T) {
	s := &sink{}
	j := open(t, t.TempDir(), s)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			_ = j.Flush(ctx)
		}
	}()
	auditConcurrently(t, j, 8, 50)
	cancel()
	<-done
	if err := j.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkEachOnce(t, s, 400)
}

func BenchmarkAudit(b *testing.B) {
	j, err := OpenJournal(JournalOptions{Dir: b.TempDir(), MaxBacklog: 1 << 40}, &sink{})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	e := entry(1)
	for b.Loop() {
		if err := j.Audit(b.Context(), e); err != nil {
			b.Fatal(err)
		}
	}
}

// Segments cut while a Flush runs (Audit rotates after a write failure)
// are newer than the one Flush saw as active: never shipped by it, never
// deleted while open. Every row arrives once and the active file exists.
func TestRotationDuringFlushLosesNothing(t *testing.T) {
	s := &sink{}
	dir := t.TempDir()
	j := open(t, dir, s)
	ctx, cancel := context.WithCancel(t.Context())
	var bg sync.WaitGroup
	bg.Add(2)
	go func() {
		defer bg.Done()
		for ctx.Err() == nil {
			_ = j.Flush(ctx)
		}
	}()
	go func() { // the rotation of Audit's failure path
		defer bg.Done()
		for ctx.Err() == nil {
			j.mu.Lock()
			_ = j.rotateLocked()
			j.mu.Unlock()
			time.Sleep(100 * time.Microsecond)
		}
	}()
	auditConcurrently(t, j, 4, 100)
	cancel()
	bg.Wait()
	if _, err := os.Stat(filepath.Join(dir, j.activeName())); err != nil {
		t.Fatalf("active segment: %v", err)
	}
	if err := j.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkEachOnce(t, s, 400)
	if j.Backlog() != 0 {
		t.Errorf("backlog %d after the last flush", j.Backlog())
	}
}

// A failed write refuses the request, leaves nothing of its row, and the
// journal goes on in a new segment.
func TestFailedWriteLeavesNoRowAndRecovers(t *testing.T) {
	s := &sink{}
	j := open(t, t.TempDir(), s)
	if err := j.Audit(t.Context(), entry(1)); err != nil {
		t.Fatal(err)
	}
	j.mu.Lock()
	j.active.Close() // the disk goes away under the open segment
	j.mu.Unlock()
	if err := j.Audit(t.Context(), entry(2)); err == nil {
		t.Fatal("a write to a closed file succeeded")
	}
	if err := j.Audit(t.Context(), entry(3)); err != nil {
		t.Fatalf("after a failure: %v", err)
	}
	if err := j.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := s.stored()
	if len(got) != 2 || got[0].Actor != "alice-1" || got[1].Actor != "alice-3" {
		t.Errorf("stored %+v, want rows 1 and 3 only", got)
	}
}

// After Close, Audit refuses; a Flush still ships what was written.
func TestCloseThenFlush(t *testing.T) {
	s := &sink{}
	j := open(t, t.TempDir(), s)
	auditN(t, j, 3)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j.Audit(t.Context(), entry(9)); err == nil {
		t.Error("Audit after Close succeeded")
	}
	if err := j.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := s.stored(); len(got) != 3 || j.Backlog() != 0 {
		t.Errorf("stored %d rows, backlog %d; want 3 and 0", len(got), j.Backlog())
	}
	if segs, _ := j.segments(); len(segs) != 0 {
		t.Errorf("segments left: %v", segs)
	}
}

// Fields that are not valid UTF-8 (a purpose header can carry any byte)
// reach the sink byte for byte; a damaged segment is set aside without
// blocking the rows after it.
func TestBytesKeptAndDamagedSegmentSetAside(t *testing.T) {
	dir := t.TempDir()
	s := &sink{}
	j := open(t, dir, s)
	odd := entry(1)
	odd.Purpose = "INC-\xff\xfe-1"
	odd.Reason = "bad \xc3"
	if err := j.Audit(t.Context(), odd); err != nil {
		t.Fatal(err)
	}
	if err := j.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := s.stored(); len(got) != 1 || got[0].Purpose != odd.Purpose || got[0].Reason != odd.Reason {
		t.Fatalf("stored %q / %q, want %q / %q", got[0].Purpose, got[0].Reason, odd.Purpose, odd.Reason)
	}
	// A segment damaged in the middle, then a good one.
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000001.jsonl"), []byte("{not json}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := j.Audit(t.Context(), entry(2)); err != nil {
		t.Fatal(err)
	}
	if err := j.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := s.stored(); len(got) != 2 || got[1].Actor != "alice-2" {
		t.Errorf("after a damaged segment: %+v", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "00000000000000000001.jsonl.damaged")); err != nil {
		t.Errorf("damaged segment not kept aside: %v", err)
	}
}

// AuditMany makes several rows durable at once, their request counts
// included, and a journal reopened after a crash ships them all.
func TestAuditManyIsOneWriteAndSurvivesACrash(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, &sink{})
	var want []Entry
	for i := range 3 {
		e := entry(i)
		e.Actor, e.Status, e.Outcome, e.Requests = "", 401, "denied", 1000*(i+1)
		e.Source = fmt.Sprintf("192.0.2.%d", i)
		want = append(want, e)
	}
	if err := j.AuditMany(t.Context(), want); err != nil {
		t.Fatal(err)
	}
	segs, err := j.segments()
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments %v, %v: want the one active segment", segs, err)
	}
	// No Close: the process died. A new journal ships the rows.
	s := &sink{}
	j2 := open(t, dir, s)
	if err := j2.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := s.stored(); !equal(got, want) {
		t.Fatalf("stored %+v\nwant %+v", got, want)
	}
	if err := j2.AuditMany(t.Context(), nil); err != nil {
		t.Errorf("no rows: %v", err)
	}
}
