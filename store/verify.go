package store

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/connlog/connlog/store/integrity"
)

// Problem kinds reported by Verify.
const (
	ProblemSignature = "bad-signature"    // signature invalid, or by an unknown key
	ProblemManifest  = "manifest-altered" // a manifest's fields no longer match its hash
	ProblemGap       = "chain-gap"        // a manifest's predecessor is missing (deleted)
	ProblemFork      = "chain-fork"       // two manifests claim the same predecessor
	ProblemAltered   = "rows-altered"     // same rows count, different content
	ProblemDeleted   = "rows-deleted"     // rows missing before their lifetime ended
	ProblemAdded     = "rows-added"       // rows no manifest accounts for
)

// Problem is one finding of Verify.
type Problem struct {
	Kind      string    `json:"kind"`
	BatchID   string    `json:"batch_id,omitempty"`
	Table     string    `json:"table"`
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Offsets   string    `json:"offsets,omitempty"` // first-last
	Day       time.Time `json:"day,omitzero"`
	Site      string    `json:"site,omitempty"`
	Detail    string    `json:"detail"`
}

// String names the batch and what is wrong with it.
func (p Problem) String() string {
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
	Groups   int       `json:"groups_checked"`
	Expired  int       `json:"groups_expired"`
	Rows     uint64    `json:"rows_checked"`
	KeyIDs   []string  `json:"key_ids"`
	Problems []Problem `json:"problems"`
	// PreManifestRows counts stored rows older than the first manifest of
	// their chain (written before tamper evidence existed): not checkable.
	PreManifestRows uint64 `json:"pre_manifest_rows"`
}

// OK reports whether nothing is wrong.
func (r VerifyReport) OK() bool { return len(r.Problems) == 0 }

// Verify walks every manifest chain: it checks each manifest's hash and
// Ed25519 signature (keys: trusted, or if none are given the keys
// registered in instance_keys), that every predecessor exists, and
// recomputes the hashes of every (day, site) group of rows still within
// its lifetime. Rows past their lifetime may be gone (TTL); anything else
// missing, changed or added is reported, naming the batch.
func (s *Store) Verify(ctx context.Context, trusted ...ed25519.PublicKey) (VerifyReport, error) {
	rep := VerifyReport{Checked: time.Now().UTC()}
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
	rcfg := s.cfg.Retention.withDefaults()
	policies := map[string]retentionTable{}
	for _, t := range retentionTables(s.cfg) {
		policies[t.table] = t
	}
	tables := map[string]struct {
		full, cols string
		scan       func(func(...any) error) (encodedRow, error)
		policy     retentionTable
		detail     Period // lifetime of the detail columns; zero: the row's
	}{
		tableAccess:      {s.db.Access + ".access_log", accessHashColumns, scanAccess, policies[s.db.Access+".access_log"], rcfg.AccessDetail},
		tableConnections: {s.db.Connections + ".connection_records", connectionHashColumns, scanConnection, policies[s.db.Connections+".connection_records"], Period{}},
		tableQuarantine:  {s.db.Ops + ".quarantine", quarantineHashColumns, scanQuarantine, retentionTable{def: rcfg.Quarantine}, Period{}},
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
		for i := range ms {
			m := &ms[i]
			byHash[m.Hash] = m
			next[m.PrevHash]++
		}
		for i := range ms {
			m := &ms[i]
			if got := m.computeHash(); got != m.Hash {
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
		t := tables[k.table]
		if t.full == "" {
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
				if !rep.Checked.Before(t.policy.policy(g.Site).AddTo(g.Day)) {
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
		pre, err := s.readChainRows(ctx, t.full, t.cols, t.scan, k, ms, check)
		if err != nil {
			return rep, err
		}
		if pre.rows > 0 && ms[0].PrevHash != "" {
			// the chain's start is gone: its rows are signed by nothing
			problem(&ms[0], ProblemAdded, fmt.Sprintf("%d stored rows precede the first remaining manifest, whose predecessor is missing", pre.rows))
		} else {
			rep.PreManifestRows += pre.rows
		}
		if pre.added > 0 {
			problem(nil, ProblemAdded, fmt.Sprintf("%d stored rows are in no batch manifest", pre.added))
		}
	}
	return rep, nil
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
func (s *Store) readManifests(ctx context.Context) (map[chainKey][]Manifest, error) {
	rows, err := s.conn.Query(ctx, "SELECT created_at, batch_id, toString(db_table), toString(kafka_topic), kafka_partition, first_offset, last_offset, rows, group_days, group_sites, group_rows, group_hashes, group_detail_hashes, prev_hash, hash, key_id, signature FROM "+
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
			&days, &sites, &counts, &hashes, &details, &m.PrevHash, &m.Hash, &m.KeyID, &m.Signature); err != nil {
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
// each manifest the rows of its offset range (check is called once per
// manifest, in order, also with no rows), so that memory holds one batch.
func (s *Store) readChainRows(ctx context.Context, table, cols string, scan func(func(...any) error) (encodedRow, error), k chainKey, ms []Manifest, check func(int, []encodedRow)) (preManifest, error) {
	var pre preManifest
	ctx = withParams(ctx, map[string]string{"tp": escapeParam(k.topic), "p": strconv.Itoa(int(k.partition))})
	rows, err := s.conn.Query(ctx, "SELECT "+cols+" FROM "+table+" WHERE kafka_topic = {tp:String} AND kafka_partition = {p:Int32} ORDER BY kafka_offset")
	if err != nil {
		return pre, fmt.Errorf("read rows of %s: %w", table, err)
	}
	defer rows.Close()
	next := 0 // the next manifest not yet checked
	var buf []encodedRow
	flushTo := func(i int) { // check manifests before i
		for ; next < i; next++ {
			check(next, buf)
			buf = buf[:0]
		}
	}
	for rows.Next() {
		r, err := scan(rows.Scan)
		if err != nil {
			return pre, fmt.Errorf("read rows of %s: %w", table, err)
		}
		// ms is ordered by first offset: the last manifest starting at or
		// before the row's offset is the only candidate.
		i, _ := slices.BinarySearchFunc(ms, r.offset, func(m Manifest, off int64) int { return cmpInt(m.FirstOffset, off+1) })
		i--
		switch {
		case i < 0:
			pre.rows++
		case r.offset > ms[i].LastOffset:
			pre.added++
		default:
			flushTo(i)
			buf = append(buf, r)
		}
	}
	if err := rows.Err(); err != nil {
		return pre, fmt.Errorf("read rows of %s: %w", table, err)
	}
	flushTo(len(ms))
	return pre, nil
}
