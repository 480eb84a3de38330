package ingest

// journalOf finds the [Journal] behind sink: the sink itself, or, through a
// decorator's Unwrap() Sink method, the sink it wraps (e.g. [WithAudience]
// around *store.Store). Nil if there is none.
func journalOf(sink Sink) Journal {
	for range 16 { // decorators nest a few levels at most
		if j, ok := sink.(Journal); ok {
			return j
		}
		u, ok := sink.(interface{ Unwrap() Sink })
		if !ok {
			return nil
		}
		sink = u.Unwrap()
	}
	return nil
}

// Unwrap returns the Sink the audience decorator writes to, so that the
// Pipeline finds the intent log behind it.
func (s *audienceSink) Unwrap() Sink { return s.next }
