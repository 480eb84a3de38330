package api

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/connlog/connlog/anonymize"
	"github.com/connlog/connlog/ingest"
	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/storetest"
)

// The real store serves the statistics.
var _ AudienceStore = (*store.Store)(nil)

// openRealStore returns a migrated store on the embedded engine, in
// databases of its own.
func openRealStore(tb testing.TB) *store.Store {
	tb.Helper()
	return storetest.New(tb)
}

// writeCountryDB writes a MaxMind-format Country database: FR, DE and JP
// networks (documentation ranges) and an IPv6 one in BE.
func writeCountryDB(tb testing.TB) string {
	tb.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-Country", RecordSize: 24, IncludeReservedNetworks: true})
	if err != nil {
		tb.Fatal(err)
	}
	for cidr, cc := range map[string]string{"203.0.113.0/24": "FR", "198.51.100.0/24": "DE", "192.0.2.0/24": "JP", "2001:db8:1::/48": "BE"} {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			tb.Fatal(err)
		}
		if err := tree.Insert(n, mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String(cc)}}); err != nil {
			tb.Fatal(err)
		}
	}
	path := filepath.Join(tb.TempDir(), "country.mmdb")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

const (
	firefoxUA = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
	iphoneUA  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1"
)

// statsCorpus is a day of traffic on two sites: people from four countries
// and an unknown network, crawlers, probes and opted-out requests.
type statsCorpus struct {
	hits []store.Hit
	ips  []netip.Addr
}

func newStatsCorpus(day time.Time) statsCorpus {
	var c statsCorpus
	add := func(ip, site, path, ua string, status uint16, optOut bool) {
		a := netip.MustParseAddr(ip)
		c.ips = append(c.ips, a)
		c.hits = append(c.hits, store.Hit{
			Source:    store.Source{Topic: "nginx", Partition: 0, Offset: int64(len(c.hits))},
			EventTime: day.Add(time.Duration(len(c.hits)) * time.Second), Ingested: day,
			ClientIP: a, PeerIP: a, Site: site, Method: "GET", Path: path, Protocol: "HTTP/1.1",
			Status: status, Referer: "https://www.google.com/search?q=x", UserAgent: ua, OptOut: optOut,
		})
	}
	// people: 8 FR, 6 DE, 5 BE (IPv6), 2 JP, 1 unknown; each visits twice
	for range 2 {
		for i := range 8 {
			add(fmt.Sprintf("203.0.113.%d", 10+i), "www.example.org", "/", firefoxUA, 200, false)
		}
		for i := range 6 {
			add(fmt.Sprintf("198.51.100.%d", 10+i), "www.example.org", "/news", iphoneUA, 200, false)
		}
		for i := range 5 {
			add(fmt.Sprintf("2001:db8:1::%x", 10+i), "www.example.org", "/news", firefoxUA, 404, false)
		}
		for i := range 2 {
			add(fmt.Sprintf("192.0.2.%d", 10+i), "www.example.org", "/", firefoxUA, 200, false)
		}
		add("100.64.0.1", "www.example.org", "/", firefoxUA, 200, false)
	}
	// another site, same people: counted apart
	for i := range 5 {
		add(fmt.Sprintf("203.0.113.%d", 10+i), "shop.example.org", "/cart", firefoxUA, 200, false)
	}
	// left out: crawlers, a probe, a health check, opted-out people
	for _, ua := range []string{
		"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
		"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
		"Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
		"curl/8.5.0",
		"kube-probe/1.30",
	} {
		add("203.0.113.200", "www.example.org", "/", ua, 200, false)
	}
	add("203.0.113.201", "www.example.org", "/healthz", firefoxUA, 200, false)
	for i := range 10 {
		add(fmt.Sprintf("198.51.100.%d", 100+i), "www.example.org", "/", firefoxUA, 200, true)
	}
	return c
}

type statsEnv struct {
	srv                           *Server
	st                            *store.Store
	stats, scoped, analyst, admin string
}

func newStatsEnv(tb testing.TB, st *store.Store) *statsEnv {
	tb.Helper()
	e := &statsEnv{st: st}
	var cfg Config
	add := func(dst *string, name, role string, sites ...string) {
		tok, hash, err := NewToken()
		if err != nil {
			tb.Fatal(err)
		}
		*dst = tok
		cfg.Tokens = append(cfg.Tokens, Token{Name: name, Role: role, SHA256: hash, Sites: sites})
	}
	add(&e.stats, "webteam", RoleStats)
	add(&e.scoped, "shopteam", RoleStats, "shop.example.org")
	add(&e.analyst, "alice", RoleAnalyst)
	add(&e.admin, "root", RoleAdmin)
	srv, err := New(cfg, st, prometheus.NewRegistry(), nil, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	e.srv = srv
	return e
}

func (e *statsEnv) get(tb testing.TB, target, token string) (int, string) {
	tb.Helper()
	req, _ := http.NewRequestWithContext(tb.Context(), http.MethodGet, target, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Purpose", "monthly audience report")
	rec := &recorder{header: http.Header{}}
	e.srv.Handler().ServeHTTP(rec, req)
	return rec.status, rec.body.String()
}

// TestAudienceStatisticsEndToEnd sends a corpus through the statistics path
// as serve wires it (anonymize with a generated MaxMind database,
// ingest.WithAudience, store.Write) and reads it back through the API.
func TestAudienceStatisticsEndToEnd(t *testing.T) {
	st := openRealStore(t)
	cfg := anonymize.DefaultConfig()
	cfg.GeoDatabase = writeCountryDB(t)
	an, err := anonymize.New(cfg, anonymize.NewKeys(st.VisitorKeys()), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { an.Close() })
	day := time.Now().UTC().Truncate(24 * time.Hour)
	corpus := newStatsCorpus(day)
	sink := ingest.WithAudience(st, an)
	for range 2 { // a retried batch counts once
		if err := sink.Write(t.Context(), store.Batch{ID: "corpus", Hits: corpus.hits}); err != nil {
			t.Fatal(err)
		}
	}
	env := newStatsEnv(t, st)
	from, to := day.Format(time.RFC3339), day.Add(24*time.Hour).Format(time.RFC3339)
	query := func(token, site, by string) map[string]statRow {
		t.Helper()
		status, body := env.get(t, "/v1/stats/audience?site="+site+"&from="+from+"&to="+to+"&by="+by+"&granularity=day", token)
		if status != http.StatusOK {
			t.Fatalf("by=%s: status %d: %s", by, status, body)
		}
		var resp statsResponse
		if err := json.Unmarshal([]byte(body), &resp); err != nil {
			t.Fatal(err)
		}
		out := map[string]statRow{}
		for _, r := range resp.Rows {
			if r.Bucket != from {
				t.Errorf("bucket %s, want %s", r.Bucket, from)
			}
			out[r.Key] = r
		}
		return out
	}

	t.Run("country attribution from the MaxMind database", func(t *testing.T) {
		got := query(env.stats, "www.example.org", "country")
		want := map[string]statRow{
			"FR": {Key: "FR", Hits: 16, Visitors: 8},
			"DE": {Key: "DE", Hits: 12, Visitors: 6},
			"BE": {Key: "BE", Hits: 10, Visitors: 5},
			// JP (2 visitors) and unknown (1) are below k=5: merged, and
			// the merged cell (3 visitors) is still below k, so left out.
		}
		if len(got) != len(want) {
			t.Errorf("countries %v, want %v", got, want)
		}
		for k, w := range want {
			if g := got[k]; g.Hits != w.Hits || g.Visitors != w.Visitors {
				t.Errorf("%s: %+v, want %+v", k, g, w)
			}
		}
	})
	t.Run("bots, probes, health checks and opted-out requests left out", func(t *testing.T) {
		got := query(env.admin, "www.example.org", "site")
		if c := got["*"]; c.Hits != 44 || c.Visitors != 22 {
			t.Errorf("site totals %+v, want 44 hits by 22 visitors", c)
		}
	})
	t.Run("per site", func(t *testing.T) {
		got := query(env.scoped, "shop.example.org", "path")
		if c := got["/cart"]; c.Hits != 5 || c.Visitors != 5 || len(got) != 1 {
			t.Errorf("shop paths %v, want /cart 5 hits 5 visitors", got)
		}
	})
	t.Run("other dimensions", func(t *testing.T) {
		if got := query(env.stats, "www.example.org", "status")["4xx"]; got.Hits != 10 {
			t.Errorf("4xx: %+v, want 10 hits", got)
		}
		if got := query(env.stats, "www.example.org", "referrer")["google.com"]; got.Hits != 44 {
			t.Errorf("referrer google.com: %+v, want 44 hits", got)
		}
		if got := query(env.stats, "www.example.org", "device")["mobile"]; got.Hits != 12 || got.Visitors != 6 {
			t.Errorf("mobile: %+v, want 12 hits 6 visitors", got)
		}
		if got := query(env.stats, "www.example.org", "browser")["Firefox"]; got.Hits != 32 || got.Visitors != 16 {
			t.Errorf("Firefox: %+v, want 32 hits 16 visitors", got)
		}
	})
	t.Run("no stored value is an address or a hash of one", func(t *testing.T) {
		checkNoAddressStored(t, st, corpus.ips)
	})
}

// checkNoAddressStored reads every value of every table of the statistics
// database and fails if one parses as an IP address, contains one of ips
// in text or binary form, or equals (or contains, for binary states) a
// common hash of one of them.
func checkNoAddressStored(t *testing.T, st *store.Store, ips []netip.Addr) {
	t.Helper()
	db := st.Databases().Stats
	ctx := clickhouse.Context(t.Context(), clickhouse.WithParameters(clickhouse.Parameters{"db": db}))
	type col struct{ table, name, typ string }
	var cols []col
	rows, err := st.Conn().Query(ctx, "SELECT table, name, type FROM system.columns WHERE database = {db:String} ORDER BY table, name")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c col
		if err := rows.Scan(&c.table, &c.name, &c.typ); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	rows.Close()
	if len(cols) == 0 {
		t.Fatal("no statistics columns")
	}

	// Forbidden text: the addresses and the hex of their hashes; forbidden
	// bytes (searched in the hex of every value): the addresses and the
	// 64-bit hashes ClickHouse would compute.
	texts := map[string]bool{}
	var binHex []string
	for _, a := range ips {
		s := a.String()
		texts[s] = true
		for _, sum := range [][]byte{md5sum(s), sha1sum(s), sha256sum(s)} {
			texts[hex.EncodeToString(sum)] = true
			texts[strings.ToUpper(hex.EncodeToString(sum))] = true
		}
		raw := a.AsSlice()
		binHex = append(binHex, strings.ToUpper(hex.EncodeToString(raw)))
		a16 := a.As16()
		binHex = append(binHex, strings.ToUpper(hex.EncodeToString(a16[:])))
	}
	ipList := make([]string, len(ips))
	for i, a := range ips {
		ipList[i] = a.String()
	}
	hctx := clickhouse.Context(t.Context(), clickhouse.WithParameters(clickhouse.Parameters{"ips": arrayLiteral(ipList)}))
	hrows, err := st.Conn().Query(hctx, `SELECT h FROM (SELECT arrayJoin({ips:Array(String)}) AS ip)
ARRAY JOIN [sipHash64(ip), cityHash64(ip), xxHash64(ip), farmHash64(ip), sipHash64(toIPv6(ip)), cityHash64(toIPv6(ip))] AS h`)
	if err != nil {
		t.Fatal(err)
	}
	hashes := map[uint64]bool{}
	for hrows.Next() {
		var h uint64
		if err := hrows.Scan(&h); err != nil {
			t.Fatal(err)
		}
		hashes[h] = true
		texts[fmt.Sprint(h)] = true
		var le [8]byte
		binary.LittleEndian.PutUint64(le[:], h)
		binHex = append(binHex, strings.ToUpper(hex.EncodeToString(le[:])))
	}
	hrows.Close()

	checked := 0
	for _, c := range cols {
		q := fmt.Sprintf("SELECT DISTINCT toString(`%s`), hex(`%s`) FROM `%s`.`%s`", c.name, c.name, db, c.table)
		switch {
		case strings.HasPrefix(c.typ, "AggregateFunction"):
			q = fmt.Sprintf("SELECT '', hex(`%s`) FROM `%s`.`%s`", c.name, db, c.table)
		case strings.HasPrefix(c.typ, "Array("):
			// the elements' bytes, one after the other
			q = fmt.Sprintf("SELECT DISTINCT toString(`%s`), hex(arrayStringConcat(arrayMap(x -> reinterpretAsString(x), `%s`))) FROM `%s`.`%s`", c.name, c.name, db, c.table)
		}
		vrows, err := st.Conn().Query(t.Context(), q)
		if err != nil {
			t.Fatalf("%s.%s: %v", c.table, c.name, err)
		}
		for vrows.Next() {
			var text, hx string
			if err := vrows.Scan(&text, &hx); err != nil {
				t.Fatal(err)
			}
			checked++
			where := c.table + "." + c.name
			if _, err := netip.ParseAddr(text); err == nil {
				t.Errorf("%s holds an IP address: %q", where, text)
			}
			if texts[text] {
				t.Errorf("%s holds an address or a hash of one: %q", where, text)
			}
			for _, b := range binHex {
				// aligned to a byte: an odd offset is a false match
				if i := strings.Index(hx, b); i >= 0 && i%2 == 0 {
					t.Errorf("%s holds the bytes of an address or of a hash of one (%s)", where, b)
					break
				}
			}
		}
		vrows.Close()
	}
	if checked == 0 {
		t.Fatal("no statistics values were checked")
	}
}

func md5sum(s string) []byte    { h := md5.Sum([]byte(s)); return h[:] }
func sha1sum(s string) []byte   { h := sha1.Sum([]byte(s)); return h[:] }
func sha256sum(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

// arrayLiteral renders ss as an Array(String) parameter value.
func arrayLiteral(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
	}
	return "[" + strings.Join(q, ",") + "]"
}

func TestAudienceGuardAndAudit(t *testing.T) {
	st := openRealStore(t)
	env := newStatsEnv(t, st)
	const ok = "/v1/stats/audience?site=shop.example.org&from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z&by=path"
	tests := []struct {
		name       string
		target     string
		token      string
		wantStatus int
		wantCode   Code
	}{
		{"stats role may read", ok, env.stats, 200, ""},
		{"admin may read", ok, env.admin, 200, ""},
		{"analyst may not", ok, env.analyst, 403, CodeForbidden},
		{"site inside the token's scope", ok, env.scoped, 200, ""},
		{"site outside the token's scope", strings.Replace(ok, "shop.", "www.", 1), env.scoped, 403, CodeForbidden},
		{"site is required", strings.Replace(ok, "site=shop.example.org&", "", 1), env.stats, 400, CodeBadRequest},
		{"unknown dimension", strings.Replace(ok, "by=path", "by=ip", 1), env.stats, 400, CodeBadRequest},
		{"unknown granularity", ok + "&granularity=minute", env.stats, 400, CodeBadRequest},
		{"hourly", ok + "&granularity=hour", env.stats, 200, ""},
		{"monthly over 25 months", strings.Replace(ok, "2026-03-01", "2024-02-01", 1) + "&granularity=month", env.stats, 200, ""},
		{"hourly over 32 days", strings.Replace(ok, "2026-03-01", "2026-01-29", 1) + "&granularity=hour", env.stats, 400, CodeWindowTooLarge},
		{"unknown parameter", ok + "&ip=203.0.113.7", env.stats, 400, CodeBadRequest},
		{"reversed window", "/v1/stats/audience?site=a&from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z&by=path", env.stats, 400, CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := env.get(t, tt.target, tt.token)
			if status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", status, tt.wantStatus, body)
			}
			if tt.wantCode != "" {
				if got := errorCode(t, body); got != tt.wantCode {
					t.Errorf("code %s, want %s", got, tt.wantCode)
				}
			}
		})
	}
	// Every request left an audit row with its purpose.
	var n uint64
	q := "SELECT count() FROM " + st.Databases().Ops + ".audit WHERE endpoint = '/v1/stats/audience' AND purpose = 'monthly audience report'"
	if err := st.Conn().QueryRow(t.Context(), q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != uint64(len(tests)) {
		t.Errorf("%d audit rows, want %d", n, len(tests))
	}
}
