package logline_test

import (
	"fmt"
	"os"
	"strings"

	"github.com/connlog/connlog/ingest/logline"
	"github.com/connlog/connlog/store"
)

func ExampleParseCombined() {
	line := []byte(`10.0.0.2, 10.0.0.1, 192.0.2.10 - - [07/Dec/2016:11:05:07 +0100] "GET /ocelot?x=1 HTTP/1.1" 200 571 "-" "curl/8.0"` + "\n")
	var h store.Hit
	if err := logline.ParseCombined(line, &h); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(h.EventTime, h.PeerIP, h.ForwardedFor, h.Method, h.Path, h.Query, h.Status)
	// Output: 2016-12-07 10:05:07 +0000 UTC 192.0.2.10 10.0.0.2, 10.0.0.1 GET /ocelot x=1 200
}

func ExampleParseStream() {
	in := strings.NewReader(`::1 - - [26/Dec/2016:16:16:48 +0200] "-" 408 -` + "\nnot a log line\n")
	p, err := logline.New(logline.DefaultConfig().WithFormat(logline.FormatCombined, ""))
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := logline.ParseStream(in, os.Stdout, p); err != nil {
		fmt.Println(err)
	}
	// Output:
	// {"time":"2016-12-26T14:16:48.000Z","client_ip":"::1","peer_ip":"::1","status":408,"bytes":0,"operation":"read"}
	// {"error":"time_local at byte 14: missing [time_local]","line":2}
}
