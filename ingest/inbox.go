package ingest

import (
	"context"
	"sync"

	"github.com/segmentio/kafka-go"
)

// inbox hands the messages a partition's fetcher reads to its worker. The
// worker takes everything waiting at once, so that under a backlog it goes
// through its select (timers, rounds, the batch in flight) once per take
// rather than once per message, and a message costs the fetcher a lock and
// at most one wake-up instead of a channel hand-over (a goroutine switch
// per message, 5 % of connlog's CPU). A message put while the worker is
// idle is taken at once, as before.
type inbox struct {
	limit int // messages waiting at most; put waits beyond it
	// counted is told of every change of the number of
	// messages waiting (the queued gauge), under the lock that makes it:
	// the gauge never shows a put before the take it follows.
	counted func(delta int)
	mu      sync.Mutex
	msgs    []kafka.Message
	done    bool
	// ready has a token while messages wait or the inbox is closed.
	ready chan struct{}
	// space has a token once the worker took what waited.
	space chan struct{}
}

func newInbox(limit int, counted func(delta int)) *inbox {
	if counted == nil {
		counted = func(int) {}
	}
	return &inbox{limit: max(limit, 1), counted: counted, ready: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

// signal leaves a token in c unless it holds one.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// put adds m, waiting while limit messages wait (back-pressure). It
// reports false if ctx ended first.
func (q *inbox) put(ctx context.Context, m kafka.Message) bool {
	return q.putAll(ctx, []kafka.Message{m}) == 1
}

// putAll adds msgs, in order, as many at a time as there is room for (one
// lock and wake-up per fetch rather than per message), waiting for room
// like put. It returns how many it added: fewer than len(msgs) if ctx
// ended first.
func (q *inbox) putAll(ctx context.Context, msgs []kafka.Message) int {
	done := 0
	for done < len(msgs) {
		q.mu.Lock()
		n := min(q.limit-len(q.msgs), len(msgs)-done)
		if n > 0 {
			q.counted(n)
			q.msgs = append(q.msgs, msgs[done:done+n]...)
			done += n
		}
		q.mu.Unlock()
		if n > 0 {
			signal(q.ready)
			continue
		}
		select {
		case <-q.space:
		case <-ctx.Done():
			return done
		}
	}
	return done
}

// close tells the worker that no message follows those waiting.
func (q *inbox) close() {
	q.mu.Lock()
	q.done = true
	q.mu.Unlock()
	signal(q.ready)
}

// take returns the messages waiting, in order, in buf's place (buf, the
// slice the last take returned, is reused), and whether the inbox is
// closed with nothing left. Call it when ready has a token.
func (q *inbox) take(buf []kafka.Message) ([]kafka.Message, bool) {
	clear(buf) // drop the references to handled messages' bytes
	q.mu.Lock()
	msgs, done := q.msgs, q.done
	q.msgs = buf[:0]
	q.counted(-len(msgs))
	q.mu.Unlock()
	signal(q.space)
	if done {
		signal(q.ready) // for the take that finds the inbox empty
	}
	return msgs, done && len(msgs) == 0
}
