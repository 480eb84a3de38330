package ingest

import (
	"context"
	"sync"

	"github.com/connlog/connlog/anonymize"
	"github.com/connlog/connlog/store"
)

// audienceSink fills the audience rows of each batch before handing it to
// the next Sink.
type audienceSink struct {
	next Sink
	a    *anonymize.Anonymizer
	pool sync.Pool // *[]anonymize.Audience, reused between batches
}

// WithAudience returns a Sink that turns the hits of each batch into
// audience statistics rows with a (bots, health checks and opted-out
// requests are left out), sets them as the batch's Audience and writes the
// batch to next. The rows go through the same Write, with the same
// deduplication token, as the hits they come from, so a retried batch is
// counted once.
//
// The rows alias the batch's hits and are reused for a later batch once
// next.Write returns, as the Sink contract allows.
func WithAudience(next Sink, a *anonymize.Anonymizer) Sink {
	return &audienceSink{next: next, a: a}
}

// Prepare implements Preparer: it sets b's audience rows, in a buffer of
// the sink's pool, then lets the next Sink prepare b.
func (s *audienceSink) Prepare(b *store.Batch) {
	buf := s.buffer()
	rows := AppendAudience((*buf)[:0], s.a, b.Hits)
	if rows == nil {
		rows = []anonymize.Audience{} // prepared, none kept
	}
	b.Audience = rows
	if p, ok := s.next.(Preparer); ok {
		p.Prepare(b)
	}
}

// buffer returns a buffer of audience rows from the pool.
func (s *audienceSink) buffer() *[]anonymize.Audience {
	buf, _ := s.pool.Get().(*[]anonymize.Audience)
	if buf == nil {
		buf = new([]anonymize.Audience)
	}
	return buf
}

// Write implements Sink. The audience rows of bs, computed here or by
// Prepare, go back to the sink's pool once bs are stored, and bs no longer
// name them (written again, bs get new ones); a failed write keeps the
// prepared ones for the retry.
func (s *audienceSink) Write(ctx context.Context, bs ...store.Batch) error {
	computed := make([]bool, len(bs))
	// The batches of a round not prepared (Prepare) are turned into
	// audience rows side by side, as each partition's worker did when it
	// wrote its own batch: done one after the other, they held the round's
	// inserts back.
	var wg sync.WaitGroup
	for i := range bs {
		if bs[i].Audience != nil {
			continue // prepared
		}
		computed[i] = true
		buf := s.buffer()
		wg.Go(func() {
			bs[i].Audience = AppendAudience((*buf)[:0], s.a, bs[i].Hits)
		})
	}
	wg.Wait()
	err := s.next.Write(ctx, bs...)
	for i := range bs {
		if !computed[i] && err != nil {
			continue
		}
		rows := bs[i].Audience
		clear(rows) // drop references to the hits' strings
		rows = rows[:0]
		bs[i].Audience = nil
		s.pool.Put(&rows)
	}
	return err
}

// AppendAudience appends to rows the audience row of every hit in hits that
// belongs in the statistics, and returns the extended slice. It is the
// per-hit cost of the statistics path (anonymize and row building), apart
// from the insert; WithAudience uses it, and benchmarks measure it.
func AppendAudience(rows []anonymize.Audience, a *anonymize.Anonymizer, hits []store.Hit) []anonymize.Audience {
	rows = growAudience(rows, len(hits))
	var req anonymize.Request
	for i := range hits {
		h := &hits[i]
		req = anonymize.Request{
			EventTime: h.EventTime,
			ClientIP:  h.ClientIP,
			Site:      h.Site,
			Path:      h.Path,
			Status:    h.Status,
			Referer:   h.Referer,
			UserAgent: h.UserAgent,
		}
		// The parsers set OptOut from Sec-GPC: 1 or DNT: 1; anonymize
		// leaves such requests out when its opt_out setting is on.
		sig := anonymize.Signals{GPC: h.OptOut}
		rows = rows[:len(rows)+1]
		if !a.Audience(&req, sig, &rows[len(rows)-1]) {
			rows = rows[:len(rows)-1]
		}
	}
	return rows
}

// growAudience makes room for n more rows without allocating per row.
func growAudience(rows []anonymize.Audience, n int) []anonymize.Audience {
	if cap(rows)-len(rows) >= n {
		return rows
	}
	grown := make([]anonymize.Audience, len(rows), len(rows)+n)
	copy(grown, rows)
	return grown
}
