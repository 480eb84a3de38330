package store

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/connlog/connlog/store/integrity"
	"github.com/connlog/connlog/store/internal/chsql"
	"github.com/connlog/connlog/store/retention"
)

// Problem kinds reported by Verify.
const (
	ProblemSignature = "bad-signature"    // signature invalid, or by an unknown key
	ProblemManifest  = "manifest-altered" // a manifest's fields no longer match its hash
	ProblemGap       = "chain-gap"        // a manifest's predecessor (or successor) is missing (deleted)
	ProblemMissing   = "chain-missing"    // a whole chain is gone: no manifest of it remains
	ProblemFork      = "chain-fork"       // two manifests claim the same predecessor
	ProblemAltered   = "rows-altered"     // same rows count, different content
	ProblemDeleted   = "rows-deleted"     // rows missing before their lifetime ended
	ProblemAdded     = "rows-added"       // rows no manifest accounts for
)

// Problem is one finding of Verify.
type Problem struct {
	Kind      string    `json:"kind"`
	BatchID   string    `json:"batch_id,omitempty"`
	Table     string    `json:"table"` // "": about no one chain
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Offsets   string    `json:"offsets,omitempty"` // first-last
	Day       time.Time `json:"day,omitzero"`
	Site      string    `json:"site,omitempty"`
	Detail    string    `json:"detail"`
}

// String names the batch and what is wrong with it.
func (p Problem) String() string {
	if p.Table == "" { // about no one chain
		return p.Kind + ": " + p.Detail
	}
	s := p.Kind + ": " + p.Table + " " + p.Topic + "/" + strconv.Itoa(int(p.Partition))
	if p.Offsets != "" {
		s += " offsets " + p.Offsets
	}
	if p.BatchID != "" {
		s += " batch " + p.BatchID
	}
	if !p.Day.IsZero() {
		s += " day " + p.Day.Format("2006-01-02")
	}
	if p.Site != "" {
		s += " site " + p.Site
	}
	return s + ": " + p.Detail
}

// VerifyReport is the outcome of Verify.
type VerifyReport struct {
	Checked   time.Time `json:"checked"`
	Chains    int       `json:"chains"`
	Manifests int       `json:"manifests"`
	// Groups counts the (day, site) groups whose rows were rehashed;
	// Expired those past their lifetime, which may be gone.
	Groups  int      `json:"groups_checked"`
	Expired int      `json:"groups_expired"`
	Rows    uint64   `json:"rows_checked"`
	KeyIDs  []string `json:"key_ids"`
	// Versions counts the manifests by hash version (1: before every
	// column was covered).
	Versions map[uint8]int `json:"hash_versions"`
	Problems []Problem     `json:"problems"`
	// Writers are, per signing key, the latest insert of manifests (hash
	// version 2): its sequence number and manifest hashes. Deleting the
	// newest inserts of every chain at once leaves nothing that names
	// them; an earlier report kept elsewhere shows it (the sequence went
	// back, or its latest manifests are gone).
	Writers []WriterHead `json:"writers"`
	// PreManifestRows counts stored rows older than the first manifest of
	// their chain (written before tamper evidence existed): not checkable.
	PreManifestRows uint64 `json:"pre_manifest_rows"`
}

// WriterHead is the latest insert of manifests signed with one key.
type WriterHead struct {
	KeyID  string   `json:"key_id"`
	Seq    uint64   `json:"writer_seq"`
	Latest []string `json:"latest"`
}

// OK reports whether nothing is wrong.
func (r VerifyReport) OK() bool { return len(r.Problems) == 0 }

// Verify walks every manifest chain: it checks each manifest's hash and
// Ed25519 signature (keys: trusted, or if none are given the keys
// registered in instance_keys), that every predecessor exists, and
// recomputes the hashes of every (day, site) group of rows still within
// its lifetime, each under its manifest's hash version. Rows past their
// lifetime may be gone (TTL); anything else missing, changed or added is
// reported, naming the batch. The writer links (writerGaps) name chains
// deleted whole or cut off at their newest end, and the rows of partitions
// no chain covers are read too (verifyUnchained).
func (s *Store) Verify(ctx context.Context, trusted ...ed25519.PublicKey) (VerifyReport, error) {
	rep := VerifyReport{Checked: time.Now().UTC(), Versions: map[uint8]int{}}
	keys := map[string]ed25519.PublicKey{}
	if len(trusted) == 0 {
		reg, err := s.registeredKeys(ctx)
		if err != nil {
			return rep, err
		}
		keys = reg
	}
	for _, k := range trusted {
		keys[integrity.KeyID(k)] = k
	}
	for id := range keys {
		rep.KeyIDs = append(rep.KeyIDs, id)
	}
	slices.Sort(rep.KeyIDs)

	chains, err := s.readManifests(ctx)
	if err != nil {
		return rep, err
	}
	rcfg := s.cfg.Retention.WithDefaults()
	policies := map[string]retention.Table{}
	for _, t := range retention.Tables(s.cfg.Retention, s.db) {
		policies[t.Name()] = t
	}
	tables := map[string]struct {
		full   string
		policy retention.Table
		detail retention.Period // lifetime of the detail columns; zero: the row's
	}{}
	for _, t := range []string{tableAccess, tableConnections, tableQuarantine} {
		x := tables[t]
		x.full = hashTableFull(t, s.db)
		x.policy = policies[x.full]
		if t == tableAccess {
			x.detail = rcfg.AccessDetail
		}
		tables[t] = x
	}
	keysOrder := make([]chainKey, 0, len(chains))
	for k := range chains {
		keysOrder = append(keysOrder, k)
	}
	slices.SortFunc(keysOrder, func(a, b chainKey) int {
		if a.table != b.table {
			return cmpStr(a.table, b.table)
		}
		if a.topic != b.topic {
			return cmpStr(a.topic, b.topic)
		}
		return cmpInt(int64(a.partition), int64(b.partition))
	})
	for _, k := range keysOrder {
		ms := chains[k]
		rep.Chains++
		rep.Manifests += len(ms)
		problem := func(m *Manifest, kind, detail string) {
			p := Problem{Kind: kind, Table: k.table, Topic: k.topic, Partition: k.partition, Detail: detail}
			if m != nil {
				p.BatchID, p.Offsets = m.BatchID, strconv.FormatInt(m.FirstOffset, 10)+"-"+strconv.FormatInt(m.LastOffset, 10)
			}
			rep.Problems = append(rep.Problems, p)
		}
		// Links and signatures.
		byHash := map[string]*Manifest{}
		next := map[string]int{}
		started := false // the chain's first manifest is there
		for i := range ms {
			m := &ms[i]
			byHash[m.Hash] = m
			next[m.PrevHash]++
			started = started || m.PrevHash == ""
			rep.Versions[m.Version]++
		}
		for i := range ms {
			m := &ms[i]
			if got := m.computeHash(); got == "" {
				problem(m, ProblemManifest, fmt.Sprintf("unknown hash version %d (written by a newer connlog?)", m.Version))
			} else if got != m.Hash {
				problem(m, ProblemManifest, "manifest fields do not match its hash")
			}
			pub, ok := keys[m.KeyID]
			sig, err1 := hex.DecodeString(m.Signature)
			raw, err2 := hex.DecodeString(m.Hash)
			switch {
			case !ok:
				problem(m, ProblemSignature, "signed by unknown key "+m.KeyID)
			case err1 != nil || err2 != nil || integrity.Verify(pub, raw, sig) != nil:
				problem(m, ProblemSignature, "signature does not verify with key "+m.KeyID)
			}
			if m.PrevHash != "" && byHash[m.PrevHash] == nil {
				problem(m, ProblemGap, "previous manifest "+short(m.PrevHash)+" is missing: a batch's manifest was deleted")
			}
		}
		for prev, n := range next {
			if n > 1 {
				label := "the chain start"
				if prev != "" {
					label = "manifest " + short(prev)
				}
				problem(nil, ProblemFork, fmt.Sprintf("%d manifests follow %s", n, label))
			}
		}
		// Rows.
		t, layout := tables[k.table], hashLayouts[k.table]
		if t.full == "" || layout == nil {
			problem(nil, ProblemManifest, "unknown table "+k.table)
			continue
		}
		check := func(i int, stored []encodedRow) {
			m := &ms[i]
			got := map[[2]string]ManifestGroup{}
			for _, g := range groupRows(stored) {
				got[[2]string{g.Day.Format(time.DateOnly), g.Site}] = g
			}
			for _, g := range m.Groups {
				key := [2]string{g.Day.Format(time.DateOnly), g.Site}
				have, ok := got[key]
				delete(got, key)
				// The earliest moment a row of the group may expire.
				if !rep.Checked.Before(t.policy.Policy(g.Site).AddTo(g.Day)) {
					rep.Expired++
					continue
				}
				rep.Groups++
				rep.Rows += have.Rows
				gp := func(kind, detail string) {
					problem(m, kind, detail)
					rep.Problems[len(rep.Problems)-1].Day, rep.Problems[len(rep.Problems)-1].Site = g.Day, g.Site
				}
				switch {
				case !ok || have.Rows < g.Rows:
					gp(ProblemDeleted, fmt.Sprintf("%d of %d rows missing before their lifetime ended", g.Rows-have.Rows, g.Rows))
				case have.Rows > g.Rows:
					gp(ProblemAdded, fmt.Sprintf("%d rows stored, %d signed", have.Rows, g.Rows))
				case have.Hash != g.Hash:
					gp(ProblemAltered, fmt.Sprintf("%d rows, content differs from what was signed", g.Rows))
				case g.DetailHash != "" && have.DetailHash != g.DetailHash &&
					(t.detail.IsZero() || rep.Checked.Before(t.detail.AddTo(g.Day))):
					gp(ProblemAltered, fmt.Sprintf("%d rows, detail (query, referer, user agent, forwarded-for) differs from what was signed before its lifetime ended", g.Rows))
				}
			}
			for _, g := range got {
				problem(m, ProblemAdded, fmt.Sprintf("%d rows of day %s site %q in the batch's offsets were never signed", g.Rows, g.Day.Format(time.DateOnly), g.Site))
			}
		}
		pre, err := s.readChainRows(ctx, t.full, layout, k, ms, check)
		if err != nil {
			return rep, err
		}
		if pre.rows > 0 && !started {
			// the chain's start is gone: its rows are signed by nothing
			problem(&ms[0], ProblemAdded, fmt.Sprintf("%d stored rows precede the first remaining manifest, whose predecessor is missing", pre.rows))
		} else {
			rep.PreManifestRows += pre.rows
		}
		if pre.added > 0 {
			problem(nil, ProblemAdded, fmt.Sprintf("%d stored rows are in no batch manifest", pre.added))
		}
	}
	if err := s.verifyUnchained(ctx, &rep, chains, func(table string) string { return tables[table].full }); err != nil {
		return rep, err
	}
	gapped := map[chainKey]bool{}
	for _, p := range rep.Problems {
		if p.Kind == ProblemGap {
			gapped[chainKey{p.Table, p.Topic, p.Partition}] = true
		}
	}
	wp, heads := writerGaps(chains, gapped)
	rep.Problems, rep.Writers = append(rep.Problems, wp...), heads
	return rep, nil
}

// writerGaps follows the writer links (hash version 2). The manifests of
// one insert share a writer sequence number per key, each names the chains
// of its insert and those of the key's previous insert: so every manifest
// there is says which manifests (key, sequence number, chain) must be there
// too. One that is not, in a chain whose own links show no gap, is the
// newest part of a chain cut off, or, with no manifest of that chain left,
// a chain deleted whole. Inserts missing whole and not named, because the
// insert after them is gone as well, are reported without a chain.
// Manifests are never removed by retention (their rows are), so a missing
// manifest is never an expiry. gapped are the chains whose own links
// already show a gap.
func writerGaps(chains map[chainKey][]Manifest, gapped map[chainKey]bool) ([]Problem, []WriterHead) {
	type slot struct {
		key string
		seq uint64
		k   chainKey
	}
	present := map[slot]bool{}
	seqs := map[string]map[uint64][]string{} // key id → writer seq → hashes
	for k, ms := range chains {
		for i := range ms {
			m := &ms[i]
			if m.Version < 2 {
				continue
			}
			present[slot{m.KeyID, m.WriterSeq, k}] = true
			if seqs[m.KeyID] == nil {
				seqs[m.KeyID] = map[uint64][]string{}
			}
			seqs[m.KeyID][m.WriterSeq] = append(seqs[m.KeyID][m.WriterSeq], m.Hash)
		}
	}
	type gap struct {
		seqs []uint64
		by   *Manifest // the first manifest naming one
	}
	gaps := map[chainKey]*gap{}
	seen := map[slot]bool{}
	expect := func(sl slot, name string, by *Manifest) {
		k, ok := parseChainKey(name)
		if !ok {
			return // the manifest hash check covers the field
		}
		sl.k = k
		if present[sl] || seen[sl] || gapped[k] {
			return
		}
		seen[sl] = true
		g := gaps[k]
		if g == nil {
			g = &gap{}
			gaps[k] = g
		}
		g.seqs = append(g.seqs, sl.seq)
		if g.by == nil || by.WriterSeq < g.by.WriterSeq {
			g.by = by
		}
	}
	for _, ms := range chains {
		for i := range ms {
			m := &ms[i]
			if m.Version < 2 {
				continue
			}
			for _, c := range m.WriterChains {
				expect(slot{key: m.KeyID, seq: m.WriterSeq}, c, m)
			}
			for _, c := range m.WriterPrevChains {
				expect(slot{key: m.KeyID, seq: m.WriterSeq - 1}, c, m)
			}
		}
	}
	var out []Problem
	for k, g := range gaps {
		slices.Sort(g.seqs)
		p := Problem{Table: k.table, Topic: k.topic, Partition: k.partition}
		by := fmt.Sprintf("manifest %s of %s %s/%d (batch %s, same key %s) names this chain's manifests of %d batches (writer sequence %d to %d)",
			short(g.by.Hash), g.by.Table, g.by.Topic, g.by.Partition, g.by.BatchID, g.by.KeyID, len(g.seqs), g.seqs[0], g.seqs[len(g.seqs)-1])
		if len(chains[k]) == 0 {
			p.Kind = ProblemMissing
			p.Detail = "no manifest of this chain remains, but " + by + ": the chain was deleted with its manifests"
		} else {
			p.Kind = ProblemGap
			p.Detail = "manifests are missing after the chain's last remaining one: " + by + ": its newest batches were deleted"
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Problem) int {
		return cmpStr(a.Table+"/"+a.Topic+"/"+strconv.Itoa(int(a.Partition)), b.Table+"/"+b.Topic+"/"+strconv.Itoa(int(b.Partition)))
	})
	var heads []WriterHead
	for key, ss := range seqs {
		var top uint64
		for n := range ss {
			top = max(top, n)
		}
		hs := slices.Clone(ss[top])
		slices.Sort(hs)
		heads = append(heads, WriterHead{KeyID: key, Seq: top, Latest: hs})
		// a hole whose next insert is there was named above
		var unnamed []uint64
		for n := uint64(1); n < top; n++ {
			if ss[n] == nil && ss[n+1] == nil {
				unnamed = append(unnamed, n)
			}
		}
		if len(unnamed) > 0 {
			out = append(out, Problem{Kind: ProblemMissing, Detail: fmt.Sprintf(
				"%d inserts of manifests signed with key %s are missing with everything they named (writer sequence %d to %d): the chains of their batches cannot be named",
				len(unnamed), key, unnamed[0], unnamed[len(unnamed)-1])})
		}
	}
	slices.SortFunc(heads, func(a, b WriterHead) int { return cmpStr(a.KeyID, b.KeyID) })
	return out, heads
}

// verifyUnchained looks at the rows of partitions no manifest chain
// covers, which the chain walk never reads: those that arrived once signing
// had begun (after the earliest manifest) are unsigned additions; older
// ones were stored before tamper evidence existed and are only counted.
func (s *Store) verifyUnchained(ctx context.Context, rep *VerifyReport, chains map[chainKey][]Manifest, full func(string) string) error {
	var t0 int64 = math.MaxInt64
	for _, ms := range chains {
		for i := range ms {
			t0 = min(t0, ms[i].Created.UnixMilli())
		}
	}
	for _, name := range []string{tableAccess, tableConnections, tableQuarantine} {
		layout := hashLayouts[name]
		pctx := chsql.WithParams(ctx, map[string]string{"t0": strconv.FormatInt(t0, 10)})
		rows, err := s.conn.Query(pctx, "SELECT toString(kafka_topic), kafka_partition, count(), countIf(toUnixTimestamp64Milli("+layout.arrival+") >= {t0:Int64}) FROM "+full(name)+" GROUP BY kafka_topic, kafka_partition ORDER BY kafka_topic, kafka_partition")
		if err != nil {
			return fmt.Errorf("read unchained rows of %s: %w", name, err)
		}
		for rows.Next() {
			var k chainKey
			var all, after uint64
			if err := rows.Scan(&k.topic, &k.partition, &all, &after); err != nil {
				rows.Close()
				return fmt.Errorf("read unchained rows of %s: %w", name, err)
			}
			k.table = name
			if len(chains[k]) > 0 {
				continue
			}
			rep.PreManifestRows += all - after
			if after > 0 {
				rep.Problems = append(rep.Problems, Problem{Kind: ProblemAdded, Table: k.table, Topic: k.topic, Partition: k.partition,
					Detail: fmt.Sprintf("%d stored rows of a partition no manifest covers arrived after signing began: they were never signed", after)})
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("read unchained rows of %s: %w", name, err)
		}
	}
	return nil
}

func short(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	return h
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// readManifests returns every manifest by chain, ordered by first offset.
// A store not yet migrated to 0013 (verify does not migrate) holds only
// version-1 manifests.
func (s *Store) readManifests(ctx context.Context) (map[chainKey][]Manifest, error) {
	var v2 uint64
	if err := s.conn.QueryRow(chsql.WithParams(ctx, map[string]string{"db": chsql.Escape(s.db.Ops)}),
		"SELECT count() FROM system.columns WHERE database = {db:String} AND table = 'manifests' AND name = 'writer_seq'").Scan(&v2); err != nil {
		return nil, fmt.Errorf("read manifests: %w", err)
	}
	extra := "toUInt8(1), toUInt64(0), toUInt64(0), CAST([] AS Array(String)), CAST([] AS Array(String)), CAST([] AS Array(String))"
	if v2 > 0 {
		extra = "version, chain_seq, writer_seq, writer_prev, writer_prev_chains, writer_chains"
	}
	rows, err := s.conn.Query(ctx, "SELECT created_at, batch_id, toString(db_table), toString(kafka_topic), kafka_partition, first_offset, last_offset, rows, group_days, group_sites, group_rows, group_hashes, group_detail_hashes, prev_hash, hash, key_id, signature, "+extra+" FROM "+
		s.db.Ops+".manifests ORDER BY db_table, kafka_topic, kafka_partition, first_offset, created_at")
	if err != nil {
		return nil, fmt.Errorf("read manifests: %w", err)
	}
	defer rows.Close()
	out := map[chainKey][]Manifest{}
	for rows.Next() {
		var m Manifest
		var days []time.Time
		var sites, hashes, details []string
		var counts []uint64
		if err := rows.Scan(&m.Created, &m.BatchID, &m.Table, &m.Topic, &m.Partition, &m.FirstOffset, &m.LastOffset, &m.Rows,
			&days, &sites, &counts, &hashes, &details, &m.PrevHash, &m.Hash, &m.KeyID, &m.Signature,
			&m.Version, &m.Seq, &m.WriterSeq, &m.WriterPrev, &m.WriterPrevChains, &m.WriterChains); err != nil {
			return nil, fmt.Errorf("read manifests: %w", err)
		}
		if len(sites) != len(days) || len(counts) != len(days) || len(hashes) != len(days) || len(details) != len(days) {
			// leave the groups out: the hash check reports it
			days = nil
		}
		for i := range days {
			m.Groups = append(m.Groups, ManifestGroup{Day: days[i].UTC(), Site: sites[i], Rows: counts[i], Hash: hashes[i], DetailHash: details[i]})
		}
		m.Created = m.Created.UTC()
		k := chainKey{m.Table, m.Topic, m.Partition}
		out[k] = append(out[k], m)
	}
	return out, rows.Err()
}

type preManifest struct {
	rows  uint64 // before the chain's first manifest
	added uint64 // after it, but in no manifest's offset range
}

// readChainRows streams a chain's stored rows in offset order and hands
// each manifest the rows of its offset range, encoded under the manifest's
// hash version (check is called once per manifest, also with no rows), so
// that memory holds the batches open at one offset.
//
// Offsets are not unique along a chain: after a broker restart or a topic
// re-creation they start again, so several manifests may cover one offset.
// The rows of such an offset are told apart by when they arrived
// (ingested_at, received_at: the Kafka message time): the data of a later
// incarnation was produced after the earlier one.
func (s *Store) readChainRows(ctx context.Context, table string, t *hashTable, k chainKey, ms []Manifest, check func(int, []encodedRow)) (preManifest, error) {
	var pre preManifest
	ctx = chsql.WithParams(ctx, map[string]string{"tp": chsql.Escape(k.topic), "p": strconv.Itoa(int(k.partition))})
	rows, err := s.conn.Query(ctx, "SELECT "+t.selectList()+" FROM "+table+" WHERE kafka_topic = {tp:String} AND kafka_partition = {p:Int32} ORDER BY kafka_offset, "+t.arrival)
	if err != nil {
		return pre, fmt.Errorf("read rows of %s: %w", table, err)
	}
	defer rows.Close()
	dest, values := t.scanner()
	bufs := map[int][]encodedRow{}
	flush := func(i int) {
		check(i, bufs[i])
		delete(bufs, i)
	}
	next := 0      // ms is ordered by first offset: the next not yet open
	var open []int // manifests whose range holds the current offset
	type scanned struct {
		vals    []any
		arrival int64
	}
	var same []scanned // the rows of one offset, by arrival
	place := func() error {
		if len(same) == 0 {
			return nil
		}
		off := same[0].vals[t.offset].(int64)
		kept := open[:0]
		for _, i := range open {
			if ms[i].LastOffset < off {
				flush(i)
			} else {
				kept = append(kept, i)
			}
		}
		open = kept
		for ; next < len(ms) && ms[next].FirstOffset <= off; next++ {
			if ms[next].LastOffset < off {
				flush(next)
			} else {
				open = append(open, next)
			}
		}
		defer func() { same = same[:0] }()
		if len(open) == 0 {
			if len(ms) == 0 || off < ms[0].FirstOffset {
				pre.rows += uint64(len(same))
			} else {
				pre.added += uint64(len(same))
			}
			return nil
		}
		// As many rows as manifests at this offset: the i-th to arrive is
		// the i-th signed. Otherwise (rows deleted or added) each row goes
		// to the first manifest signed after it arrived.
		bySigning := slices.Clone(open)
		slices.SortFunc(bySigning, func(a, b int) int {
			if ms[a].Seq != ms[b].Seq {
				return cmpInt(int64(ms[a].Seq), int64(ms[b].Seq))
			}
			return ms[a].Created.Compare(ms[b].Created)
		})
		for j, r := range same {
			i := bySigning[0]
			switch {
			case len(same) == len(bySigning):
				i = bySigning[j]
			case len(bySigning) > 1:
				i = signedAfter(ms, bySigning, r.arrival)
			}
			var row encodedRow
			if ms[i].Version >= 2 {
				row = t.encode(r.vals)
			} else {
				row = t.encodeV1(r.vals)
			}
			bufs[i] = append(bufs[i], row)
		}
		return nil
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return pre, fmt.Errorf("read rows of %s: %w", table, err)
		}
		vals, arrival := values()
		if len(same) > 0 && same[0].vals[t.offset].(int64) != vals[t.offset].(int64) {
			if err := place(); err != nil {
				return pre, fmt.Errorf("read rows of %s: %w", table, err)
			}
		}
		same = append(same, scanned{vals, arrival})
	}
	if err := rows.Err(); err != nil {
		return pre, fmt.Errorf("read rows of %s: %w", table, err)
	}
	if err := place(); err != nil {
		return pre, fmt.Errorf("read rows of %s: %w", table, err)
	}
	for _, i := range open {
		flush(i)
	}
	for ; next < len(ms); next++ {
		flush(next)
	}
	return pre, nil
}

// signedAfter picks, among the manifests open (all covering the row's
// offset), the first one created at or after the row arrived (arrival in
// milliseconds); the latest if none was.
func signedAfter(ms []Manifest, open []int, arrival int64) int {
	best, latest := -1, open[0]
	for _, i := range open {
		c := ms[i].Created.UnixMilli()
		if c >= arrival && (best < 0 || c < ms[best].Created.UnixMilli()) {
			best = i
		}
		if c > ms[latest].Created.UnixMilli() {
			latest = i
		}
	}
	if best < 0 {
		return latest
	}
	return best
}
