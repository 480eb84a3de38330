package retention

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/connlog/connlog/store/internal/chsql"
)

// ReportEntry is the retention state of one table and site.
type ReportEntry struct {
	Class string `json:"class"`
	Table string `json:"table"`
	Site  string `json:"site,omitempty"`
	// Policy is the lifetime, e.g. "12mo"; "until released" for holds.
	Policy string `json:"policy"`
	// Oldest and Newest stored event times; zero when nothing is stored.
	Oldest time.Time `json:"oldest,omitzero"`
	Newest time.Time `json:"newest,omitzero"`
	Rows   uint64    `json:"rows"`
	// Bytes on disk (system.parts, active parts). For a table split by
	// site, each site gets its share by rows: BytesEstimated says so.
	Bytes          uint64 `json:"bytes_on_disk"`
	BytesEstimated bool   `json:"bytes_estimated,omitempty"`
	// LastRun is the last enforcement pass, LastRemoved what it removed.
	LastRun     time.Time `json:"last_enforcement,omitzero"`
	LastRemoved uint64    `json:"last_removed"`
	// Overdue flags a record older than its lifetime plus the grace.
	Overdue bool   `json:"overdue"`
	Detail  string `json:"detail,omitempty"`
}

// Report is the retention report: what is stored, for how long it may be,
// and whether anything outlived its lifetime.
type Report struct {
	Generated time.Time     `json:"generated"`
	Grace     string        `json:"grace"`
	Entries   []ReportEntry `json:"entries"`
	// Overdue is true when any entry is.
	Overdue bool `json:"overdue"`
	// Integrity is the head of every manifest chain when the report was
	// made: a printed report names the signed state it describes, which
	// `connlog verify` can later prove unchanged (or extended only).
	// Filled by package store, which owns the manifests.
	Integrity []ChainHead `json:"integrity_chain_heads"`
}

// ChainHead is the latest manifest of one chain (a table, a Kafka topic
// and partition): its hash, the key that signed it and how long the chain
// is.
type ChainHead struct {
	Table     string    `json:"table"`
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Manifests uint64    `json:"manifests"`
	Hash      string    `json:"hash"`
	KeyID     string    `json:"key_id"`
	Created   time.Time `json:"created_at"`
}

// RetentionReport describes, per data class, table and site: the lifetime,
// the oldest and newest stored event times, rows, bytes on disk, the last
// enforcement pass and what it removed, and whether anything is older than
// its lifetime allows (plus Retention.Grace). Legal holds are listed as
// their own class: held copies live until released, and an expired hold
// whose copies are still there is overdue.
func (s *Enforcer) RetentionReport(ctx context.Context) (Report, error) {
	now := time.Now().UTC()
	grace := s.cfg.WithDefaults().Grace
	rep := Report{Generated: now, Grace: grace.String()}
	tables, err := s.allRetentionTables(ctx)
	if err != nil {
		return rep, err
	}
	for _, t := range tables {
		entries, err := s.reportTable(ctx, t, now, grace)
		if err != nil {
			return rep, err
		}
		rep.Entries = append(rep.Entries, entries...)
	}
	if t, ok := s.detailTable(); ok {
		e := ReportEntry{Class: ClassAccessDetail, Table: t.table + "#detail", Policy: t.def.String(), Detail: "query, referer, user agent, forwarded-for"}
		var oldest, newest time.Time
		if err := s.conn.QueryRow(ctx, "SELECT toDateTime64(min(event_time), 3, 'UTC'), toDateTime64(max(event_time), 3, 'UTC'), count() FROM "+t.table+" WHERE "+detailPresent).Scan(&oldest, &newest, &e.Rows); err != nil {
			return rep, fmt.Errorf("retention report of access log detail: %w", err)
		}
		if e.Rows > 0 {
			e.Oldest, e.Newest = oldest.UTC(), newest.UTC()
			if now.After(t.def.AddTo(e.Oldest).Add(grace)) {
				e.Overdue = true
				e.Detail += ": oldest detail expired on " + t.def.AddTo(e.Oldest).Format(time.DateOnly)
			}
		}
		rep.Entries = append(rep.Entries, e)
	}
	holds, err := s.reportHolds(ctx, now, grace)
	if err != nil {
		return rep, err
	}
	rep.Entries = append(rep.Entries, holds...)
	for _, e := range rep.Entries {
		rep.Overdue = rep.Overdue || e.Overdue
	}
	return rep, nil
}

func (s *Enforcer) reportTable(ctx context.Context, t Table, now time.Time, grace time.Duration) ([]ReportEntry, error) {
	siteExpr := "''"
	if t.bySite {
		siteExpr = "toString(site)"
	}
	rows, err := s.conn.Query(ctx, "SELECT "+siteExpr+" AS s, toDateTime64(min("+t.timeCol+"), 3, 'UTC'), toDateTime64(max("+t.timeCol+"), 3, 'UTC'), count() FROM "+t.table+" GROUP BY s ORDER BY s")
	if err != nil {
		return nil, fmt.Errorf("retention report of %s: %w", t.table, err)
	}
	bySite := map[string]*ReportEntry{}
	var out []*ReportEntry
	var total uint64
	for rows.Next() {
		e := &ReportEntry{Class: t.class, Table: t.table}
		if err := rows.Scan(&e.Site, &e.Oldest, &e.Newest, &e.Rows); err != nil {
			rows.Close()
			return nil, fmt.Errorf("retention report of %s: %w", t.table, err)
		}
		total += e.Rows
		bySite[e.Site] = e
		out = append(out, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("retention report of %s: %w", t.table, err)
	}
	// Sites with their own lifetime are listed even when empty.
	for site := range t.overrides {
		if bySite[site] == nil {
			e := &ReportEntry{Class: t.class, Table: t.table, Site: site}
			bySite[site] = e
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		e := &ReportEntry{Class: t.class, Table: t.table}
		bySite[""] = e
		out = append(out, e)
	}
	db, name, _ := strings.Cut(t.table, ".")
	var bytes uint64
	if err := s.conn.QueryRow(chsql.WithParams(ctx, map[string]string{"d": chsql.Escape(db), "n": chsql.Escape(name)}),
		"SELECT sum(bytes_on_disk) FROM system.parts WHERE database = {d:String} AND table = {n:String} AND active").Scan(&bytes); err != nil {
		return nil, fmt.Errorf("retention report of %s: bytes on disk: %w", t.table, err)
	}
	runs, err := s.conn.Query(chsql.WithParams(ctx, map[string]string{"tb": chsql.Escape(t.table)}),
		"SELECT site, max(time), argMax(greatest(toInt64(rows_before) - toInt64(rows_after), 0), time) FROM "+s.db.Ops+".retention_runs WHERE db_table = {tb:String} GROUP BY site")
	if err != nil {
		return nil, fmt.Errorf("retention report of %s: last runs: %w", t.table, err)
	}
	for runs.Next() {
		var site string
		var at time.Time
		var removed int64
		if err := runs.Scan(&site, &at, &removed); err != nil {
			runs.Close()
			return nil, fmt.Errorf("retention report of %s: last runs: %w", t.table, err)
		}
		if e := bySite[site]; e != nil {
			e.LastRun, e.LastRemoved = at.UTC(), uint64(removed)
		}
	}
	runs.Close()
	res := make([]ReportEntry, 0, len(out))
	for _, e := range out {
		p := t.Policy(e.Site)
		e.Policy = p.String()
		switch {
		case total > 0 && len(out) > 1:
			e.Bytes, e.BytesEstimated = uint64(float64(bytes)*float64(e.Rows)/float64(total)), true
		default:
			e.Bytes = bytes
		}
		if e.Rows > 0 {
			e.Oldest, e.Newest = e.Oldest.UTC(), e.Newest.UTC()
			if limit := p.AddTo(e.Oldest).Add(grace); now.After(limit) {
				e.Overdue = true
				e.Detail = "oldest record expired on " + p.AddTo(e.Oldest).Format(time.DateOnly)
			}
		} else {
			e.Oldest, e.Newest = time.Time{}, time.Time{}
		}
		res = append(res, *e)
	}
	slices.SortFunc(res, func(a, b ReportEntry) int { return strings.Compare(a.Site, b.Site) })
	return res, nil
}

func (s *Enforcer) reportHolds(ctx context.Context, now time.Time, grace time.Duration) ([]ReportEntry, error) {
	hs, err := s.holds.List(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := s.conn.Query(ctx, "SELECT hold_id, min(event_time), max(event_time), count() FROM "+s.heldRecords()+" GROUP BY hold_id")
	if err != nil {
		return nil, fmt.Errorf("retention report of holds: %w", err)
	}
	type held struct {
		oldest, newest time.Time
		n              uint64
	}
	stored := map[string]held{}
	for rows.Next() {
		var id string
		var h held
		if err := rows.Scan(&id, &h.oldest, &h.newest, &h.n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("retention report of holds: %w", err)
		}
		stored[id] = h
	}
	rows.Close()
	var out []ReportEntry
	for _, h := range hs {
		st := stored[h.ID]
		delete(stored, h.ID)
		e := ReportEntry{Class: ClassHolds, Table: s.heldRecords(), Site: h.Site, Rows: st.n,
			Policy: "until released, expires " + h.Expires.UTC().Format(time.DateOnly), Detail: "hold " + h.ID + " (" + h.Reference + ")"}
		if st.n > 0 {
			e.Oldest, e.Newest = st.oldest.UTC(), st.newest.UTC()
		}
		if !h.Released.IsZero() {
			e.Policy = "released " + h.Released.UTC().Format(time.DateOnly)
		}
		if st.n > 0 && (!h.Released.IsZero() || now.After(h.Expires.Add(grace))) {
			e.Overdue = true
			e.Detail += ": copies outlive the hold"
		}
		out = append(out, e)
	}
	for id, st := range stored {
		out = append(out, ReportEntry{Class: ClassHolds, Table: s.heldRecords(), Rows: st.n, Oldest: st.oldest.UTC(), Newest: st.newest.UTC(),
			Policy: "none", Overdue: true, Detail: "copies of unregistered hold " + id})
	}
	return out, nil
}
