package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestInboxKeepsOrderBoundsAndCloses: the worker takes what waits at once
// and in order, a full inbox holds the fetcher back until the worker takes,
// a closed one gives what is left before it reports closed, and a
// cancelled fetcher is let go.
func TestInboxKeepsOrderBoundsAndCloses(t *testing.T) {
	q := newInbox(3)
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

	full := newInbox(1)
	full.put(ctx, kafka.Message{})
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if full.put(cctx, kafka.Message{}) {
		t.Error("a cancelled put into a full inbox was taken")
	}
}
