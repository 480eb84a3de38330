package store

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/connlog/connlog/store/integrity"
	"github.com/connlog/connlog/store/internal/chsql"
	"github.com/connlog/connlog/store/retention"
)

// Tamper evidence. Every Write adds, per stored table and Kafka partition,
// a manifest row to ${ops}.manifests: the batch id, the offset range, the
// row count, and the rows' SHA-256 per expiry group (UTC day of the event,
// site), chained to the previous manifest of the same table and partition
// and signed with the instance key.
//
// Chains are per (table, topic, partition): a Kafka partition is consumed
// by one instance at a time and its batches are written in order, so each
// chain has one writer even with several instances (the manifests of one
// chain may be signed by different instance keys after a rebalance; each
// key is registered in ${ops}.instance_keys). Within an instance, manifest
// writes are serialized. The head of a chain is its manifest with the
// highest sequence number (Seq; for manifests of hash version 1, which
// have none, the highest first offset). Offsets are not assumed to grow
// along a chain: after a broker restart or a topic re-creation they start
// again, and the chain simply continues.
//
// Every manifest (version 2) is also a link of its writer's chain: the
// manifests of one batch are one insert, numbered per key (WriterSeq), and
// each names the chains of its own insert (WriterChains) and every manifest
// of the key's previous insert (WriterPrev, WriterPrevChains). A chain
// deleted whole, with its rows, has no manifest left to show a gap, but the
// manifests signed with it or after it name it (verify: chain-missing); a
// chain whose newest manifests were cut off is named the same way
// (chain-gap). Only the newest inserts of a key, deleted together, leave
// nothing that names them.
//
// What is hashed (version 2): every stored column of the table except
// ingested_at, as tables.go describes them, with the values as
// stored (times in milliseconds, addresses as 16 bytes, enums by name).
// Version 1, the manifests written before version 2, left out the access
// log's operation, opt_out, shipper_host and log_file; they still verify
// under version 1 (Manifest.Version selects the encoding). The access log's
// detail columns (query, referer, user_agent, forwarded_for), which a column
// TTL may blank before the record expires (retention.access_detail), are
// hashed apart (DetailHash), so that their expiry does not look like
// tampering: verify checks them only while they are within that lifetime.
//
// A group leaves storage whole when its lifetime ends (daily partitions,
// one lifetime per site), so verify can tell expiry from deletion: a group
// past its earliest possible expiry may be partly or wholly gone, any other
// group must be stored exactly as signed.

// integrityState is the signing state of a Store.
type integrityState struct {
	mu         sync.Mutex // serializes chain-head reads and manifest inserts
	signer     *integrity.Signer
	registered bool
	// heads caches the chain heads this instance wrote. A cached head is
	// used only for a batch that continues it (first offset = last + 1):
	// anything else (another instance wrote in between, a replay, skipped
	// offsets) reads the head from the store.
	heads map[chainKey]chainHead
	// writer is the last insert of manifests this key signed; valid when
	// writerKnown, else read from the store.
	writer      writerHead
	writerKnown bool
	// version is the hash version written; 0: manifestVersion. Tests set
	// 1 to write manifests as connlog did before version 2.
	version uint8
}

// manifestVersion is the hash version Write signs with.
const manifestVersion = 2

// chainHead is the latest manifest of a chain.
type chainHead struct {
	hash    string
	batchID string
	last    int64
	seq     uint64
}

// writerHead is the latest insert of manifests signed by one key.
type writerHead struct {
	hashes []string
	chains []string // chainKey.String() of each
	seq    uint64
}

func (s *Store) integrity() *integrityState { return &s.write.state }

// signingWriter is the integrity layer of the write path: it wraps the
// writer of a batch's rows and, once they are stored, chains, signs and
// stores their manifests (a manifest never describes rows not stored).
// Without a signer (SetSigner) it only passes the batch on.
type signingWriter struct {
	next  batchWriter
	store *Store
	state integrityState
}

func (w *signingWriter) writeBatch(ctx context.Context, token string, bs []Batch) error {
	version, signing := w.hashVersion()
	if !signing {
		return w.next.writeBatch(ctx, token, bs)
	}
	// The group hashes cover the rows as the batches hold them, not as the
	// engine answers, so they are computed while the rows are inserted: a
	// round's hashing then no longer waits for its inserts (it was a tenth
	// of connlog's CPU, all of it after them).
	// Batches Store.Prepare hashed ahead need none of it.
	var ms []Manifest
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		for i := range bs {
			if p := bs[i].preparedFor(w.store); p != nil && p.version == version && p.manifests != nil {
				ms = append(ms, p.manifests...)
				continue
			}
			// Created is set once the rows are stored (writeManifests).
			ms = append(ms, manifestsFor(version, bs[i].ID, bs[i], time.Time{})...)
		}
	}()
	err := w.next.writeBatch(ctx, token, bs)
	<-hashed
	if err != nil {
		return err
	}
	if err := w.store.writeManifests(ctx, token, ms); err != nil {
		return fmt.Errorf("batch %s: %w", token, err)
	}
	return nil
}

// hashVersion returns the hash version manifests are written with, and
// whether they are written at all (a signer is set).
func (w *signingWriter) hashVersion() (uint8, bool) {
	st := &w.state
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.version != 0 {
		return st.version, st.signer != nil
	}
	return manifestVersion, st.signer != nil
}

// SetSigner makes Write sign a manifest for every batch with the instance
// key (integrity.LoadOrCreate of the signing_key_file). Without a signer, Write stores
// no manifests and verify has nothing to check.
func (s *Store) SetSigner(sg *integrity.Signer) {
	st := s.integrity()
	st.mu.Lock()
	st.signer, st.registered, st.heads, st.writerKnown = sg, false, nil, false
	st.mu.Unlock()
}

// encoder builds the canonical encoding of rows and manifests:
// length-prefixed strings, big-endian fixed-width integers.
type encoder struct{ b []byte }

func (e *encoder) str(s string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}
func (e *encoder) i64(v int64)    { e.b = binary.BigEndian.AppendUint64(e.b, uint64(v)) }
func (e *encoder) u64(v uint64)   { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *encoder) ms(t time.Time) { e.i64(t.UnixMilli()) }
func (e *encoder) ip(a [16]byte)  { e.b = append(e.b, a[:]...) }
func (e *encoder) flag(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

// encodedRow is one row's canonical encoding with what groups and orders it.
type encodedRow struct {
	offset int64
	day    int64 // UTC days since epoch
	site   string
	data   []byte
	// detail encodes the columns that may expire before the row; nil for
	// tables without such columns.
	detail []byte
}

func dayOf(t time.Time) int64 {
	return int64(t.UTC().Unix()) / 86400
}

// ManifestGroup is the part of a batch that expires at once: its rows of
// one UTC day and site.
type ManifestGroup struct {
	Day  time.Time `json:"day"`
	Site string    `json:"site,omitempty"`
	Rows uint64    `json:"rows"`
	Hash string    `json:"sha256"`
	// DetailHash covers the columns that may expire before the rows
	// (access log detail); "" for tables without them.
	DetailHash string `json:"detail_sha256,omitempty"`
}

// Manifest is the signed description of one batch's rows in one table and
// Kafka partition.
type Manifest struct {
	// Version is the hash version: which columns the group hashes cover
	// and which fields the manifest hash covers (1: before every column
	// was covered; 2: manifestVersion).
	Version     uint8           `json:"version"`
	Created     time.Time       `json:"created"`
	BatchID     string          `json:"batch_id"`
	Table       string          `json:"table"`
	Topic       string          `json:"topic"`
	Partition   int32           `json:"partition"`
	FirstOffset int64           `json:"first_offset"`
	LastOffset  int64           `json:"last_offset"`
	Rows        uint64          `json:"rows"`
	Groups      []ManifestGroup `json:"groups"`
	PrevHash    string          `json:"prev_hash"`
	// Seq is the manifest's position in its chain (version 2; the first
	// version-2 manifest after version-1 ones has 1).
	Seq uint64 `json:"seq,omitempty"`
	// WriterSeq numbers the inserts of manifests signed with this key
	// (the manifests of one batch share it); WriterPrev are the hashes of
	// the key's previous insert, in any chains, and WriterPrevChains their
	// chains ("table/topic/partition"); none for the key's first (version
	// 2).
	WriterSeq        uint64   `json:"writer_seq,omitempty"`
	WriterPrev       []string `json:"writer_prev,omitempty"`
	WriterPrevChains []string `json:"writer_prev_chains,omitempty"`
	// WriterChains are the chains of every manifest of this insert, this
	// one's included (version 2).
	WriterChains []string `json:"writer_chains,omitempty"`
	Hash         string   `json:"sha256"`
	KeyID        string   `json:"key_id"`
	Signature    string   `json:"signature"`
}

// computeHash returns the SHA-256 of every field of its version but Hash
// and Signature (version 1: nor KeyID); "" for an unknown version.
func (m *Manifest) computeHash() string {
	var e encoder
	switch m.Version {
	case 1:
		e.str("connlog-manifest-v1")
	case 2:
		e.str("connlog-manifest-v2")
	default:
		return ""
	}
	e.ms(m.Created)
	e.str(m.BatchID)
	e.str(m.Table)
	e.str(m.Topic)
	e.i64(int64(m.Partition))
	e.i64(m.FirstOffset)
	e.i64(m.LastOffset)
	e.u64(m.Rows)
	e.u64(uint64(len(m.Groups)))
	for _, g := range m.Groups {
		e.i64(dayOf(g.Day))
		e.str(g.Site)
		e.u64(g.Rows)
		e.str(g.Hash)
		e.str(g.DetailHash)
	}
	e.str(m.PrevHash)
	if m.Version >= 2 {
		e.u64(m.Seq)
		e.u64(m.WriterSeq)
		e.u64(uint64(len(m.WriterPrev)))
		for _, h := range m.WriterPrev {
			e.str(h)
		}
		e.u64(uint64(len(m.WriterPrevChains)))
		for _, c := range m.WriterPrevChains {
			e.str(c)
		}
		e.u64(uint64(len(m.WriterChains)))
		for _, c := range m.WriterChains {
			e.str(c)
		}
		e.str(m.KeyID) // the writer chain is the key's
	}
	sum := sha256.Sum256(e.b)
	return hex.EncodeToString(sum[:])
}

// groupRows sorts rows canonically (offset, then encoding) and hashes them
// per (day, site) group.
func groupRows(rows []encodedRow) []ManifestGroup {
	slices.SortFunc(rows, func(a, b encodedRow) int {
		if a.day != b.day {
			return cmpInt(a.day, b.day)
		}
		if a.site != b.site {
			if a.site < b.site {
				return -1
			}
			return 1
		}
		if a.offset != b.offset {
			return cmpInt(a.offset, b.offset)
		}
		return bytes.Compare(a.data, b.data)
	})
	var out []ManifestGroup
	for i := 0; i < len(rows); {
		j := i
		h, dh := sha256.New(), sha256.New()
		detail := false
		for ; j < len(rows) && rows[j].day == rows[i].day && rows[j].site == rows[i].site; j++ {
			var n [binary.MaxVarintLen64]byte
			h.Write(n[:binary.PutUvarint(n[:], uint64(len(rows[j].data)))])
			h.Write(rows[j].data)
			if rows[j].detail != nil {
				detail = true
				dh.Write(n[:binary.PutUvarint(n[:], uint64(len(rows[j].detail)))])
				dh.Write(rows[j].detail)
			}
		}
		g := ManifestGroup{
			Day: time.Unix(rows[i].day*86400, 0).UTC(), Site: rows[i].site, Rows: uint64(j - i), Hash: hex.EncodeToString(h.Sum(nil)),
		}
		if detail {
			g.DetailHash = hex.EncodeToString(dh.Sum(nil))
		}
		out = append(out, g)
		i = j
	}
	return out
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// chainKey names one chain.
type chainKey struct {
	table     string
	topic     string
	partition int32
}

// String is "table/topic/partition" (Kafka topic names have no '/').
func (k chainKey) String() string {
	return k.table + "/" + k.topic + "/" + strconv.Itoa(int(k.partition))
}

// parseChainKey reverses String.
func parseChainKey(s string) (chainKey, bool) {
	table, rest, ok1 := strings.Cut(s, "/")
	i := strings.LastIndexByte(rest, '/')
	if !ok1 || i < 0 {
		return chainKey{}, false
	}
	p, err := strconv.ParseInt(rest[i+1:], 10, 32)
	if err != nil {
		return chainKey{}, false
	}
	return chainKey{table, rest[:i], int32(p)}, true
}

// encodeHit encodes a hit for table (the access log or, as the record
// [ConnectionOf] makes of it, the connection records) under hash version v,
// appending to arena.
func encodeHit(arena *encoder, v uint8, table string, h *Hit) encodedRow {
	switch {
	case table != tableAccess:
		// version 1 encoded every column of a connection record already
		r := ConnectionOf(h)
		return connectionTable.encode(arena, &r)
	case v >= 2:
		return accessTable.encode(arena, h)
	}
	return accessTable.hash.encodeV1(accessTable.values(h))
}

// encodeQuarantined encodes a quarantined message under hash version v
// (version 1 encoded every column already), appending to arena.
func encodeQuarantined(arena *encoder, _ uint8, q *Quarantined) encodedRow {
	return quarantineTable.encode(arena, q)
}

// manifestsFor builds the (unchained, unsigned) manifests of a batch under
// hash version v.
//
// A group hash covers its rows in offset order. The rows of a chain in a
// batch come in offset order (one partition's messages, as consumed), so
// each row is hashed into its group as it is encoded, with no copy of the
// batch's encodings and no sort; a batch whose rows are not in strictly
// increasing offset order within a chain is grouped the way verify groups
// rows read back (groupRows), which gives the same hashes.
func manifestsFor(v uint8, batchID string, b Batch, created time.Time) []Manifest {
	if !inOffsetOrder(b) {
		return manifestsSorted(v, batchID, b, created)
	}
	var chains chainGroups
	var scratch encoder
	var rec ConnectionRecord // made once per hit, kept off the heap
	var src Source
	var access, conns *chainAcc
	for i := range b.Hits {
		h := &b.Hits[i]
		if access == nil || h.Source.Topic != src.Topic || h.Source.Partition != src.Partition {
			src = h.Source
			access = chains.of(chainKey{tableAccess, src.Topic, src.Partition})
			conns = chains.of(chainKey{tableConnections, src.Topic, src.Partition})
		}
		scratch.b = scratch.b[:0]
		rec = ConnectionOf(h)
		if v == 2 {
			access.add(encodeAccessV2(&scratch, h))
			scratch.b = scratch.b[:0]
			conns.add(encodeConnectionV2(&scratch, &rec))
			continue
		}
		access.add(encodeHit(&scratch, v, tableAccess, h))
		scratch.b = scratch.b[:0]
		conns.add(connectionTable.encode(&scratch, &rec))
	}
	for i := range b.Quarantine {
		q := &b.Quarantine[i]
		scratch.b = scratch.b[:0]
		chains.of(chainKey{tableQuarantine, q.Source.Topic, q.Source.Partition}).add(encodeQuarantined(&scratch, v, q))
	}
	out := make([]Manifest, 0, len(chains.order))
	for _, k := range chains.order {
		a := chains.by[k]
		out = append(out, Manifest{
			Version: v, Created: created, BatchID: batchID, Table: k.table, Topic: k.topic, Partition: k.partition,
			FirstOffset: a.first, LastOffset: a.last, Rows: a.rows, Groups: a.groups(),
		})
	}
	return out
}

// inOffsetOrder reports whether, within each chain, the batch's hits and
// its quarantined messages come in strictly increasing offset order.
func inOffsetOrder(b Batch) bool {
	return increasing(len(b.Hits), func(i int) Source { return b.Hits[i].Source }) &&
		increasing(len(b.Quarantine), func(i int) Source { return b.Quarantine[i].Source })
}

// increasing reports whether the offsets of the n sources src gives
// increase strictly within each topic and partition.
func increasing(n int, src func(int) Source) bool {
	type part struct {
		topic     string
		partition int32
	}
	last := map[part]int64{}
	var cur part
	var prev int64
	for i := range n {
		s := src(i)
		p := part{s.Topic, s.Partition}
		switch {
		case i == 0 || p != cur:
			if i > 0 {
				last[cur] = prev
			}
			if l, seen := last[p]; seen && s.Offset <= l {
				return false
			}
			cur = p
		case s.Offset <= prev:
			return false
		}
		prev = s.Offset
	}
	return true
}

// chainGroups are the chains of a batch being hashed, in order of first
// row.
type chainGroups struct {
	by    map[chainKey]*chainAcc
	order []chainKey
}

func (c *chainGroups) of(k chainKey) *chainAcc {
	a := c.by[k]
	if a == nil {
		if c.by == nil {
			c.by = map[chainKey]*chainAcc{}
		}
		a = &chainAcc{first: -1}
		c.by[k] = a
		c.order = append(c.order, k)
	}
	return a
}

// chainAcc hashes the rows of one chain of a batch, given in offset order,
// into their (day, site) groups.
type chainAcc struct {
	first, last int64
	rows        uint64
	grouped     []*groupAcc
	cur         *groupAcc
}

// groupAcc is one (day, site) group's running hashes.
type groupAcc struct {
	day       int64
	site      string
	rows      uint64
	h, dh     hash.Hash
	hasDetail bool
	n         [binary.MaxVarintLen64]byte // a length prefix
}

// add hashes r, which the caller may overwrite once add returns.
func (a *chainAcc) add(r encodedRow) {
	if a.rows == 0 {
		a.first = r.offset
	}
	a.last = r.offset
	a.rows++
	g := a.cur
	if g == nil || g.day != r.day || g.site != r.site {
		g = nil
		for _, x := range a.grouped {
			if x.day == r.day && x.site == r.site {
				g = x
				break
			}
		}
		if g == nil {
			g = &groupAcc{day: r.day, site: r.site, h: sha256.New(), dh: sha256.New()}
			a.grouped = append(a.grouped, g)
		}
		a.cur = g
	}
	g.rows++
	// as groupRows writes each row
	g.h.Write(g.n[:binary.PutUvarint(g.n[:], uint64(len(r.data)))])
	g.h.Write(r.data)
	if r.detail != nil {
		g.hasDetail = true
		g.dh.Write(g.n[:binary.PutUvarint(g.n[:], uint64(len(r.detail)))])
		g.dh.Write(r.detail)
	}
}

// groups returns the groups in groupRows' order: by day, then site.
func (a *chainAcc) groups() []ManifestGroup {
	slices.SortFunc(a.grouped, func(x, y *groupAcc) int {
		if c := cmpInt(x.day, y.day); c != 0 {
			return c
		}
		return strings.Compare(x.site, y.site)
	})
	out := make([]ManifestGroup, 0, len(a.grouped))
	for _, g := range a.grouped {
		m := ManifestGroup{Day: time.Unix(g.day*86400, 0).UTC(), Site: g.site, Rows: g.rows, Hash: hex.EncodeToString(g.h.Sum(nil))}
		if g.hasDetail {
			m.DetailHash = hex.EncodeToString(g.dh.Sum(nil))
		}
		out = append(out, m)
	}
	return out
}

// manifestsSorted is manifestsFor for a batch not in offset order: every
// row's encoding is kept, then sorted and grouped as verify does.
func manifestsSorted(v uint8, batchID string, b Batch, created time.Time) []Manifest {
	type acc struct {
		rows        []encodedRow
		first, last int64
	}
	parts := map[chainKey]*acc{}
	var order []chainKey
	add := func(k chainKey, r encodedRow) {
		a := parts[k]
		if a == nil {
			a = &acc{first: r.offset, last: r.offset}
			parts[k] = a
			order = append(order, k)
		}
		a.first, a.last = min(a.first, r.offset), max(a.last, r.offset)
		a.rows = append(a.rows, r)
	}
	arena := &encoder{}
	for i := range b.Hits {
		h := &b.Hits[i]
		add(chainKey{tableAccess, h.Source.Topic, h.Source.Partition}, encodeHit(arena, v, tableAccess, h))
		add(chainKey{tableConnections, h.Source.Topic, h.Source.Partition}, encodeHit(arena, v, tableConnections, h))
	}
	for i := range b.Quarantine {
		q := &b.Quarantine[i]
		add(chainKey{tableQuarantine, q.Source.Topic, q.Source.Partition}, encodeQuarantined(arena, v, q))
	}
	out := make([]Manifest, 0, len(order))
	for _, k := range order {
		a := parts[k]
		out = append(out, Manifest{
			Version: v, Created: created, BatchID: batchID, Table: k.table, Topic: k.topic, Partition: k.partition,
			FirstOffset: a.first, LastOffset: a.last, Rows: uint64(len(a.rows)), Groups: groupRows(a.rows),
		})
	}
	return out
}

// writeManifests chains, signs and stores ms, the (unchained, unsigned)
// manifests of batches whose rows are stored, in one insert with their
// deduplication token. A manifest names its batch's ID, also when the batch
// went in with others: a batch rebuilt alone after a crash finds it and adds
// no second manifest.
func (s *Store) writeManifests(ctx context.Context, token string, ms []Manifest) error {
	st := s.integrity()
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.signer == nil {
		return nil
	}
	if !st.registered {
		if err := s.registerKey(ctx, st.signer); err != nil {
			return err
		}
		st.registered = true
	}
	if len(ms) == 0 {
		return nil
	}
	version := ms[0].Version
	created := time.Now().UTC().Truncate(time.Millisecond)
	keyID := integrity.KeyID(st.signer.Public())
	if st.heads == nil {
		st.heads = map[chainKey]chainHead{}
	}
	if !st.writerKnown && version >= 2 {
		w, err := s.writerHead(ctx, keyID)
		if err != nil {
			return err
		}
		st.writer, st.writerKnown = w, true
	}
	prev := st.writer
	var writer writerHead
	todo := ms[:0]
	for i := range ms {
		m := ms[i]
		m.Created = created
		k := chainKey{m.Table, m.Topic, m.Partition}
		head, ok := st.heads[k]
		if !ok || m.FirstOffset != head.last+1 {
			var err error
			if head, err = s.chainHead(ctx, k); err != nil {
				return err
			}
			// A replay (after a crash, before the offsets were committed):
			// its manifest is already in the chain.
			stored, err := s.hasManifest(ctx, k, m.BatchID)
			if err != nil {
				return err
			}
			if stored {
				st.heads[k] = head
				continue
			}
		}
		m.PrevHash, m.KeyID = head.hash, keyID
		if version >= 2 {
			m.Seq = head.seq + 1
		}
		todo = append(todo, m)
	}
	ms = todo
	if len(ms) == 0 {
		return nil
	}
	var chains []string
	for _, m := range ms {
		chains = append(chains, chainKey{m.Table, m.Topic, m.Partition}.String())
	}
	for i := range ms {
		m := &ms[i]
		if version >= 2 {
			m.WriterSeq, m.WriterPrev, m.WriterPrevChains, m.WriterChains = prev.seq+1, prev.hashes, prev.chains, chains
		}
		m.Hash = m.computeHash()
		writer.seq, writer.hashes, writer.chains = m.WriterSeq, append(writer.hashes, m.Hash), chains
		raw, _ := hex.DecodeString(m.Hash)
		m.Signature = hex.EncodeToString(st.signer.Sign(raw))
	}
	// Until the insert is acknowledged the heads are unknown.
	for _, m := range ms {
		delete(st.heads, chainKey{m.Table, m.Topic, m.Partition})
	}
	st.writerKnown = false
	ctx, cancel := context.WithTimeout(ctx, s.cfg.InsertTimeout)
	defer cancel()
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_deduplication_token": token}))
	bt, err := s.prepareInsert(ctx, s.db.Ops+".manifests", "created_at, batch_id, db_table, kafka_topic, kafka_partition, first_offset, last_offset, rows, group_days, group_sites, group_rows, group_hashes, group_detail_hashes, prev_hash, hash, key_id, signature, version, chain_seq, writer_seq, writer_prev, writer_prev_chains, writer_chains")
	if err != nil {
		return fmt.Errorf("write manifests: %w", err)
	}
	defer bt.Abort() //nolint:errcheck // no-op once sent
	for _, m := range ms {
		n := len(m.Groups)
		days, sites, rows, hashes, details := make([]time.Time, n), make([]string, n), make([]uint64, n), make([]string, n), make([]string, n)
		for i, g := range m.Groups {
			days[i], sites[i], rows[i], hashes[i], details[i] = g.Day, g.Site, g.Rows, g.Hash, g.DetailHash
		}
		if err := bt.Append(m.Created, m.BatchID, m.Table, m.Topic, m.Partition, m.FirstOffset, m.LastOffset, m.Rows,
			days, sites, rows, hashes, details, m.PrevHash, m.Hash, m.KeyID, m.Signature,
			m.Version, m.Seq, m.WriterSeq, nonNil(m.WriterPrev), nonNil(m.WriterPrevChains), nonNil(m.WriterChains)); err != nil {
			return fmt.Errorf("write manifests: %w", err)
		}
	}
	if err := bt.Send(); err != nil {
		return fmt.Errorf("write manifests: %w", err)
	}
	for _, m := range ms {
		st.heads[chainKey{m.Table, m.Topic, m.Partition}] = chainHead{hash: m.Hash, batchID: m.BatchID, last: m.LastOffset, seq: m.Seq}
	}
	st.writer, st.writerKnown = writer, version >= 2
	return nil
}

// hasManifest reports whether the chain holds a manifest of batch id.
func (s *Store) hasManifest(ctx context.Context, k chainKey, id string) (bool, error) {
	ctx = chsql.WithParams(ctx, map[string]string{"t": k.table, "tp": chsql.Escape(k.topic), "p": strconv.Itoa(int(k.partition)), "b": chsql.Escape(id)})
	var n uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM "+s.db.Ops+".manifests WHERE db_table = {t:String} AND kafka_topic = {tp:String} AND kafka_partition = {p:Int32} AND batch_id = {b:String}").Scan(&n); err != nil {
		return false, fmt.Errorf("look up manifest of batch %s: %w", id, err)
	}
	return n > 0, nil
}

// chainHead reads the chain's latest manifest; zero for none. The latest
// is the highest sequence number, not the highest offset: offsets start
// again after a broker restart. Version-1 manifests (sequence 0) had only
// growing offsets.
func (s *Store) chainHead(ctx context.Context, k chainKey) (chainHead, error) {
	ctx = chsql.WithParams(ctx, map[string]string{"t": k.table, "tp": chsql.Escape(k.topic), "p": strconv.Itoa(int(k.partition))})
	rows, err := s.conn.Query(ctx, "SELECT hash, batch_id, last_offset, chain_seq FROM "+s.db.Ops+".manifests WHERE db_table = {t:String} AND kafka_topic = {tp:String} AND kafka_partition = {p:Int32} ORDER BY chain_seq DESC, first_offset DESC, created_at DESC LIMIT 1")
	if err != nil {
		return chainHead{}, fmt.Errorf("read manifest chain head: %w", err)
	}
	defer rows.Close()
	var h chainHead
	if rows.Next() {
		if err := rows.Scan(&h.hash, &h.batchID, &h.last, &h.seq); err != nil {
			return chainHead{}, fmt.Errorf("read manifest chain head: %w", err)
		}
	}
	return h, rows.Err()
}

// writerHead reads the latest insert of manifests signed with key id;
// zero for none. It scans the key and sequence columns of the whole table,
// once per Store and after a failed insert.
func (s *Store) writerHead(ctx context.Context, keyID string) (writerHead, error) {
	ctx = chsql.WithParams(ctx, map[string]string{"k": keyID})
	rows, err := s.conn.Query(ctx, "SELECT hash, toString(db_table), toString(kafka_topic), kafka_partition, writer_seq FROM "+s.db.Ops+".manifests WHERE key_id = {k:String} AND version >= 2 AND writer_seq = (SELECT max(writer_seq) FROM "+s.db.Ops+".manifests WHERE key_id = {k:String} AND version >= 2) ORDER BY hash")
	if err != nil {
		return writerHead{}, fmt.Errorf("read manifest writer head: %w", err)
	}
	defer rows.Close()
	var w writerHead
	for rows.Next() {
		var k chainKey
		var h string
		if err := rows.Scan(&h, &k.table, &k.topic, &k.partition, &w.seq); err != nil {
			return writerHead{}, fmt.Errorf("read manifest writer head: %w", err)
		}
		w.hashes, w.chains = append(w.hashes, h), append(w.chains, k.String())
	}
	return w, rows.Err()
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *Store) registerKey(ctx context.Context, sg *integrity.Signer) error {
	ctx = chsql.WithParams(ctx, map[string]string{
		"id": integrity.KeyID(sg.Public()), "pem": chsql.Escape(string(sg.PublicPEM())), "t": chsql.Time(time.Now()),
	})
	if err := s.conn.Exec(ctx, "INSERT INTO "+s.db.Ops+".instance_keys (key_id, public_pem, first_seen) SELECT {id:String}, {pem:String}, {t:DateTime64(3, 'UTC')} WHERE {id:String} NOT IN (SELECT key_id FROM "+s.db.Ops+".instance_keys)"); err != nil {
		return fmt.Errorf("register instance key: %w", err)
	}
	return nil
}

// registeredKeys returns the public keys registered by instances.
func (s *Store) registeredKeys(ctx context.Context) (map[string]ed25519.PublicKey, error) {
	rows, err := s.conn.Query(ctx, "SELECT key_id, public_pem FROM "+s.db.Ops+".instance_keys FINAL")
	if err != nil {
		return nil, fmt.Errorf("read instance keys: %w", err)
	}
	defer rows.Close()
	out := map[string]ed25519.PublicKey{}
	for rows.Next() {
		var id, pemText string
		if err := rows.Scan(&id, &pemText); err != nil {
			return nil, fmt.Errorf("read instance keys: %w", err)
		}
		pub, err := integrity.ParsePublicPEM([]byte(pemText))
		if err != nil {
			continue // reported by verify as an unknown key
		}
		if integrity.KeyID(pub) == id {
			out[id] = pub
		}
	}
	return out, rows.Err()
}

// RetentionReport is the retention report of store/retention with the head
// of every manifest chain added: the report says which signed state it
// describes.
func (s *Store) RetentionReport(ctx context.Context) (retention.Report, error) {
	rep, err := s.Enforcer.RetentionReport(ctx)
	if err != nil {
		return rep, err
	}
	rep.Integrity, err = s.ChainHeads(ctx)
	return rep, err
}

// ChainHeads returns the latest manifest of every chain, ordered by table,
// topic and partition. The latest is the highest chain sequence, as in
// chainHead.
func (s *Store) ChainHeads(ctx context.Context) ([]retention.ChainHead, error) {
	rows, err := s.conn.Query(ctx, "SELECT toString(db_table), toString(kafka_topic), kafka_partition, count(), "+
		"argMax(hash, (chain_seq, first_offset, created_at) AS latest), argMax(key_id, latest), argMax(created_at, latest) FROM "+s.db.Ops+".manifests "+
		"GROUP BY db_table, kafka_topic, kafka_partition ORDER BY db_table, kafka_topic, kafka_partition")
	if err != nil {
		return nil, fmt.Errorf("read manifest chain heads: %w", err)
	}
	defer rows.Close()
	heads := []retention.ChainHead{}
	for rows.Next() {
		var h retention.ChainHead
		if err := rows.Scan(&h.Table, &h.Topic, &h.Partition, &h.Manifests, &h.Hash, &h.KeyID, &h.Created); err != nil {
			return nil, fmt.Errorf("read manifest chain heads: %w", err)
		}
		h.Created = h.Created.UTC()
		heads = append(heads, h)
	}
	return heads, rows.Err()
}
