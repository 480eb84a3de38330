package ingest

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/connlog/connlog/store"
)

// Write rounds. Each partition's worker cuts its own batches (its offsets,
// its intent record, its commit), but the batches of the partitions an
// instance consumes are written together: when one batch is due (full, its
// flush interval over, the partition released), every other worker holding
// a new batch is asked to hand its batch over as it stands, and the round
// records all their ranges in one insert into the intent log and writes all
// their rows in one insert per table (store.Store.Write with several
// batches). The engine then writes one part per table and day for the
// round instead of one per partition and table: with four partitions, a
// quarter of the parts, of the part files the kernel creates and the merges
// that follow (BENCHMARKS.md).
//
// Exactly-once stays per partition: each batch keeps its recorded boundaries
// and its ID, and commits its own offsets once the round is stored. A
// round's rows go in under a token of the round, which a retry of the same
// round repeats; a batch rebuilt after a crash is written alone and finds
// its rows by their Kafka source (store.Batch.Rebuilt), whatever round
// stored them. Rebuilt batches never join a round: they are rare and must
// keep their recorded boundaries.

// gatherWait bounds how long a round waits for a batch that opened before
// it started. A worker asked to hand its batch over does so after the
// message it is handling, so this is only a guard against a worker held up
// elsewhere: the round is then written without it, and the batch goes in
// the next one.
const gatherWait = time.Second

// rounds gathers the batches of one Pipeline into write rounds.
type rounds struct {
	p  *Pipeline
	mu sync.Mutex
	// next is the round that batches opening now join; nil until one opens.
	next *round
	// slot is held by the round being written: one at a time.
	slot chan struct{}
}

// round is one write of the batches of several partitions.
type round struct {
	// start is closed when the round's writer has the write slot: the
	// workers holding the other open batches then hand them over too.
	start chan struct{}
	// claimed: a batch was handed over, and the round is to be written.
	claimed bool
	started bool
	// waiting counts the batches that joined and were neither handed over
	// nor given up.
	waiting int
	// gathered is closed once started and waiting is 0.
	gathered     chan struct{}
	gatheredDone bool
	// closed: the round is being written; a batch handed over later goes
	// to another round.
	closed  bool
	batches []*batch
	ranges  []store.BatchRange
	// done is closed when the round is written (err: how it went).
	done chan struct{}
	err  error
}

// join returns the round a batch opening now is written in.
func (rs *rounds) join() *round {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r := rs.open()
	r.waiting++
	return r
}

// open returns the round batches join now, made if there is none. rs.mu
// must be held.
func (rs *rounds) open() *round {
	if rs.next == nil {
		rs.next = &round{start: make(chan struct{}), gathered: make(chan struct{}), done: make(chan struct{})}
	}
	return rs.next
}

// leave gives up a batch that joined r and will not be handed over (its
// partition was released with it, or it could not be written).
func (rs *rounds) leave(r *round) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r.waiting--
	r.checkGathered()
}

// checkGathered closes gathered when the round has started and nothing is
// waiting. rs.mu must be held.
func (r *round) checkGathered() {
	if r.started && r.waiting == 0 && !r.gatheredDone {
		r.gatheredDone = true
		close(r.gathered)
	}
}

// handOver gives b, a sealed new batch (its range rng) that joined r, to
// the round and returns the round that writes it; the caller must leave b
// alone until that round's done is closed, and commit nothing of b unless
// its err is nil. The first batch handed over to a round has it written,
// in ctx, in a goroutine of its own, once no other round holds the write
// slot: the batches that joined it before and are due meanwhile are handed
// over as they come, and when it starts, the others are asked to follow.
// The workers go on consuming into their next batches while the round is
// written.
func (rs *rounds) handOver(ctx context.Context, r *round, b *batch, rng store.BatchRange) *round {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r.waiting--
	if r.closed {
		// The round stopped waiting for this batch (gatherWait): it goes in
		// the next one.
		r = rs.open()
	}
	r.batches = append(r.batches, b)
	r.ranges = append(r.ranges, rng)
	r.checkGathered()
	if !r.claimed {
		// Batches opening from now on, this worker's next among them, go
		// in the next round: a worker's batch never waits for a round that
		// holds its previous one.
		r.claimed = true
		if rs.next == r {
			rs.next = nil
		}
		go rs.run(ctx, r)
	}
	return r
}

// run writes r once it holds the write slot and its batches are gathered.
func (rs *rounds) run(ctx context.Context, r *round) {
	held := false
	select {
	case rs.slot <- struct{}{}:
		held = true
		defer func() { <-rs.slot }()
	case <-ctx.Done():
	}
	rs.mu.Lock()
	r.started = true
	close(r.start)
	r.checkGathered()
	rs.mu.Unlock()
	if held {
		t := time.NewTimer(gatherWait)
		select {
		case <-r.gathered:
		case <-t.C:
			rs.p.log.Debug("write round: a partition's batch did not follow; writing without it")
		case <-ctx.Done():
		}
		t.Stop()
	}
	rs.mu.Lock()
	r.closed = true
	batches, ranges := r.batches, r.ranges
	rs.mu.Unlock()
	if held {
		r.err = rs.p.writeRound(ctx, batches, ranges)
	} else {
		r.err = ctx.Err()
	}
	close(r.done)
}

// writeRound records the ranges of the batches in the intent log and
// writes the batches, retrying each step until it succeeds or ctx is done.
func (p *Pipeline) writeRound(ctx context.Context, bs []*batch, ranges []store.BatchRange) error {
	what := ranges[0].ID()
	if len(ranges) > 1 {
		what = "round of " + what + " and " + plural(len(ranges)-1, "other")
	}
	if p.journal != nil {
		if err := p.retry(ctx, "record batch "+what, func(ctx context.Context) error { return p.journal.RecordBatches(ctx, ranges...) }); err != nil {
			return err
		}
	}
	batches := make([]store.Batch, len(bs))
	for i, b := range bs {
		batches[i] = b.Batch
	}
	return p.retry(ctx, "write batch "+what, func(ctx context.Context) error {
		start := time.Now()
		err := p.sink.Write(ctx, batches...)
		p.m.writeDuration.Observe(time.Since(start).Seconds())
		return err
	})
}

// plural is "n thing" or "n things".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return strconv.Itoa(n) + " " + thing + "s"
}
