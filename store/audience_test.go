package store_test

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/connlog/connlog/anonymize"
	"github.com/connlog/connlog/store"
)

// audienceDay is today (UTC midnight): statistics and keys older than their
// TTL are dropped as soon as they are written.
var audienceDay = time.Now().UTC().Truncate(24 * time.Hour)

// row is an audience row of visitor v on path at hour h of audienceDay.
func row(site string, h int, path string, v uint64) anonymize.Audience {
	return anonymize.Audience{
		Site: site, Time: audienceDay.Add(time.Duration(h) * time.Hour), Path: path,
		Country: "FR", Browser: "Firefox", OS: "Linux", Device: "desktop",
		ReferrerDomain: "(direct)", StatusClass: "2xx", Visitor: v,
	}
}

func audience(tb testing.TB, st *store.Store, q store.AudienceQuery) map[string]store.AudienceCell {
	tb.Helper()
	if q.Limit == 0 {
		q.Limit = 1000
	}
	if q.From.IsZero() {
		q.From, q.To = audienceDay, audienceDay.Add(24*time.Hour)
	}
	cells, err := st.AudienceStats(tb.Context(), q)
	if err != nil {
		tb.Fatalf("AudienceStats %+v: %v", q, err)
	}
	out := map[string]store.AudienceCell{}
	for _, c := range cells {
		out[c.Bucket.Format("2006-01-02T15")+" "+c.Key] = c
	}
	return out
}

func TestAudienceWriteIsExactlyOncePerSiteAndBucket(t *testing.T) {
	st := openStore(t)
	var rows []anonymize.Audience
	for v := range uint64(10) {
		rows = append(rows, row("a.example", 9, "/", v+1), row("a.example", 9, "/", v+1), row("a.example", 10, "/x", v+1))
	}
	rows = append(rows, row("a.example", 10, "/x", 0)) // no key: a hit, no visitor
	rows = append(rows, row("b.example", 9, "/", 1))
	for range 2 { // a retried batch is stored once
		if err := st.Write(t.Context(), store.Batch{ID: "batch-1", Audience: rows}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Write(t.Context(), store.Batch{ID: "batch-2", Audience: rows[:1]}); err != nil {
		t.Fatal(err)
	}
	hourly := audience(t, st, store.AudienceQuery{Site: "a.example", By: "path", Granularity: "hour"})
	day := audienceDay.Format("2006-01-02T")
	want := map[string]store.AudienceCell{
		day + "09 /":  {Hits: 21, Visitors: 10},
		day + "10 /x": {Hits: 11, Visitors: 10},
	}
	for k, w := range want {
		if g := hourly[k]; g.Hits != w.Hits || g.Visitors != w.Visitors {
			t.Errorf("hour %s: %d hits %d visitors, want %d, %d", k, g.Hits, g.Visitors, w.Hits, w.Visitors)
		}
	}
	if len(hourly) != len(want) {
		t.Errorf("hourly cells %v, want %d", hourly, len(want))
	}
	for _, gran := range []string{"day", "month"} {
		got := audience(t, st, store.AudienceQuery{Site: "a.example", By: "site", Granularity: gran})
		bucket := day + "00"
		if gran == "month" {
			bucket = audienceDay.AddDate(0, 0, 1-audienceDay.Day()).Format("2006-01-02T") + "00"
		}
		if c := got[bucket+" *"]; c.Hits != 32 || c.Visitors != 10 || len(got) != 1 {
			t.Errorf("%s totals %v, want 32 hits 10 visitors", gran, got)
		}
	}
	if got := audience(t, st, store.AudienceQuery{Site: "b.example", By: "country", Granularity: "day"}); got[day+"00 FR"].Hits != 1 || len(got) != 1 {
		t.Errorf("site b: %v, want only its own hit", got)
	}
}

func TestAudienceSmallCellsMergedIntoOther(t *testing.T) {
	st := openStore(t)
	var rows []anonymize.Audience
	add := func(path string, visitors int, first uint64) {
		for v := range visitors {
			rows = append(rows, row("a.example", 9, path, first+uint64(v)))
		}
	}
	add("/popular", 10, 1)
	add("/rare-1", 3, 100)
	add("/rare-2", 3, 200)
	add("/exactly-k", 5, 300)
	if err := st.Write(t.Context(), store.Batch{ID: "b", Audience: rows}); err != nil {
		t.Fatal(err)
	}
	got := audience(t, st, store.AudienceQuery{Site: "a.example", By: "path", Granularity: "day", MinVisitors: 5})
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	day := audienceDay.Format("2006-01-02T00 ")
	want := []string{day + store.OtherKey, day + "/exactly-k", day + "/popular"}
	if !slices.Equal(keys, want) {
		t.Fatalf("cells %v, want %v", keys, want)
	}
	if o := got[want[0]]; o.Hits != 6 || o.Visitors != 6 {
		t.Errorf("other: %+v, want 6 hits 6 visitors", o)
	}

	// An "other" cell still under k is left out as well.
	got = audience(t, st, store.AudienceQuery{Site: "a.example", By: "path", Granularity: "day", MinVisitors: 7})
	if _, ok := got[day+store.OtherKey]; !ok || len(got) != 2 {
		t.Errorf("k=7: %v, want /popular and other (11 visitors)", got)
	}
	got = audience(t, st, store.AudienceQuery{Site: "a.example", By: "path", Granularity: "day", MinVisitors: 30})
	if len(got) != 0 {
		t.Errorf("k=30: %v, want nothing", got)
	}
}

func TestAudienceQueryRefusesBadFilters(t *testing.T) {
	st := openStore(t)
	ok := store.AudienceQuery{Site: "a", From: audienceDay, To: audienceDay.Add(time.Hour), By: "path", Granularity: "hour", Limit: 1}
	for name, mod := range map[string]func(*store.AudienceQuery){
		"no site":             func(q *store.AudienceQuery) { q.Site = "" },
		"empty window":        func(q *store.AudienceQuery) { q.To = q.From },
		"unknown dimension":   func(q *store.AudienceQuery) { q.By = "ip" },
		"unknown granularity": func(q *store.AudienceQuery) { q.Granularity = "minute" },
		"no limit":            func(q *store.AudienceQuery) { q.Limit = 0 },
		"negative k":          func(q *store.AudienceQuery) { q.MinVisitors = -1 },
	} {
		q := ok
		mod(&q)
		if _, err := st.AudienceStats(t.Context(), q); !errors.Is(err, store.ErrBadFilter) {
			t.Errorf("%s: err %v, want ErrBadFilter", name, err)
		}
	}
	if _, err := st.AudienceStats(t.Context(), ok); err != nil {
		t.Errorf("valid query: %v", err)
	}
}

// TestAudienceSchemaCannotHoldAnAddress checks every column of the
// statistics database: no address type, and no 16-byte fixed string that
// could hold an IPv6 address or a key.
func TestAudienceSchemaCannotHoldAnAddress(t *testing.T) {
	st := openStore(t)
	cols := statsColumns(t, st)
	if len(cols) == 0 {
		t.Fatal("no columns in the statistics database")
	}
	for _, c := range cols {
		for _, bad := range []string{"IPv4", "IPv6", "FixedString"} {
			if containsFold(c.typ, bad) {
				t.Errorf("%s.%s has type %s", c.table, c.name, c.typ)
			}
		}
		if containsFold(c.name, "ip") || containsFold(c.name, "network") || containsFold(c.name, "agent") {
			t.Errorf("%s.%s: column name suggests an address or a user agent", c.table, c.name)
		}
	}
}

type column struct{ table, name, typ string }

func statsColumns(tb testing.TB, st *store.Store) []column {
	tb.Helper()
	ctx := clickhouse.Context(tb.Context(), clickhouse.WithParameters(clickhouse.Parameters{"db": st.Databases().Stats}))
	rows, err := st.Conn().Query(ctx, "SELECT table, name, type FROM system.columns WHERE database = {db:String} ORDER BY table, name")
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var out []column
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.table, &c.name, &c.typ); err != nil {
			tb.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func containsFold(s, sub string) bool {
	return len(sub) <= len(s) && slices.ContainsFunc(windows(s, len(sub)), func(w string) bool { return equalFold(w, sub) })
}

func windows(s string, n int) []string {
	var out []string
	for i := 0; i+n <= len(s); i++ {
		out = append(out, s[i:i+n])
	}
	return out
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}

// fakeClock is a settable clock for anonymize.Keys.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func TestVisitorKeysSharedRotatedAndDestroyed(t *testing.T) {
	st := openStore(t)
	ks := st.VisitorKeys()
	clock := &fakeClock{t: audienceDay.Add(14 * time.Hour)}
	newAnonymizer := func() *anonymize.Anonymizer {
		a, err := anonymize.New(anonymize.DefaultConfig(), anonymize.NewKeys(ks, anonymize.WithClock(clock.now)), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		return a
	}
	visitor := func(a *anonymize.Anonymizer, at time.Time) uint64 {
		req := anonymize.Request{EventTime: at, ClientIP: netip.MustParseAddr("203.0.113.7"), Site: "a.example", Path: "/", Status: 200,
			UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0"}
		var out anonymize.Audience
		if !a.Audience(&req, anonymize.Signals{}, &out) {
			t.Fatal("hit left out")
		}
		return out.Visitor
	}

	// Two instances started together agree on the day's key.
	var wg sync.WaitGroup
	var got [2]uint64
	instances := [2]*anonymize.Anonymizer{newAnonymizer(), newAnonymizer()}
	for i := range instances {
		wg.Go(func() { got[i] = visitor(instances[i], clock.now()) })
	}
	wg.Wait()
	if got[0] == 0 || got[0] != got[1] {
		t.Fatalf("two instances, same visitor, same day: hashes %x and %x", got[0], got[1])
	}
	day1 := got[0]

	// Racing PutIfAbsent calls with different keys both get the first.
	d := anonymize.DayOf(audienceDay) + 5
	var winners [4]anonymize.Key
	for i := range winners {
		wg.Go(func() {
			k, _ := anonymize.NewKey()
			var err error
			if winners[i], err = ks.PutIfAbsent(t.Context(), d, k); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i := range winners {
		if winners[i] != winners[0] {
			t.Fatalf("PutIfAbsent race: instance %d got another key", i)
		}
	}

	// The next day: a new key, a new hash; a late line of yesterday still
	// hashes as yesterday.
	clock.set(audienceDay.Add(24*time.Hour + time.Hour))
	day2 := visitor(instances[0], clock.now())
	if day2 == 0 || day2 == day1 {
		t.Fatalf("day 2 hash %x, day 1 hash %x: want different", day2, day1)
	}
	if late := visitor(instances[1], audienceDay.Add(23*time.Hour)); late != day1 {
		t.Fatalf("late line of day 1 hashed %x, want %x", late, day1)
	}
	if n := keyRows(t, st, anonymize.DayOf(audienceDay)); n != 1 {
		t.Fatalf("%d stored keys for day 1 within its lifetime, want 1", n)
	}

	// 48 hours after day 1 began its key exists nowhere.
	clock.set(audienceDay.Add(48*time.Hour + time.Minute))
	keys := anonymize.NewKeys(ks, anonymize.WithClock(clock.now))
	if err := keys.Sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := keyRows(t, st, anonymize.DayOf(audienceDay)); n != 0 {
		t.Fatalf("%d stored keys for day 1 after 48 hours, want 0", n)
	}
	if _, err := keys.Key(t.Context(), anonymize.DayOf(audienceDay)); !errors.Is(err, anonymize.ErrKeyExpired) {
		t.Fatalf("key of day 1 after 48 hours: err %v, want ErrKeyExpired", err)
	}
	if v := visitor(instances[0], audienceDay.Add(23*time.Hour)); v != 0 {
		t.Fatalf("a hit of day 1 hashed %x after its key was destroyed", v)
	}
	if _, ok, err := ks.Get(t.Context(), anonymize.DayOf(audienceDay)); ok || err != nil {
		t.Fatalf("Get of a destroyed key: ok %v err %v", ok, err)
	}
}

func keyRows(tb testing.TB, st *store.Store, day anonymize.Day) uint64 {
	tb.Helper()
	var n uint64
	q := fmt.Sprintf("SELECT count() FROM %s.visitor_keys WHERE day = toDate('%s')", st.Databases().Ops, day)
	if err := st.Conn().QueryRow(tb.Context(), q).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// The cells grouped by connlog (audience_cells, migration 0007) must count
// exactly what the engine's own grouping of migration 0004 counted: the same
// rows go once through each path, under two site names, and every hourly and
// daily cell must agree, visitor counts included (same distinct hashes, same
// count; the serialized sketches differ only in order). The rows cover every dimension rule: empty keys, unknown country,
// region and city qualified by country, hits without visitor, several
// hours and sites in one batch.
func TestAudienceCellsMatchTheEngineGrouping(t *testing.T) {
	st := openStore(t)
	var rows []anonymize.Audience
	for i := range 3000 {
		r := anonymize.Audience{
			Time:           audienceDay.Add(time.Duration(i%3) * time.Hour),
			Path:           fmt.Sprintf("/p/%d", i%37),
			Country:        []string{"FR", "DE", "", "US"}[i%4],
			Region:         []string{"", "IDF", "BY", ""}[i%4],
			City:           []string{"", "Paris", "", ""}[i%4],
			Browser:        []string{"Firefox", "Chrome", ""}[i%3],
			OS:             []string{"Linux", "Android", "iOS", "Windows", ""}[i%5],
			Device:         []string{"desktop", "mobile"}[i%2],
			ReferrerDomain: []string{"(direct)", "(internal)", "example.net", ""}[i%4],
			StatusClass:    []string{"2xx", "3xx", "4xx"}[i%3],
			Visitor:        uint64(i%211) * 0x9E3779B97F4A7C15, // 0 for one in 211: no key
		}
		rows = append(rows, r)
	}
	insert := func(site string) []anonymize.Audience {
		out := slices.Clone(rows)
		for i := range out {
			out[i].Site = site
		}
		return out
	}
	// The 0004 path, straight into its Null table.
	db := st.Databases().Stats
	bt, err := st.Conn().PrepareBatch(t.Context(), "INSERT INTO "+db+".audience_in (site, hour, path, country, region, city, browser, os, device, referrer_domain, status_class, visitor)")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range insert("engine.example") {
		if err := bt.Append(r.Site, r.Time, r.Path, r.Country, r.Region, r.City, r.Browser, r.OS, r.Device, r.ReferrerDomain, r.StatusClass, r.Visitor); err != nil {
			t.Fatal(err)
		}
	}
	if err := bt.Send(); err != nil {
		t.Fatal(err)
	}
	if err := st.Write(t.Context(), store.Batch{ID: "cells", Audience: insert("connlog.example")}); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"audience_hourly", "audience_daily"} {
		bucket := "hour"
		if table == "audience_daily" {
			bucket = "day"
		}
		dump := func(site string) []string {
			t.Helper()
			ctx := clickhouse.Context(t.Context(), clickhouse.WithParameters(clickhouse.Parameters{"site": site}))
			r, err := st.Conn().Query(ctx, "SELECT dim, toString("+bucket+"), key, sum(hits), toString(uniqCombined64Merge(visitors)) FROM "+db+"."+table+
				" WHERE site = {site:String} GROUP BY dim, "+bucket+", key ORDER BY ALL")
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var out []string
			for r.Next() {
				var dim, b, key, sketch string
				var hits uint64
				if err := r.Scan(&dim, &b, &key, &hits, &sketch); err != nil {
					t.Fatal(err)
				}
				out = append(out, fmt.Sprintf("%s %s %s %d %s", dim, b, key, hits, sketch))
			}
			return out
		}
		engine, cells := dump("engine.example"), dump("connlog.example")
		if len(engine) < 50 {
			t.Fatalf("%s: only %d cells from the engine's grouping", table, len(engine))
		}
		if !slices.Equal(engine, cells) {
			t.Errorf("%s: %d cells from the engine's grouping, %d from connlog's; first difference:", table, len(engine), len(cells))
			for i := range min(len(engine), len(cells)) {
				if engine[i] != cells[i] {
					t.Errorf("  engine  %.120s\n  connlog %.120s", engine[i], cells[i])
					break
				}
			}
		}
	}
}
