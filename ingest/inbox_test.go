package ingest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestInboxKeepsOrderBoundsAndCloses: the worker takes what waits at once
// and in order, a full inbox holds the fetcher back until the worker takes,
// a closed one gives what is left before it reports closed, and a
// cancelled fetcher is let go.
func TestInboxKeepsOrderBoundsAndCloses(t *testing.T) {
	q := newInbox(3, nil)
	ctx := t.Context()
	for i := range 3 {
		if !q.put(ctx, kafka.Message{Offset: int64(i)}) {
			t.Fatal("put refused")
		}
	}
	put := make(chan bool)
	go func() { put <- q.put(ctx, kafka.Message{Offset: 3}) }()
	select {
	case <-put:
		t.Fatal("a fourth message went into an inbox of three")
	case <-time.After(50 * time.Millisecond):
	}
	<-q.ready
	got, closed := q.take(nil)
	if closed || len(got) != 3 || got[0].Offset != 0 || got[2].Offset != 2 {
		t.Fatalf("took %v, closed %v; want offsets 0-2", got, closed)
	}
	if !<-put {
		t.Fatal("the held message was refused once there was room")
	}
	q.close()
	<-q.ready
	got, closed = q.take(got)
	if closed || len(got) != 1 || got[0].Offset != 3 {
		t.Fatalf("after close took %v, closed %v; want offset 3 first", got, closed)
	}
	<-q.ready
	if got, closed = q.take(got); !closed || len(got) != 0 {
		t.Fatalf("then took %v, closed %v; want nothing and closed", got, closed)
	}

	full := newInbox(1, nil)
	full.put(ctx, kafka.Message{})
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if full.put(cctx, kafka.Message{}) {
		t.Error("a cancelled put into a full inbox was taken")
	}
}

// TestInboxPutAllFillsInChunksAndCounts: a fetch larger than the inbox goes
// in as room frees up, in order, and the count the inbox reports is what
// waits, never more than its limit, even while a put races a take.
func TestInboxPutAllFillsInChunksAndCounts(t *testing.T) {
	var mu sync.Mutex
	waiting, peak := 0, 0
	q := newInbox(5, func(d int) {
		mu.Lock()
		defer mu.Unlock()
		waiting += d
		peak = max(peak, waiting)
	})
	msgs := make([]kafka.Message, 23)
	for i := range msgs {
		msgs[i].Offset = int64(i)
	}
	done := make(chan int)
	go func() { done <- q.putAll(t.Context(), msgs) }()
	var got []kafka.Message
	var taken []kafka.Message
	for len(got) < len(msgs) {
		<-q.ready
		taken, _ = q.take(taken)
		got = append(got, taken...)
	}
	if n := <-done; n != len(msgs) {
		t.Fatalf("putAll added %d of %d", n, len(msgs))
	}
	for i, m := range got {
		if m.Offset != int64(i) {
			t.Fatalf("message %d has offset %d", i, m.Offset)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if waiting != 0 || peak > 5 {
		t.Errorf("count %d at the end, peak %d; want 0 and at most the limit 5", waiting, peak)
	}

	full := newInbox(2, nil)
	cctx, cancel := context.WithCancel(t.Context())
	cancel()
	if n := full.putAll(cctx, msgs[:3]); n != 2 {
		t.Errorf("a cancelled putAll into an inbox of two added %d, want 2", n)
	}
}
