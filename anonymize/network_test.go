package anonymize

import (
	"net/netip"
	"strings"
	"testing"
)

func TestTruncate(t *testing.T) {
	cases := []struct {
		name         string
		addr         string
		bits4, bits6 int
		want         string
	}{
		{"ipv4 to /16 by default", "203.0.113.7", 16, 48, "203.0.0.0/16"},
		{"ipv6 to /48 by default", "2001:db8:1234:5678::1", 16, 48, "2001:db8:1234::/48"},
		{"ipv4-mapped ipv6 truncated as ipv4", "::ffff:203.0.113.7", 16, 48, "203.0.0.0/16"},
		{"zone dropped", "fe80::1%eth0", 16, 48, "fe80::/48"},
		{"coarser ipv4", "203.0.113.7", 8, 48, "203.0.0.0/8"},
		{"coarser ipv6", "2001:db8:1234:5678::1", 16, 32, "2001:db8::/32"},
		{"everything hidden", "203.0.113.7", 0, 0, "0.0.0.0/0"},
		{"invalid address gives zero network", "", 16, 48, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var addr netip.Addr
			if c.addr != "" {
				addr = netip.MustParseAddr(c.addr)
			}
			n := truncate(addr, c.bits4, c.bits6)
			if got := n.String(); got != c.want {
				t.Fatalf("truncate(%s) = %q, want %q", c.addr, got, c.want)
			}
			if n.IsValid() != (c.want != "") {
				t.Fatalf("IsValid = %v", n.IsValid())
			}
			// The rendered value never parses as a full address.
			if _, err := netip.ParseAddr(n.String()); err == nil {
				t.Fatalf("%q parses as an address", n.String())
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name    string
		edit    func(*Config)
		wantErr []string
	}{
		{"defaults are valid", func(*Config) {}, nil},
		{"coarser prefixes accepted", func(c *Config) { c.IPv4PrefixLen, c.IPv6PrefixLen = 8, 32 }, nil},
		{"finer ipv4 refused", func(c *Config) { c.IPv4PrefixLen = 24 }, []string{"ipv4_prefix_len: 24"}},
		{"finer ipv6 refused", func(c *Config) { c.IPv6PrefixLen = 64 }, []string{"ipv6_prefix_len: 64"}},
		{"all problems at once", func(c *Config) {
			c.IPv4PrefixLen, c.IPv6PrefixLen, c.UserAgentCacheSize, c.KeyTimeout = 32, 128, 0, 0
			c.GeoLevel = GeoCity
		}, []string{"ipv4_prefix_len", "ipv6_prefix_len", "user_agent_cache_size", "key_timeout", "needs anonymize.geo_database"}},
		{"empty probe substring refused", func(c *Config) { c.HealthCheckUserAgents = []string{""} }, []string{"empty entry"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			c.edit(&cfg)
			err := cfg.Validate()
			if len(c.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted the config")
			}
			for _, w := range c.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestNewRefusesFinerTruncation(t *testing.T) {
	cfg := DefaultConfig()
	cfg.IPv4PrefixLen = 24
	if _, err := New(cfg, NewKeys(NewMemoryKeyStore()), nil, nil); err == nil {
		t.Fatal("New accepted /24")
	}
}

func TestGeoLevelText(t *testing.T) {
	for _, s := range []string{"country", "region", "city"} {
		var l GeoLevel
		if err := l.UnmarshalText([]byte(s)); err != nil || l.String() != s {
			t.Fatalf("UnmarshalText(%q) = %v, %v", s, l, err)
		}
	}
	var l GeoLevel
	if err := l.UnmarshalText([]byte("street")); err == nil {
		t.Fatal("street accepted")
	}
}
