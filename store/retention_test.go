package store_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connlog/connlog/anonymize"
	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/integrity"
	"github.com/connlog/connlog/store/legal"
	"github.com/connlog/connlog/store/retention"
	"github.com/connlog/connlog/store/storetest"
)

// openConfigured returns a migrated store on the embedded engine with its
// own databases, configured by edit, signing manifests with a fresh key.
func openConfigured(tb testing.TB, edit func(*store.Config)) (*store.Store, *integrity.Signer) {
	tb.Helper()
	st := storetest.New(tb, func(c *store.Config) {
		if edit != nil {
			edit(c)
		}
	})
	sg, _, err := integrity.LoadOrCreate(filepath.Join(tb.TempDir(), "instance.key"))
	if err != nil {
		tb.Fatal(err)
	}
	st.SetSigner(sg)
	return st, sg
}

// reopen opens a second store on st's databases with another
// configuration, as a restarted connlog would.
func reopen(tb testing.TB, st *store.Store, edit func(*store.Config)) *store.Store {
	tb.Helper()
	cfg := storetest.Config(tb)
	cfg.DatabasePrefix = strings.TrimSuffix(st.Databases().Ops, "_ops")
	edit(&cfg)
	return storetest.Open(tb, cfg)
}

func count(tb testing.TB, st *store.Store, query string) uint64 {
	tb.Helper()
	var n uint64
	if err := st.Conn().QueryRow(tb.Context(), query).Scan(&n); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	return n
}

// monthsAgo returns the time n months before now, a few hours earlier so
// that a record at the edge is clearly past it.
func monthsAgo(now time.Time, n int) time.Time {
	return now.AddDate(0, -n, 0).Add(-6 * time.Hour).Truncate(time.Millisecond)
}

func TestTimeTravelEnforcementKeepsWhatThePolicyAllows(t *testing.T) {
	const partners = "partners.example.org"
	// The lines were ingested when they were young: a store whose lifetimes
	// keep everything (ClickHouse drops rows already expired at insert).
	young, _ := openConfigured(t, func(c *store.Config) {
		c.Retention.Connections, c.Retention.Access, c.Retention.Statistics = retention.Months(120), retention.Months(120), retention.Months(120)
	})
	ctx := t.Context()
	if _, err := young.ApplyRetention(ctx); err != nil {
		t.Fatal(err)
	}
	st := young
	db := st.Databases()
	now := time.Now().UTC()

	// One line per age and site; client port = age in months, +100 for partners.
	var hits []store.Hit
	off := int64(0)
	for _, age := range []int{26, 13, 7, 1} {
		for _, site := range []string{"www.example.org", partners} {
			off++
			h := hit(fmt.Sprintf("198.51.100.%d", age), uint16(age), monthsAgo(now, age), "GET", "/", off)
			h.Site = site
			if site == partners {
				h.ClientPort += 100
			}
			hits = append(hits, h)
		}
	}
	var audience []anonymize.Audience
	for _, h := range hits {
		audience = append(audience, anonymize.Audience{Site: h.Site, Time: h.EventTime.Truncate(time.Hour), Path: "/", Browser: "Firefox", OS: "Linux", Device: "desktop", ReferrerDomain: "(direct)", StatusClass: "2xx", Visitor: uint64(h.Source.Offset)})
	}
	if err := st.Write(ctx, store.Batch{Hits: hits, Audience: audience}); err != nil {
		t.Fatal(err)
	}
	statsDays := func() uint64 {
		return count(t, st, "SELECT uniqExact(day) FROM "+db.Stats+".audience_daily")
	}
	if n := statsDays(); n != 4 {
		t.Fatalf("statistics of %d days stored, want 4", n)
	}
	if n := count(t, st, "SELECT count() FROM "+db.Connections+".connection_records"); n != 8 {
		t.Fatalf("stored %d connection records, want 8", n)
	}
	// Hold the 13-month www record while it is still stored.
	hold, err := st.CreateHold(ctx, legal.Hold{
		Reference: "PV 2026/123", CreatedBy: "officer-1", Expires: now.Add(24 * time.Hour),
		Selector: legal.Selector{
			Network: netip.MustParsePrefix("198.51.100.13/32"), Port: 13, Site: "www.example.org",
			From: monthsAgo(now, 13).Add(-time.Hour), To: monthsAgo(now, 13).Add(time.Hour),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if hold.Rows != 1 {
		t.Fatalf("hold copied %d records, want 1", hold.Rows)
	}

	// Now: restart with the real lifetimes and a per-site override.
	st = reopen(t, young, func(c *store.Config) {
		c.Retention.Sites = []retention.Site{{Site: partners, Connections: retention.Months(6)}}
	})
	changes, err := st.ApplyRetention(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 3 {
		t.Fatalf("ApplyRetention applied %+v, want the connections, access and statistics lifetimes", changes)
	}
	for _, c := range changes {
		if c.Table == db.Connections+".connection_records" && !strings.Contains(c.NewTTL, "site = '"+partners+"'") {
			t.Errorf("connection records TTL %q lacks the partners override", c.NewTTL)
		}
	}
	if again, err := st.ApplyRetention(ctx); err != nil || len(again) != 0 {
		t.Fatalf("second ApplyRetention: %v changes, err %v; want none", again, err)
	}

	reg := prometheus.NewRegistry()
	m, err := retention.NewEnforcementMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	_ = m
	res, err := st.Enforce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("enforcement: removed %d rows, dropped %d partitions, mutated %d", res.Removed(), res.PartitionsDropped, res.PartitionsMutated)

	ports := func(table string) string {
		rows, err := st.Conn().Query(ctx, "SELECT client_port FROM "+table+" ORDER BY client_port")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var ps []string
		for rows.Next() {
			var p uint16
			if err := rows.Scan(&p); err != nil {
				t.Fatal(err)
			}
			ps = append(ps, fmt.Sprint(p))
		}
		return strings.Join(ps, ",")
	}
	// www keeps 7 and 1 months; partners (6 months) only 1.
	if got, want := ports(db.Connections+".connection_records"), "1,7,101"; got != want {
		t.Errorf("connection records after enforcement: ports %s, want %s", got, want)
	}
	if got, want := ports(db.Access+".access_log"), "1,101"; got != want {
		t.Errorf("access log after enforcement: ports %s, want %s", got, want)
	}
	// Statistics keep everything up to 25 months: 13, 7 and 1 months.
	if n := statsDays(); n != 3 {
		t.Errorf("statistics of %d days after enforcement, want 3", n)
	}
	if got, want := ports(st.HeldRecordsTable()), "13"; got != want {
		t.Errorf("held records: ports %s, want %s", got, want)
	}
	// The connections search still finds the held record, whose original
	// has expired.
	recs, err := st.SearchConnections(ctx, store.ConnectionQuery{
		Network: netip.MustParsePrefix("198.51.100.13/32"), From: monthsAgo(now, 13).Add(-time.Hour), To: monthsAgo(now, 13).Add(time.Hour), Limit: 10,
	})
	if err != nil || len(recs) != 1 || recs[0].ClientPort != 13 {
		t.Errorf("search of the held record: %d records, %v", len(recs), err)
	}
	if n := count(t, st, "SELECT count() FROM "+db.Ops+".retention_runs WHERE run_id = '"+res.RunID+"'"); n == 0 {
		t.Error("the enforcement pass left no record in retention_runs")
	}

	rep, err := st.RetentionReport(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Overdue {
		t.Errorf("report flags overdue records: %+v", rep.Entries)
	}
	find := func(class, site string) *retention.ReportEntry {
		for i := range rep.Entries {
			if rep.Entries[i].Class == class && rep.Entries[i].Site == site {
				return &rep.Entries[i]
			}
		}
		t.Fatalf("report has no %s entry for site %q: %+v", class, site, rep.Entries)
		return nil
	}
	if e := find(retention.ClassConnections, partners); e.Policy != "6mo" || e.Rows != 1 || e.LastRun.IsZero() || e.LastRemoved != 3 {
		t.Errorf("partners connections entry: %+v", e)
	}
	if e := find(retention.ClassConnections, "www.example.org"); e.Policy != "12mo" || e.Rows != 2 || e.Bytes == 0 || e.Oldest.IsZero() {
		t.Errorf("www connections entry: %+v", e)
	}
	if e := find(retention.ClassAccess, "www.example.org"); e.Policy != "6mo" || e.Rows != 1 {
		t.Errorf("www access entry: %+v", e)
	}
	if e := find(retention.ClassHolds, "www.example.org"); e.Rows != 1 || e.Overdue {
		t.Errorf("hold entry: %+v", e)
	}
	if e := find(retention.ClassStatistics, "www.example.org"); e.Policy != "25mo" || e.Rows == 0 || e.Overdue {
		t.Errorf("statistics entry: %+v", e)
	}
	find(retention.ClassAudit, "")
	find(retention.ClassQuarantine, "")

	// What expired is not tampering.
	vr, err := st.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !vr.OK() || vr.Expired == 0 || vr.Groups == 0 {
		t.Errorf("verify after enforcement: %+v", vr)
	}

	// The held record survives another pass, then goes with its release.
	if _, err := st.Enforce(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ports(st.HeldRecordsTable()); got != "13" {
		t.Fatalf("held records after a second pass: %s", got)
	}
	if err := st.ReleaseHold(ctx, hold.ID, "officer-2"); err != nil {
		t.Fatal(err)
	}
	if got := ports(st.HeldRecordsTable()); got != "" {
		t.Errorf("held records after release: %s", got)
	}
	hs, err := st.ListHolds(ctx)
	if err != nil || len(hs) != 1 || hs[0].Released.IsZero() || hs[0].ReleasedBy != "officer-2" {
		t.Fatalf("holds after release: %+v, %v", hs, err)
	}
	if err := st.ReleaseHold(ctx, hold.ID, "officer-2"); err == nil {
		t.Error("releasing a released hold succeeded")
	}
	mfs, err := reg.Gather()
	if err != nil || len(mfs) < 4 {
		t.Errorf("enforcement metrics: %d families, %v", len(mfs), err)
	}
}

func TestChangingALifetimeIsAppliedAndRecorded(t *testing.T) {
	st, _ := openConfigured(t, nil)
	ctx := t.Context()
	if _, err := st.ApplyRetention(ctx); err != nil {
		t.Fatal(err)
	}
	// "Restart" with a new lifetime: a second store on the same databases.
	st2 := reopen(t, st, func(c *store.Config) { c.Retention.Access = retention.Months(3) })
	changes, err := st2.ApplyRetention(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || !strings.HasSuffix(changes[0].Table, ".access_log") ||
		!strings.Contains(changes[0].OldTTL, "toIntervalMonth(6)") || !strings.Contains(changes[0].NewTTL, "toIntervalMonth(3)") {
		t.Fatalf("changes: %+v", changes)
	}
	all, err := st2.RetentionChanges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last := all[len(all)-1]
	if last.Actor == "" || !strings.HasSuffix(last.Table, ".access_log") {
		t.Errorf("recorded change: %+v", last)
	}
	var engine string
	if err := st2.Conn().QueryRow(ctx, "SELECT engine_full FROM system.tables WHERE database = '"+st2.Databases().Access+"' AND name = 'access_log'").Scan(&engine); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(engine, "toIntervalMonth(3)") {
		t.Errorf("access_log engine after change: %s", engine)
	}
}

func TestRetentionConfigRejectsUnsafeSiteNames(t *testing.T) {
	for _, site := range []string{"a' OR 1=1 --", "Upper.example.org", "", "x..y", "-a.example"} {
		r := retention.Default()
		r.Sites = []retention.Site{{Site: site, Connections: retention.Months(1)}}
		if err := r.Validate(); err == nil {
			t.Errorf("site %q accepted", site)
		}
	}
	var p retention.Period
	for in, want := range map[string]string{"12mo": "12mo", "3y": "36mo", "30d": "30d", "2w": "14d"} {
		if err := p.UnmarshalText([]byte(in)); err != nil || p.String() != want {
			t.Errorf("period %q: %v %v", in, p, err)
		}
	}
	if err := p.UnmarshalText([]byte("12 months")); err == nil {
		t.Error("period '12 months' accepted")
	}
}

func TestHoldRequiresReferenceWindowAndFutureExpiry(t *testing.T) {
	st, _ := openConfigured(t, nil)
	_, err := st.CreateHold(t.Context(), legal.Hold{Selector: legal.Selector{Network: netip.MustParsePrefix("192.0.2.0/24")}})
	if err == nil {
		t.Fatal("hold without reference, window or expiry accepted")
	}
	for _, want := range []string{"reference", "window", "expiry", "created_by"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestAccessDetailExpiresBeforeTheRecordWithoutLookingLikeTampering(t *testing.T) {
	st, _ := openConfigured(t, func(c *store.Config) { c.Retention.AccessDetail = retention.Days(30) })
	ctx := t.Context()
	now := time.Now().UTC()
	old := hit("192.0.2.1", 1, now.Add(-45*24*time.Hour).Truncate(time.Millisecond), "GET", "/old", 1)
	fresh := hit("192.0.2.2", 2, now.Add(-24*time.Hour).Truncate(time.Millisecond), "GET", "/fresh", 2)
	if err := st.Write(ctx, store.Batch{Hits: []store.Hit{old, fresh}}); err != nil {
		t.Fatal(err)
	}
	changes, err := st.ApplyRetention(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var detail bool
	for _, c := range changes {
		detail = detail || c.Class == retention.ClassAccessDetail && strings.Contains(c.NewTTL, "toIntervalDay(30)")
	}
	if !detail {
		t.Fatalf("no detail lifetime applied: %+v", changes)
	}
	if _, err := st.Enforce(ctx); err != nil {
		t.Fatal(err)
	}
	table := st.Databases().Access + ".access_log"
	rows, err := st.Conn().Query(ctx, "SELECT client_port, path, query, referer, user_agent FROM "+table+" ORDER BY client_port")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var port uint16
		var path, query, ref, ua string
		if err := rows.Scan(&port, &path, &query, &ref, &ua); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d %s q=%q r=%t ua=%t", port, path, query, ref != "", ua != ""))
	}
	rows.Close()
	if want := []string{`1 /old q="" r=false ua=false`, `2 /fresh q="q=1" r=true ua=true`}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("after enforcement: %q, want %q", got, want)
	}
	if vr, err := st.Verify(ctx); err != nil || !vr.OK() {
		t.Fatalf("blanked detail looks like tampering: %+v %v", vr, err)
	}
	rep, err := st.RetentionReport(ctx)
	if err != nil || rep.Overdue {
		t.Fatalf("report: %+v %v", rep, err)
	}
	// Changing the detail of a fresh row is tampering.
	if err := st.Conn().Exec(ctx, "ALTER TABLE "+table+" UPDATE user_agent = 'forged' WHERE client_port = 2 SETTINGS mutations_sync = 2"); err != nil {
		t.Fatal(err)
	}
	vr, err := st.Verify(ctx)
	if err != nil || len(vr.Problems) != 1 || vr.Problems[0].Kind != store.ProblemAltered || !strings.Contains(vr.Problems[0].Detail, "detail") {
		t.Fatalf("forged user agent: %+v %v", vr.Problems, err)
	}
}

func TestRunEnforcementPassesUntilCanceledAndCounts(t *testing.T) {
	st, _ := openConfigured(t, nil)
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- st.RunEnforcement(ctx, 50*time.Millisecond, reg, slog.New(slog.DiscardHandler)) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var ok float64
		for _, mf := range mfs {
			if mf.GetName() == "connlog_retention_enforcement_runs_total" {
				for _, m := range mf.GetMetric() {
					if m.GetLabel()[0].GetValue() == "ok" {
						ok = m.GetCounter().GetValue()
					}
				}
			}
		}
		if ok >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v passes after 30s", ok)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := count(t, st, "SELECT uniqExact(run_id) FROM "+st.Databases().Ops+".retention_runs"); n < 2 {
		t.Errorf("%d passes recorded", n)
	}
}

func TestExpiredHoldIsReleasedByTheEnforcementPass(t *testing.T) {
	st, _ := openConfigured(t, nil)
	ctx := t.Context()
	now := time.Now().UTC()
	if err := st.Write(ctx, store.Batch{Hits: []store.Hit{hit("2001:db8::5", 443, now.Add(-time.Hour).Truncate(time.Millisecond), "POST", "/x", 1)}}); err != nil {
		t.Fatal(err)
	}
	h, err := st.CreateHold(ctx, legal.Hold{Reference: "ref", CreatedBy: "officer", Expires: time.Now().Add(1500 * time.Millisecond),
		Selector: legal.Selector{Network: netip.MustParsePrefix("2001:db8::/64"), From: now.Add(-2 * time.Hour), To: now}})
	if err != nil || h.Rows != 1 {
		t.Fatalf("hold: %+v %v", h, err)
	}
	if res, err := st.Enforce(ctx); err != nil || len(res.HoldsReleased) != 0 {
		t.Fatalf("active hold released: %+v %v", res.HoldsReleased, err)
	}
	time.Sleep(time.Until(h.Expires) + 100*time.Millisecond)
	res, err := st.Enforce(ctx)
	if err != nil || len(res.HoldsReleased) != 1 || res.HoldsReleased[0] != h.ID {
		t.Fatalf("expired hold not released: %+v %v", res.HoldsReleased, err)
	}
	if n := count(t, st, "SELECT count() FROM "+st.HeldRecordsTable()); n != 0 {
		t.Errorf("%d held copies left", n)
	}
	hs, err := st.ListHolds(ctx)
	if err != nil || len(hs) != 1 || hs[0].ReleasedBy != "retention: expired" || hs[0].Rows != 1 {
		t.Errorf("register: %+v %v", hs, err)
	}
}
