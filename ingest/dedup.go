package ingest

import (
	"sync"

	"github.com/connlog/connlog/store"
)

// requestIDs remembers the last n request ids written, process-wide, so
// that a line the shipper sent twice (rsyslog resends after a broker outage)
// is stored once. Its mutex is held by the caller for a whole batch.
type requestIDs struct {
	mu   sync.Mutex
	set  map[string]struct{}
	ring []string
	next int
}

func newRequestIDs(n int) *requestIDs {
	return &requestIDs{set: make(map[string]struct{}, n), ring: make([]string, n)}
}

func (d *requestIDs) has(id string) bool {
	_, ok := d.set[id]
	return ok
}

// add remembers id, forgetting the oldest one when full. The id is cloned:
// it aliases a Kafka message the batch will drop.
func (d *requestIDs) add(id string) {
	id = string([]byte(id))
	if old := d.ring[d.next]; old != "" {
		delete(d.set, old)
	}
	d.ring[d.next] = id
	d.set[id] = struct{}{}
	d.next = (d.next + 1) % len(d.ring)
}

// release forgets ids that were claimed by a batch that was not written.
func (d *requestIDs) release(ids []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range ids {
		delete(d.set, id)
	}
}

// countRedacted counts the hits in which ingest redacted a secret.
func countRedacted(hits []store.Hit) int {
	n := 0
	for i := range hits {
		if hits[i].Redacted {
			n++
		}
	}
	return n
}
