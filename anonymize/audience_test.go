package anonymize

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

var crawlerUAs = map[string]string{
	"Googlebot":             "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
	"Googlebot smartphone":  "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.6422.175 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
	"bingbot":               "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
	"AhrefsBot":             "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
	"SemrushBot":            "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
	"YandexBot":             "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
	"GPTBot":                "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
	"curl":                  "curl/8.5.0",
	"Wget":                  "Wget/1.21.4",
	"python-requests":       "python-requests/2.31.0",
	"Go-http-client":        "Go-http-client/1.1",
	"UptimeRobot":           "Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
	"Pingdom":               "Mozilla/5.0 (compatible; pingdom.com_bot_version_1.4; http://www.pingdom.com/)",
	"facebookexternalhit":   "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
	"Twitterbot":            "Twitterbot/1.0",
	"HeadlessChrome":        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
	"Slackbot link preview": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
	"empty":                 "",
}

var browserUAs = []struct {
	name, ua, browser, os, device string
}{
	{"Chrome on Windows", chromeUA, "Chrome", "Windows", DeviceDesktop},
	{"Firefox on Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox", "Windows", DeviceDesktop},
	{"Firefox on Linux", "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox", "Linux", DeviceDesktop},
	{"Safari on iPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1", "Safari", "iOS", DeviceMobile},
	{"Safari on iPad", "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1", "Safari", "iOS", DeviceTablet},
	{"Safari on macOS", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15", "Safari", "macOS", DeviceDesktop},
	{"Edge on Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "Edge", "Windows", DeviceDesktop},
	{"Chrome on Android phone", "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.39 Mobile Safari/537.36", "Chrome", "Android", DeviceMobile},
	{"Samsung Internet", "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36", "Samsung Internet", "Android", DeviceMobile},
	{"Chrome on ChromeOS", "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome", "ChromeOS", DeviceDesktop},
	{"Chrome on iPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1", "Chrome", "iOS", DeviceMobile},
}

func TestCrawlersExcluded(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := New(DefaultConfig(), NewKeys(NewMemoryKeyStore()), reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, ua := range crawlerUAs {
		t.Run(name, func(t *testing.T) {
			var out Audience
			if a.Audience(&Request{EventTime: time.Now(), ClientIP: netip.MustParseAddr("66.249.66.1"), Site: "www.example.org", Path: "/", Status: 200, UserAgent: ua}, Signals{}, &out) {
				t.Fatalf("%s kept as %s/%s/%s", name, out.Browser, out.OS, out.Device)
			}
		})
	}
	if got := counterValue(t, a.metrics.bot); got != float64(len(crawlerUAs)) {
		t.Fatalf("connlog_anonymize_excluded_total{reason=bot} = %v, want %d", got, len(crawlerUAs))
	}
}

func TestBrowsersClassified(t *testing.T) {
	a, _, _ := newTestAnonymizer(t, DefaultConfig())
	for _, c := range browserUAs {
		t.Run(c.name, func(t *testing.T) {
			for range 2 { // parsed, then from the cache
				var out Audience
				if !a.Audience(hitAt(testNow, "203.0.113.7", "www.example.org", c.ua), Signals{}, &out) {
					t.Fatal("browser excluded")
				}
				if out.Browser != c.browser || out.OS != c.os || out.Device != c.device {
					t.Fatalf("got %s/%s/%s, want %s/%s/%s", out.Browser, out.OS, out.Device, c.browser, c.os, c.device)
				}
			}
		})
	}
}

func TestHealthChecksAndOptOut(t *testing.T) {
	cases := []struct {
		name   string
		optOut bool
		path   string
		ua     string
		sig    Signals
		keep   bool
		reason string
	}{
		{"plain visit", true, "/index.html", chromeUA, Signals{}, true, ""},
		{"health check path", true, "/healthz", chromeUA, Signals{}, false, ReasonHealthCheck},
		{"health check path with query", true, "/status?full=1", chromeUA, Signals{}, false, ReasonHealthCheck},
		{"kubernetes probe", true, "/", "kube-probe/1.29", Signals{}, false, ReasonHealthCheck},
		{"ELB health checker", true, "/", "ELB-HealthChecker/2.0", Signals{}, false, ReasonHealthCheck},
		{"GPC with opt-out on", true, "/", chromeUA, Signals{GPC: true}, false, ReasonOptOut},
		{"DNT with opt-out on", true, "/", chromeUA, Signals{DNT: true}, false, ReasonOptOut},
		{"GPC with opt-out off", false, "/", chromeUA, Signals{GPC: true}, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.OptOut = c.optOut
			a, _, _ := newTestAnonymizer(t, cfg)
			h := hitAt(testNow, "203.0.113.7", "www.example.org", c.ua)
			h.Path = c.path
			var out Audience
			if got := a.Audience(h, c.sig, &out); got != c.keep {
				t.Fatalf("keep = %v, want %v", got, c.keep)
			}
			counters := map[string]prometheus.Counter{ReasonBot: a.metrics.bot, ReasonHealthCheck: a.metrics.health, ReasonOptOut: a.metrics.optOut}
			for r, cnt := range counters {
				want := 0.0
				if r == c.reason {
					want = 1
				}
				if got := counterValue(t, cnt); got != want {
					t.Errorf("excluded{reason=%s} = %v, want %v", r, got, want)
				}
			}
		})
	}
}

func TestAudienceFields(t *testing.T) {
	a, _, _ := newTestAnonymizer(t, DefaultConfig())
	h := hitAt(time.Date(2026, 3, 2, 14, 3, 27, 500, time.FixedZone("CET", 3600)), "203.0.113.7", "www.example.org", chromeUA)
	h.Path = "/articles/42?utm_source=x"
	h.Status = 404
	h.Referer = "https://News.Example.co.uk/page?q=secret"
	var out Audience
	if !a.Audience(h, Signals{}, &out) {
		t.Fatal("excluded")
	}
	want := Audience{
		Site: "www.example.org", Time: time.Date(2026, 3, 2, 13, 0, 0, 0, time.UTC), Path: "/articles/42",
		Browser: "Chrome", OS: "Windows", Device: DeviceDesktop, ReferrerDomain: "example.co.uk", StatusClass: "4xx",
		Network: truncate(netip.MustParseAddr("203.0.0.0"), 16, 48), Visitor: out.Visitor,
	}
	if out != want {
		t.Fatalf("got  %+v\nwant %+v", out, want)
	}
	if strings.Contains(out.Network.String(), "113") {
		t.Fatalf("network %s keeps the third byte", out.Network)
	}
}

func TestGeolocation(t *testing.T) {
	db := writeGeoDB(t)
	cases := []struct {
		name                  string
		level                 GeoLevel
		ip                    string
		country, region, city string
	}{
		{"country by default", GeoCountry, "203.0.113.7", "FR", "", ""},
		{"second country", GeoCountry, "198.51.100.200", "DE", "", ""},
		{"ipv4-mapped address", GeoCountry, "::ffff:203.0.113.7", "FR", "", ""},
		{"ipv6", GeoCountry, "2001:db8:1:2::9", "BE", "", ""},
		{"unknown network", GeoCountry, "10.1.2.3", "", "", ""},
		{"region when configured", GeoRegion, "203.0.113.7", "FR", "IDF", ""},
		{"city when configured", GeoCity, "203.0.113.7", "FR", "IDF", "Paris"},
		{"record without city", GeoCity, "192.0.2.1", "JP", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.GeoDatabase, cfg.GeoLevel = db, c.level
			a, _, _ := newTestAnonymizer(t, cfg)
			for range 2 { // decoded, then from the record cache
				var out Audience
				if !a.Audience(hitAt(testNow, c.ip, "www.example.org", chromeUA), Signals{}, &out) {
					t.Fatal("excluded")
				}
				if out.Country != c.country || out.Region != c.region || out.City != c.city {
					t.Fatalf("got %q/%q/%q, want %q/%q/%q", out.Country, out.Region, out.City, c.country, c.region, c.city)
				}
			}
		})
	}
	t.Run("no database means unknown country", func(t *testing.T) {
		a, _, _ := newTestAnonymizer(t, DefaultConfig())
		var out Audience
		a.Audience(hitAt(testNow, "203.0.113.7", "www.example.org", chromeUA), Signals{}, &out)
		if out.Country != "" {
			t.Fatalf("country %q without database", out.Country)
		}
	})
	t.Run("unreadable database refused", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.GeoDatabase = t.TempDir() + "/missing.mmdb"
		if _, err := New(cfg, NewKeys(NewMemoryKeyStore()), nil, nil); err == nil {
			t.Fatal("New accepted a missing database")
		}
	})
}

func TestReferrerDomain(t *testing.T) {
	cases := []struct{ ref, site, want string }{
		{"", "www.example.org", ReferrerDirect},
		{"-", "www.example.org", ReferrerDirect},
		{"https://www.google.com/search?q=x", "www.example.org", "google.com"},
		{"https://news.bbc.co.uk/a", "www.example.org", "bbc.co.uk"},
		{"HTTPS://User:pw@WWW.Example.NET:8443/x#y", "www.example.org", "example.net"},
		{"https://www.example.org/page", "www.example.org", ReferrerInternal},
		{"https://blog.example.org/page", "www.example.org:443", ReferrerInternal},
		{"https://hopital.gouv.fr/", "mairie.gouv.fr", "hopital.gouv.fr"},
		{"http://203.0.113.7/admin", "www.example.org", ReferrerIP},
		{"http://[2001:db8::1]:8080/", "www.example.org", ReferrerIP},
		{"android-app://com.google.android.gm/", "www.example.org", "android.gm"},
		{"//cdn.example.com/x", "www.example.org", "example.com"},
		{"not a url", "www.example.org", ReferrerInvalid},
		{"https://exa mple.com/", "www.example.org", ReferrerInvalid},
		{"http://localhost:3000/", "www.example.org", "localhost"},
	}
	for _, c := range cases {
		if got := referrerDomain(c.ref, c.site, nil); got != c.want {
			t.Errorf("referrerDomain(%q, %q) = %q, want %q", c.ref, c.site, got, c.want)
		}
	}
}

func counterValue(tb testing.TB, c prometheus.Counter) float64 {
	tb.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		tb.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
