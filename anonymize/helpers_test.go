package anonymize

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/prometheus/client_golang/prometheus"
)

// testDay is a fixed Monday used as "now" by most tests.
var testNow = time.Date(2026, 3, 2, 14, 3, 27, 0, time.UTC)

// fakeClock is a settable clock for Keys.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// newTestAnonymizer builds an Anonymizer over an in-memory KeyStore and a
// fixed clock.
func newTestAnonymizer(tb testing.TB, cfg Config) (*Anonymizer, *Keys, *fakeClock) {
	tb.Helper()
	clock := &fakeClock{t: testNow}
	keys := NewKeys(NewMemoryKeyStore(), WithClock(clock.now))
	a, err := New(cfg, keys, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { _ = a.Close() })
	return a, keys, clock
}

// writeGeoDB writes a MaxMind-format City database with a few test
// networks and returns its path.
func writeGeoDB(tb testing.TB) string {
	tb.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            "GeoIP2-City",
		RecordSize:              24,
		IncludeReservedNetworks: true, // the documentation ranges are reserved
	})
	if err != nil {
		tb.Fatalf("mmdbwriter.New: %v", err)
	}
	rec := func(country, region, city string) mmdbtype.Map {
		m := mmdbtype.Map{
			"country": mmdbtype.Map{"iso_code": mmdbtype.String(country), "names": mmdbtype.Map{"en": mmdbtype.String(country + " land")}},
		}
		if region != "" {
			m["subdivisions"] = mmdbtype.Slice{mmdbtype.Map{"iso_code": mmdbtype.String(region)}}
		}
		if city != "" {
			m["city"] = mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(city)}}
		}
		return m
	}
	for _, n := range []struct {
		cidr string
		rec  mmdbtype.Map
	}{
		{"203.0.113.0/24", rec("FR", "IDF", "Paris")},
		{"198.51.100.0/24", rec("DE", "BE", "Berlin")},
		{"192.0.2.0/24", rec("JP", "", "")},
		{"2001:db8:1::/48", rec("BE", "BRU", "Brussels")},
	} {
		_, ipnet, err := net.ParseCIDR(n.cidr)
		if err != nil {
			tb.Fatal(err)
		}
		if err := tree.Insert(ipnet, n.rec); err != nil {
			tb.Fatalf("insert %s: %v", n.cidr, err)
		}
	}
	path := filepath.Join(tb.TempDir(), "test-city.mmdb")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		tb.Fatalf("write mmdb: %v", err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}
