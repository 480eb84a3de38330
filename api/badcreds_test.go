package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connlog/connlog/store/audit"
)

// syncingStore is a fakeStore that can write several audit rows at once,
// like the audit journal: every Audit or AuditMany call stands for one
// fsync.
type syncingStore struct {
	*fakeStore
	mu    sync.Mutex
	syncs int
	many  [][]audit.Entry
}

func (s *syncingStore) fake() *fakeStore { return s.fakeStore }

func (s *syncingStore) Audit(ctx context.Context, e audit.Entry) error {
	s.mu.Lock()
	s.syncs++
	s.mu.Unlock()
	return s.fakeStore.Audit(ctx, e)
}

func (s *syncingStore) AuditMany(_ context.Context, rows []audit.Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncs++
	s.many = append(s.many, rows)
	return nil
}

func (s *syncingStore) fsyncs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncs
}

// clock is a test clock that can be moved on.
type clock struct{ t atomic.Int64 }

func newClock(t time.Time) *clock { c := &clock{}; c.t.Store(t.UnixNano()); return c }
func (c *clock) now() time.Time   { return time.Unix(0, c.t.Load()).UTC() }
func (c *clock) add(d time.Duration) {
	c.t.Add(int64(d))
}

// send sends a GET of /v1/access from remote, with the given Authorization
// and X-Forwarded-For (none if empty), and returns the status.
func (e *testEnv) send(tb testing.TB, remote, auth, xff string) int {
	tb.Helper()
	req := httptest.NewRequestWithContext(tb.Context(), http.MethodGet, okQuery, nil)
	req.RemoteAddr = remote
	req.Header.Set("X-Purpose", "INC-42")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(&orderWriter{ResponseWriter: rec, store: e.store}, req)
	return rec.Code
}

// A flood of bad and missing tokens costs no fsync while it lasts, is
// answered 429 past each source's burst, and leaves, when its minute
// closes, one row per source and status with the right count, all written
// with a single fsync. A good token in the middle of it is served and
// audited on its own, before its answer.
func TestBadTokenFloodIsCountedNotSynced(t *testing.T) {
	st := &syncingStore{fakeStore: &fakeStore{}}
	clk := newClock(time.Date(2026, 3, 4, 10, 0, 5, 0, time.UTC))
	env := newTestEnvWith(t, st, nil)
	env.srv.now = clk.now

	statuses := map[string]map[int]int{} // source → status → requests
	count := func(source string, status int) {
		if statuses[source] == nil {
			statuses[source] = map[int]int{}
		}
		statuses[source][status]++
	}
	for i := range 1000 {
		count("192.0.2.1", env.send(t, "192.0.2.1:40000", "Bearer cl_guessed-"+string(rune('a'+i%26)), ""))
		if i%2 == 0 {
			count("192.0.2.2", env.send(t, "192.0.2.2:40000", "", ""))
		}
		if i%4 == 0 {
			// Another address of the same /64 is the same source.
			count("2001:db8:1:2::/64", env.send(t, "[2001:db8:1:2::"+string(rune('a'+i%6))+"]:443", "Bearer nope", ""))
		}
		if i == 500 {
			if got := env.send(t, "192.0.2.1:40001", "Bearer "+env.tokens.analyst, ""); got != http.StatusOK {
				t.Fatalf("good token during the flood: %d, want 200", got)
			}
			rows := st.auditRows()
			if len(rows) != 1 || rows[0].Actor != "alice" || rows[0].Status != 200 || rows[0].Requests > 1 {
				t.Fatalf("the good request's audit row: %+v", rows)
			}
			if ev := st.events; ev[len(ev)-2] != "audit" || ev[len(ev)-1] != "write" {
				t.Errorf("events %q: the good request's row was not written before its answer", ev)
			}
		}
	}
	for src, byStatus := range statuses {
		if byStatus[401] != DefaultBadCredentialsBurst {
			t.Errorf("%s: %d answered 401, want the burst (%d) before 429", src, byStatus[401], DefaultBadCredentialsBurst)
		}
	}
	if n := st.fsyncs(); n != 1 {
		t.Fatalf("%d fsyncs during the flood, want 1 (the good request)", n)
	}

	// The minute is not over: nothing written yet.
	if err := env.srv.refusals.flush(t.Context(), st, clk.now(), false); err != nil {
		t.Fatal(err)
	}
	if n := st.fsyncs(); n != 1 {
		t.Fatalf("%d fsyncs before the window closed, want 1", n)
	}
	clk.add(time.Minute)
	if err := env.srv.refusals.flush(t.Context(), st, clk.now(), false); err != nil {
		t.Fatal(err)
	}
	if n := st.fsyncs(); n != 2 || len(st.many) != 1 {
		t.Fatalf("%d fsyncs (%d batches) after the window closed, want 2 (1 batch)", n, len(st.many))
	}
	got := map[string]map[int]int{}
	for _, r := range st.many[0] {
		if got[r.Source] == nil {
			got[r.Source] = map[int]int{}
		}
		got[r.Source][r.Status] += r.Requests
		if r.Actor != "" || r.Endpoint != "/v1/access" || r.Method != "GET" || r.Outcome != "denied" || r.Purpose != "INC-42" ||
			r.Time.Before(time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)) || !strings.Contains(r.Reason, "bearer token") {
			t.Errorf("aggregated row %+v", r)
		}
		if r.Requests > 1 && !strings.Contains(r.Reason, "requests counted together") {
			t.Errorf("aggregated row without its count in the reason: %q", r.Reason)
		}
	}
	if !reflect.DeepEqual(got, statuses) {
		t.Errorf("aggregated rows count %v, want %v", got, statuses)
	}
	// 3 sources × 2 statuses (401 for "unknown" and 401 for "no token" are
	// different reasons but different sources here).
	if len(st.many[0]) != 6 {
		t.Errorf("%d aggregated rows, want 6: %+v", len(st.many[0]), st.many[0])
	}
	// Written once: nothing left for the next flush.
	if err := env.srv.FlushRefusals(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := st.fsyncs(); n != 2 {
		t.Errorf("%d fsyncs after a second flush, want still 2", n)
	}
}

// More sources than max_sources in one window share one row per status
// (and one bucket), so rows and memory stay bounded; no request goes uncounted.
func TestBadCredentialSourcesAreBounded(t *testing.T) {
	st := &syncingStore{fakeStore: &fakeStore{}}
	env := newTestEnvWith(t, st, func(c *Config) { c.BadCredentials.MaxSources = 5 })
	for i := range 20 {
		env.send(t, netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}).String()+":1000", "Bearer wrong", "")
	}
	if err := env.srv.FlushRefusals(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(st.many) != 1 {
		t.Fatalf("%d batches, want 1", len(st.many))
	}
	total, overflow := 0, 0
	for _, r := range st.many[0] {
		total += r.Requests
		if r.Source == overflowSource {
			overflow += r.Requests
		}
	}
	// 5 sources of their own, then the overflow source's bucket: 10
	// requests answered 401 and 5 answered 429, a row each.
	if len(st.many[0]) != 7 || total != 20 || overflow != 15 {
		t.Errorf("%d rows, %d requests (%d in the overflow rows), want 7, 20, 15: %+v", len(st.many[0]), total, overflow, st.many[0])
	}
	if n := len(env.srv.badLimiter.buckets); n > 5+1 {
		t.Errorf("%d rate-limit buckets, want at most 6", n)
	}
}

// A failed write keeps the counts for the next flush.
func TestRefusalsKeptWhenTheStoreFails(t *testing.T) {
	fake := &fakeStore{auditErr: context.DeadlineExceeded}
	env := newTestEnv(t, fake)
	env.send(t, "192.0.2.9:1", "", "")
	env.send(t, "192.0.2.9:1", "", "")
	if err := env.srv.FlushRefusals(t.Context()); err == nil {
		t.Fatal("flush succeeded with a failing store")
	}
	fake.mu.Lock()
	fake.auditErr = nil
	fake.mu.Unlock()
	if err := env.srv.FlushRefusals(t.Context()); err != nil {
		t.Fatal(err)
	}
	if rows := fake.auditRows(); len(rows) != 1 || rows[0].Requests != 2 {
		t.Errorf("rows %+v, want one row of 2 requests", rows)
	}
}

// Serve writes the counted rows when a window closes, and the open
// window's at shutdown.
func TestServeWritesRefusalsOnCloseAndShutdown(t *testing.T) {
	st := &syncingStore{fakeStore: &fakeStore{}}
	env := newTestEnvWith(t, st, func(c *Config) { c.BadCredentials.AuditWindow = 200 * time.Millisecond })
	env.srv.now = time.Now
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- env.srv.Serve(ctx, ln) }()
	get := func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/v1/access")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", resp.StatusCode)
		}
	}
	get()
	deadline := time.Now().Add(5 * time.Second)
	for st.fsyncs() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st.fsyncs() != 1 {
		t.Fatalf("the closed window's row not written within 5s")
	}
	get() // in a window still open at shutdown
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var requests int
	for _, b := range st.many {
		for _, r := range b {
			requests += r.Requests
			if !strings.HasPrefix(r.Source, "127.0.0.1") {
				t.Errorf("source %q", r.Source)
			}
		}
	}
	if requests != 2 {
		t.Errorf("%d requests in the audit rows, want 2", requests)
	}
}

func TestClientBehindTrustedProxies(t *testing.T) {
	ps, errs := parseProxies([]string{"10.0.0.0/8", "2001:db8:ffff::1", "::ffff:192.168.0.0/112"})
	if errs != nil {
		t.Fatal(errs)
	}
	tests := []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"no header: the peer", "10.0.0.2:5000", nil, "10.0.0.2:5000"},
		{"untrusted peer: header ignored", "198.51.100.4:1234", []string{"203.0.113.9"}, "198.51.100.4:1234"},
		{"trusted proxy: the address it received from", "10.0.0.2:5000", []string{"203.0.113.9"}, "203.0.113.9"},
		{"a forged entry left of the client is not believed", "10.0.0.2:5000", []string{"1.2.3.4, 203.0.113.9"}, "203.0.113.9"},
		{"trusted hops are skipped, right to left", "10.0.0.2:5000", []string{"203.0.113.9, 10.1.1.1", "10.2.2.2"}, "203.0.113.9"},
		{"port and brackets", "[2001:db8:ffff::1]:443", []string{"[2001:db8::7]:5555"}, "2001:db8::7"},
		{"IPv4 with port", "10.0.0.2:5000", []string{"203.0.113.9:61000"}, "203.0.113.9"},
		{"mapped proxy prefix", "192.168.3.4:80", []string{"203.0.113.9"}, "203.0.113.9"},
		{"garbage stops the walk at the last trusted hop", "10.0.0.2:5000", []string{"203.0.113.9, unknown, 10.3.3.3"}, "10.3.3.3"},
		{"all trusted: the leftmost", "10.0.0.2:5000", []string{"10.9.9.9, 10.8.8.8"}, "10.9.9.9"},
		{"empty entries are skipped", "10.0.0.2:5000", []string{"203.0.113.9,, "}, "203.0.113.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if _, got := ps.client(r); got != tt.want {
				t.Errorf("source %q, want %q", got, tt.want)
			}
		})
	}
	if _, errs := parseProxies([]string{"10.0.0.0/33", "proxy.example", "fe80::1%eth0"}); len(errs) != 3 {
		t.Errorf("errors %v, want 3", errs)
	}
}

// Through the API: behind a trusted proxy, the real client is the audit
// source and has its own bad-credential bucket; an untrusted peer's
// X-Forwarded-For changes neither.
func TestForwardedForInAuditAndRateLimit(t *testing.T) {
	st := &syncingStore{fakeStore: &fakeStore{}}
	env := newTestEnvWith(t, st, func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8"} })
	good := "Bearer " + env.tokens.analyst
	if env.send(t, "10.0.0.2:5000", good, "1.2.3.4, 203.0.113.9") != 200 || env.send(t, "198.51.100.4:1234", good, "203.0.113.9") != 200 {
		t.Fatal("good requests refused")
	}
	rows := st.auditRows()
	if len(rows) != 2 || rows[0].Source != "203.0.113.9" || rows[1].Source != "198.51.100.4:1234" {
		t.Fatalf("audit sources %+v, want the client behind the proxy, then the untrusted peer", rows)
	}
	// Bad tokens: each client behind the proxy has its own burst; an
	// untrusted peer rotating X-Forwarded-For has one.
	var behind, spoofed []int
	for i := range 2 * DefaultBadCredentialsBurst {
		client := netip.AddrFrom4([4]byte{203, 0, 113, byte(i % 2)}).String()
		behind = append(behind, env.send(t, "10.0.0.2:5000", "Bearer bad", client))
		spoofed = append(spoofed, env.send(t, "198.51.100.4:1234", "Bearer bad", client))
	}
	sort.Ints(behind)
	sort.Ints(spoofed)
	if behind[len(behind)-1] != 401 {
		t.Errorf("behind the proxy, two clients of %d requests each were rate limited: %v", DefaultBadCredentialsBurst, behind)
	}
	if spoofed[DefaultBadCredentialsBurst-1] != 401 || spoofed[DefaultBadCredentialsBurst] != 429 {
		t.Errorf("an untrusted peer split its bucket with X-Forwarded-For: %v", spoofed)
	}
	if err := env.srv.FlushRefusals(t.Context()); err != nil {
		t.Fatal(err)
	}
	sources := map[string]int{}
	for _, r := range st.many[0] {
		sources[r.Source] += r.Requests
	}
	want := map[string]int{"203.0.113.0": DefaultBadCredentialsBurst, "203.0.113.1": DefaultBadCredentialsBurst, "198.51.100.4": 2 * DefaultBadCredentialsBurst}
	if !reflect.DeepEqual(sources, want) {
		t.Errorf("aggregated sources %v, want %v", sources, want)
	}
}

func TestBadCredentialsConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{BadCredentials: BadCredentialsConfig{Burst: -1}},
		{BadCredentials: BadCredentialsConfig{AuditWindow: time.Millisecond}},
		{BadCredentials: BadCredentialsConfig{AuditWindow: 2 * time.Hour}},
		{BadCredentials: BadCredentialsConfig{MaxSources: -1}},
		{TrustedProxies: []string{"not a network"}},
	} {
		if c.Validate() == nil {
			t.Errorf("%+v: valid", c)
		}
	}
	if err := (Config{TrustedProxies: []string{"10.0.0.0/8", "::1"}, BadCredentials: BadCredentialsConfig{AuditWindow: time.Second}}).Validate(); err != nil {
		t.Error(err)
	}
}

// On the real store: the counted refusals are one row in connlog_ops.audit
// with their number of requests, shown by GET /v1/audit; every other row
// stands for one request.
func TestAuditSearchShowsCountedRefusals(t *testing.T) {
	env := newLiveEnv(t, func(c *Config) { c.BadCredentials.RequestsPerSecond = 0 }) // the default limit
	for range 25 {
		env.do(t, http.MethodGet, "/v1/access?ip=203.0.113.7&"+env.window(), "Bearer cl_wrong", "INC-1234", "", "", false)
	}
	if err := env.srv.FlushRefusals(t.Context()); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	r := env.get(t, "/v1/audit?endpoint=/v1/access&from="+now.Add(-time.Hour).Format(time.RFC3339)+"&to="+now.Add(time.Hour).Format(time.RFC3339), env.tokens[RoleAuditor], "")
	if r.StatusCode != 200 {
		t.Fatalf("audit search: %d %s", r.StatusCode, r.body)
	}
	var page auditResponse
	if err := json.Unmarshal([]byte(r.body), &page); err != nil {
		t.Fatal(err)
	}
	got := map[int]int{}
	for _, row := range page.Rows {
		got[row.Status] += row.Requests
		if row.Source != "192.0.2.1" || row.Actor != "" || row.Requests < 1 {
			t.Errorf("row %+v", row)
		}
	}
	if want := map[int]int{401: DefaultBadCredentialsBurst, 429: 25 - DefaultBadCredentialsBurst}; !reflect.DeepEqual(got, want) || len(page.Rows) != 2 {
		t.Errorf("%d rows counting %v, want 2 rows counting %v: %s", len(page.Rows), got, want, r.body)
	}
	// The auditor's own search is a row of one request, shown as such.
	r = env.get(t, "/v1/audit?endpoint=/v1/audit&from="+now.Add(-time.Hour).Format(time.RFC3339)+"&to="+now.Add(time.Hour).Format(time.RFC3339), env.tokens[RoleAuditor], "")
	if !strings.Contains(r.body, `"requests":1`) {
		t.Errorf("an ordinary row without requests 1: %s", r.body)
	}
}

// A source varying what it sends (methods, and reasons: a JWT's error
// text) cannot make the rows of a window grow without bound.
func TestRefusalRowsPerWindowAreBounded(t *testing.T) {
	a := newRefusals(BadCredentialsConfig{AuditWindow: time.Minute, MaxSources: 5})
	at := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	for i := range 1000 {
		a.add(audit.Entry{Time: at, Method: "M" + strconv.Itoa(i), Endpoint: "/v1/", Status: 401, Reason: "jwt: bad " + strconv.Itoa(i)}, "192.0.2.1")
	}
	st := &syncingStore{fakeStore: &fakeStore{}}
	if err := a.flush(t.Context(), st, at.Add(time.Minute), false); err != nil {
		t.Fatal(err)
	}
	rows, total := st.many[0], 0
	for _, r := range rows {
		total += r.Requests
		if r.Method != "other" && r.Source != overflowSource {
			t.Errorf("method %q kept", r.Method)
		}
	}
	if len(rows) != 5*maxGroupsPerSource+1 || total != 1000 {
		t.Errorf("%d rows counting %d requests, want %d rows counting 1000", len(rows), total, 5*maxGroupsPerSource+1)
	}
}

// Bad JWTs are refused like unknown tokens, and once their source is over
// its limit they are not even checked: no signature check, no key fetch
// from the identity provider per forged token. A good JWT from elsewhere
// is served.
func TestBadJWTFloodIsLimitedBeforeVerification(t *testing.T) {
	idp := newTestIdP(t)
	srv, st := newOIDCEnv(t, idp, &bytes.Buffer{})
	const target = "/v1/access?ip=203.0.113.7&from=2026-03-03T00:00:00Z&to=2026-03-04T00:00:00Z"
	send := func(remote, tok string) int {
		req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, target, nil)
		req.RemoteAddr = remote
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("X-Purpose", "INC-1234")
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	rogue := idp.sign(t, "RS256-rogue", idp.claims(nil))
	codes := map[int]int{}
	for range 40 {
		codes[send("192.0.2.66:1000", rogue)]++
	}
	if codes[401] != DefaultBadCredentialsBurst || codes[429] != 40-DefaultBadCredentialsBurst {
		t.Errorf("forged JWTs answered %v", codes)
	}
	if n := idp.keyFetch.Load(); n > DefaultBadCredentialsBurst+1 {
		t.Errorf("%d key fetches for 40 forged tokens, want at most %d", n, DefaultBadCredentialsBurst+1)
	}
	if n := len(st.auditRows()); n != 0 {
		t.Errorf("%d audit rows written during the flood, want 0", n)
	}
	if got := send("198.51.100.5:1000", idp.sign(t, "RS256", idp.claims(nil))); got != 200 {
		t.Errorf("a good JWT from another source: %d", got)
	}
	if err := srv.FlushRefusals(t.Context()); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, r := range st.auditRows() {
		if r.Actor == "" {
			total += r.Requests
		}
	}
	if total != 40 {
		t.Errorf("counted rows stand for %d requests, want 40", total)
	}
}
