package anonymize

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

const chromeUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

func hitAt(t time.Time, ip, site, ua string) *Request {
	return &Request{EventTime: t, ClientIP: netip.MustParseAddr(ip), Site: site, Path: "/", Status: 200, UserAgent: ua}
}

func visitorOf(tb testing.TB, a *Anonymizer, h *Request) uint64 {
	tb.Helper()
	var out Audience
	if !a.Audience(h, Signals{}, &out) {
		tb.Fatalf("hit excluded")
	}
	return out.Visitor
}

func TestVisitorHash(t *testing.T) {
	a, _, clock := newTestAnonymizer(t, DefaultConfig())
	day1 := testNow
	v := visitorOf(t, a, hitAt(day1, "203.0.113.7", "www.example.org", chromeUA))
	if v == 0 {
		t.Fatal("no visitor hash")
	}
	cases := []struct {
		name string
		hit  *Request
		same bool
	}{
		{"same visitor later the same day", hitAt(day1.Add(5*time.Hour), "203.0.113.7", "www.example.org", chromeUA), true},
		{"mapped form of the same address", hitAt(day1, "::ffff:203.0.113.7", "www.example.org", chromeUA), true},
		{"neighbour in the same /16", hitAt(day1, "203.0.113.8", "www.example.org", chromeUA), false},
		{"other user agent", hitAt(day1, "203.0.113.7", "www.example.org", chromeUA+" X"), false},
		{"other site", hitAt(day1, "203.0.113.7", "intranet.example.org", chromeUA), false},
	}
	for _, c := range cases {
		if got := visitorOf(t, a, c.hit); (got == v) != c.same {
			t.Errorf("%s: hash equal = %v, want %v", c.name, got == v, c.same)
		}
	}

	t.Run("next day, new key, different hash", func(t *testing.T) {
		clock.t = day1.Add(24 * time.Hour)
		v2 := visitorOf(t, a, hitAt(clock.t, "203.0.113.7", "www.example.org", chromeUA))
		if v2 == 0 || v2 == v {
			t.Fatalf("day 2 hash %x, day 1 hash %x", v2, v)
		}
		// A late line of yesterday still uses yesterday's key.
		if got := visitorOf(t, a, hitAt(day1, "203.0.113.7", "www.example.org", chromeUA)); got != v {
			t.Fatalf("late line of yesterday hashed %x, want %x", got, v)
		}
	})
	t.Run("hit older than the key lifetime kept without visitor", func(t *testing.T) {
		clock.t = day1.Add(48 * time.Hour)
		if got := visitorOf(t, a, hitAt(day1, "203.0.113.7", "www.example.org", chromeUA)); got != 0 {
			t.Fatalf("hash %x from a destroyed key", got)
		}
	})
}

func TestKeysSharedByInstances(t *testing.T) {
	shared := NewMemoryKeyStore()
	clock := &fakeClock{t: testNow}
	var instances [4]*Anonymizer
	for i := range instances {
		var err error
		instances[i], err = New(DefaultConfig(), NewKeys(shared, WithClock(clock.now)), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	// All instances see the day's first hit at once: PutIfAbsent picks one key.
	hashes := make([]uint64, len(instances))
	var wg sync.WaitGroup
	for i, a := range instances {
		wg.Go(func() { hashes[i] = visitorOf(t, a, hitAt(testNow, "2001:db8:1::5", "www.example.org", chromeUA)) })
	}
	wg.Wait()
	for i := range hashes {
		if hashes[i] != hashes[0] || hashes[i] == 0 {
			t.Fatalf("instance %d hash %x, instance 0 hash %x", i, hashes[i], hashes[0])
		}
	}
	if shared.Len() != 1 {
		t.Fatalf("%d keys stored, want 1", shared.Len())
	}
}

func TestKeyDestroyedAfter48h(t *testing.T) {
	st := NewMemoryKeyStore()
	clock := &fakeClock{t: testNow}
	keys := NewKeys(st, WithClock(clock.now))
	ctx := t.Context()
	day := DayOf(testNow)
	k1, err := keys.Key(ctx, day)
	if err != nil {
		t.Fatal(err)
	}
	if k1 == (Key{}) {
		t.Fatal("zero key")
	}
	if s := fmt.Sprintf("%v %+v %#v %s", k1, k1, k1, k1); s != "<redacted> <redacted> <redacted> <redacted>" {
		t.Fatalf("key printed as %q", s)
	}

	clock.t = day.Start().Add(KeyLifetime - time.Second) // end of the next day: still alive
	if err := keys.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := keys.Key(ctx, day); err != nil || got != k1 {
		t.Fatalf("key gone before 48h: %v", err)
	}

	clock.t = day.Start().Add(KeyLifetime)
	if _, _, ok := keys.cached(day, clock.t); ok {
		t.Fatal("expired key served from memory")
	}
	if err := keys.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := st.Get(ctx, day); ok {
		t.Fatal("expired key still in the KeyStore")
	}
	for _, d := range keys.cache.Load().days[:keys.cache.Load().n] {
		if d == day {
			t.Fatal("expired key still in the cache")
		}
	}
	if _, err := keys.Key(ctx, day); err == nil {
		t.Fatal("Key recreated a key for an expired day")
	}
	if _, err := keys.Key(ctx, day+3); err == nil {
		t.Fatal("Key created a key for a future day")
	}
}

func TestDayOf(t *testing.T) {
	for _, c := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), "2026-03-02"},
		{time.Date(2026, 3, 2, 23, 59, 59, 999, time.UTC), "2026-03-02"},
		{time.Date(2026, 3, 3, 0, 30, 0, 0, time.FixedZone("CET", 3600)), "2026-03-02"},
		{time.Date(1969, 12, 31, 12, 0, 0, 0, time.UTC), "1969-12-31"},
	} {
		if got := DayOf(c.t).String(); got != c.want {
			t.Errorf("DayOf(%s) = %s, want %s", c.t, got, c.want)
		}
	}
}
