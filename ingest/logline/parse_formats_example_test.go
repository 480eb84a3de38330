package logline_test

import (
	"fmt"
	"os"
	"strings"

	"github.com/connlog/connlog/ingest/logline"
	"github.com/connlog/connlog/store"
)

// A site behind a trusted load balancer ships its combined log through
// rsyslog without a template: the syslog header is removed, the client is
// taken from X-Forwarded-For, and the token in the query is redacted.
func ExampleParser() {
	cfg := logline.DefaultConfig()
	cfg.TrustedProxies = []string{"10.0.0.0/8"}
	cfg.Operations = []logline.OperationRule{{PathPrefix: "/search", Method: "POST", Operation: "read"}}
	p, err := logline.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	msg := []byte(`2026-11-22T11:00:00+01:00 web1 nginx: 10.0.0.5 - - [22/Nov/2026:11:00:00 +0100] "POST /search?token=s3cr3t&q=x HTTP/1.1" 200 512 "-" "curl/8" "198.51.100.7"` + "\n")
	var h store.Hit
	if err := p.Parse("nginx-access", msg, &h); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(h.ClientIP, h.PeerIP, h.Query, h.Operation, h.ShipperHost)
	// Output: 198.51.100.7 10.0.0.5 token=REDACTED&q=x read web1
}

// `connlog parse --log-format '...'` checks a format before deploying it.
func ExampleConfig_WithFormat() {
	p, err := logline.New(logline.DefaultConfig().WithFormat("", `$remote_addr $remote_port [$time_local] "$request" $status`))
	if err != nil {
		fmt.Println(err)
		return
	}
	in := strings.NewReader("2001:db8::1 443 [22/Nov/2026:11:00:00 +0100] \"GET / HTTP/2.0\" 204\nbad line\n")
	if err := logline.ParseStream(in, os.Stdout, p); err != nil {
		fmt.Println(err)
	}
	// Output:
	// {"time":"2026-11-22T10:00:00.000Z","client_ip":"2001:db8::1","client_port":443,"peer_ip":"2001:db8::1","method":"GET","path":"/","protocol":"HTTP/2.0","status":204,"operation":"read"}
	// {"error":"remote_addr at byte 0: not an IP address","line":2}
}
