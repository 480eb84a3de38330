package anonymize_test

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connlog/connlog/anonymize"
)

func Example() {
	// One KeyStore per consumer group; MemoryKeyStore suits a single instance.
	keys := anonymize.NewKeys(anonymize.NewMemoryKeyStore())
	a, err := anonymize.New(anonymize.DefaultConfig(), keys, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		panic(err)
	}
	defer a.Close()

	h := anonymize.Request{
		EventTime: time.Now(),
		ClientIP:  netip.MustParseAddr("203.0.113.7"),
		Site:      "www.example.org",
		Path:      "/articles/42",
		Status:    200,
		Referer:   "https://www.google.com/",
		UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
	}
	var out anonymize.Audience
	if a.Audience(&h, anonymize.Signals{}, &out) {
		fmt.Println(out.Site, out.Path, out.Network, out.Browser, out.OS, out.Device, out.ReferrerDomain, out.StatusClass, out.Visitor != 0)
	}
	// Output: www.example.org /articles/42 203.0.0.0/16 Safari iOS mobile google.com 2xx true
}
