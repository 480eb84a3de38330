package store

import (
	"sync"
	"time"
)

// prepared is the share of a batch's write that depends on the batch alone,
// done ahead of the write by [Store.Prepare]: its rows encoded for each
// table, its manifests hashed.
type prepared struct {
	store *Store
	// What the batch held when prepared: Write uses the rest only for the
	// same batch.
	id         string
	hits       *Hit
	nHits      int
	quarantine *Quarantined
	nQuar      int
	// The Native blocks of its access log rows, connection records and
	// quarantined messages; nil when the store does not insert that table
	// as Native, or the batch has no such rows.
	access, connections, quarantined *nativeBlock
	// spent: stored, and the blocks given back (release).
	spent bool
	// manifests are the batch's manifests, unchained and unsigned, under
	// hash version version; nil without a signer.
	manifests []Manifest
	version   uint8
}

// Prepare does ahead of Write the share of b's write that depends on b
// alone: it encodes the rows for their tables and hashes the manifests
// (with a signer). Write then only sends them. ingest prepares each batch
// in its partition's worker once the batch is sealed, while an earlier
// write round is written, so that a round no longer spends its first half
// encoding (BENCHMARKS.md).
//
// b must have its ID and must not change until it is written; Write uses
// what Prepare did only for the same ID, hits and quarantined messages,
// and does the work itself otherwise. A rebuilt batch is not prepared: its
// write keeps only the rows not stored yet.
func (s *Store) Prepare(b *Batch) {
	if b.Rebuilt || b.ID == "" {
		b.prepared = nil
		return
	}
	p := &prepared{store: s, id: b.ID, hits: firstOf(b.Hits), nHits: len(b.Hits), quarantine: firstOf(b.Quarantine), nQuar: len(b.Quarantine)}
	if len(b.Hits) > 0 {
		if s.nativeWrites(accessTable) {
			p.access = encodeBlock[Hit](accessTable, &s.buffers.access, [][]Hit{b.Hits}, nil)
		}
		if s.nativeWrites(connectionTable) {
			p.connections = encodeBlock(connectionTable, &s.buffers.connections, [][]Hit{b.Hits}, ConnectionOf)
		}
	}
	if len(b.Quarantine) > 0 && s.nativeWrites(quarantineTable) {
		p.quarantined = encodeBlock[Quarantined](quarantineTable, &s.buffers.quarantine, [][]Quarantined{b.Quarantine}, nil)
	}
	if v, signing := s.write.hashVersion(); signing {
		// Created is set once the rows are stored (writeManifests).
		p.version, p.manifests = v, manifestsFor(v, b.ID, *b, time.Time{})
	}
	b.prepared = p
}

// preparedFor returns what Prepare did of b for s, or nil if it did not,
// or b changed since.
func (b *Batch) preparedFor(s *Store) *prepared {
	p := b.prepared
	if p == nil || p.spent || p.store != s || b.Rebuilt || p.id != b.ID ||
		p.hits != firstOf(b.Hits) || p.nHits != len(b.Hits) ||
		p.quarantine != firstOf(b.Quarantine) || p.nQuar != len(b.Quarantine) {
		return nil
	}
	return p
}

// firstOf is the address of s's first element, nil when s is empty: with
// the length, it tells the slice a batch was prepared with from another.
func firstOf[T any](s []T) *T {
	if len(s) == 0 {
		return nil
	}
	return &s[0]
}

// release gives p's blocks back to its store's buffers, once the batch is
// stored; Write then no longer uses p.
func (p *prepared) release() {
	p.spent = true
	for _, r := range []struct {
		b    *nativeBlock
		pool *sync.Pool
	}{{p.access, &p.store.buffers.access}, {p.connections, &p.store.buffers.connections}, {p.quarantined, &p.store.buffers.quarantine}} {
		if r.b != nil {
			r.pool.Put(r.b.cols)
		}
	}
	p.access, p.connections, p.quarantined = nil, nil, nil
}
