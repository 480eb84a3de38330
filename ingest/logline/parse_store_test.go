package logline

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/storetest"
)

// TestParsedHitsRoundTripThroughTheStore parses lines of several formats
// and address families, writes them to the embedded ClickHouse and reads
// them back: every field comes back as parsed (IPv4 stored as IPv4-mapped
// IPv6 comes back as IPv4), secrets are already redacted in every store,
// and the connection records keep path and user only for create, modify
// and delete.
func TestParsedHitsRoundTripThroughTheStore(t *testing.T) {
	st := storetest.New(t)

	cfg := DefaultConfig()
	cfg.TrustedProxies = []string{"10.0.0.0/8"}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	tl := now.Format("02/Jan/2006:15:04:05 -0700")
	msec := fmt.Sprintf("%d.123", now.Unix())
	lines := []string{
		`192.0.2.1 - alice [` + tl + `] "GET /a?token=s3cret&x=1 HTTP/1.1" 200 10 "https://r.example/?email=a@b" "UA \"q\""`,
		`2001:db8::1 - bob [` + tl + `] "POST /b HTTP/2.0" 201 20 "-" "-"`,
		`::ffff:198.51.100.9 - - [` + tl + `] "DELETE /c HTTP/1.1" 204 0 "-" "-"`,
		`{"host":"web1","file":"/var/log/nginx/access.json.log","message":` + jsonString(`{"msec":"`+msec+`","remote_addr":"10.1.1.1","remote_port":"4000",`+
			`"http_x_forwarded_for":"2001:db8:beef::7","server_addr":"2001:db8::443","server_port":"443","host":"shop.example","request_id":"rid-1",`+
			`"ssl_protocol":"TLSv1.3","remote_user":"carol","request":"PUT /cart/1?session=abc HTTP/2.0","status":"200","body_bytes_sent":"5",`+
			`"request_time":"0.012","upstream_addr":"127.0.0.1:8080","http_sec_gpc":"1"}`) + `}`,
	}
	hits := make([]store.Hit, len(lines))
	for i, l := range lines {
		if err := p.Parse("nginx", []byte(l), &hits[i]); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		hits[i].Source = store.Source{Topic: "nginx", Partition: 0, Offset: int64(i)}
		hits[i].Ingested = now.Add(time.Minute)
	}
	if err := st.Write(t.Context(), store.Batch{Hits: hits}); err != nil {
		t.Fatal(err)
	}
	for i, want := range hits {
		got, err := st.SearchAccess(t.Context(), store.AccessQuery{
			Network: netip.PrefixFrom(want.ClientIP, want.ClientIP.BitLen()), From: now.Add(-time.Minute), To: now.Add(time.Minute), Limit: 10,
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 {
			t.Fatalf("line %d: %d rows for %v", i+1, len(got), want.ClientIP)
		}
		want.Redacted = false // not stored
		// Of the zero-is-a-value marks, the store keeps the headers' only.
		want.Has &= store.HasReferer | store.HasUserAgent
		if got[0] != want {
			t.Errorf("line %d:\n got  %+v\n want %+v", i+1, got[0], want)
		}
	}
	if hits[0].Query != "token=REDACTED&x=1" || hits[0].Referer != "https://r.example/?email=REDACTED" || hits[3].Query != "session=REDACTED" {
		t.Errorf("not redacted: %q %q %q", hits[0].Query, hits[0].Referer, hits[3].Query)
	}
	if hits[3].ClientIP != netip.MustParseAddr("2001:db8:beef::7") || hits[3].PeerIP != netip.MustParseAddr("10.1.1.1") || !hits[3].OptOut {
		t.Errorf("envelope line: client %v peer %v opt-out %v", hits[3].ClientIP, hits[3].PeerIP, hits[3].OptOut)
	}

	db := st.Databases()
	rows, err := st.Conn().Query(t.Context(), "SELECT kafka_offset, toString(operation), path, user FROM "+db.Connections+".connection_records ORDER BY kafka_offset")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var (
			off            int64
			op, path, user string
		)
		if err := rows.Scan(&off, &op, &path, &user); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d %s %q %q", off, op, path, user))
	}
	want := []string{`0 read "" ""`, `1 create "/b" "bob"`, `2 delete "/c" ""`, `3 modify "/cart/1" "carol"`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("connection records:\n got  %q\n want %q", got, want)
	}
}

// TestIssue14LinesRoundTripThroughTheStore: what the access log could not
// keep before migration 0011 comes back from storage: a client that is not
// an address (found by its text, not by an address), a request that is not
// HTTP (kept raw, no path), and a header sent empty apart from one absent.
func TestIssue14LinesRoundTripThroughTheStore(t *testing.T) {
	st := storetest.New(t)
	p, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	tl := "[" + now.Format("02/Jan/2006:15:04:05 -0700") + "]"
	lines := []string{
		`unix: - - ` + tl + ` "GET /u HTTP/1.1" 200 1 "" ""`,
		`host.isp.example - john doe ` + tl + ` "GET /h HTTP/1.1" 000 0 "-" "-"`,
		`192.0.2.50 - - ` + tl + ` "\x16\x03\x01\x00?token=abc" 400 157 "-" "-"`,
	}
	hits := make([]store.Hit, len(lines))
	for i, l := range lines {
		if err := p.Parse("nginx", []byte(l), &hits[i]); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		hits[i].Source = store.Source{Topic: "nginx", Offset: int64(i)}
		hits[i].Ingested = now
	}
	if err := st.Write(t.Context(), store.Batch{Hits: hits}); err != nil {
		t.Fatal(err)
	}
	from, to := now.Add(-time.Minute), now.Add(time.Minute)
	for i, q := range []store.AccessQuery{
		{Client: "unix:", From: from, To: to, Limit: 10},
		{Client: "host.isp.example", From: from, To: to, Limit: 10},
		{Network: netip.MustParsePrefix("192.0.2.50/32"), From: from, To: to, Limit: 10},
	} {
		got, err := st.SearchAccess(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 {
			t.Fatalf("query %d: %d rows, want 1", i+1, len(got))
		}
		want := hits[i]
		want.Redacted = false
		want.Has &= store.HasReferer | store.HasUserAgent
		if got[0] != want {
			t.Errorf("line %d:\n got  %+v\n want %+v", i+1, got[0], want)
		}
	}
	if hits[0].Has&(store.HasReferer|store.HasUserAgent) != store.HasReferer|store.HasUserAgent || hits[1].Has&store.HasReferer != 0 {
		t.Errorf("header presence: %v %v", hits[0].Has, hits[1].Has)
	}
	if hits[2].RawRequest != `\x16\x03\x01\x00?token=`+RedactedValue || hits[2].Path != "" || hits[1].User != "john doe" {
		t.Errorf("raw request %q path %q user %q", hits[2].RawRequest, hits[2].Path, hits[1].User)
	}
	// a client text has no address: no search by address finds it
	if got, err := st.SearchAccess(t.Context(), store.AccessQuery{Network: netip.MustParsePrefix("::/0"), From: from, To: to, Limit: 10}); err != nil || len(got) != 1 {
		t.Errorf("::/0 found %d rows (%v), want the one with an address", len(got), err)
	}
	if _, err := st.SearchAccess(t.Context(), store.AccessQuery{Client: "unix:", Network: netip.MustParsePrefix("192.0.2.0/24"), From: from, To: to, Limit: 1}); !errors.Is(err, store.ErrBadFilter) {
		t.Errorf("client and network together: %v, want ErrBadFilter", err)
	}
}
