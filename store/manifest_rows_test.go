package store

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// randomHit fills every field of a hit from r: strings of every length
// class (empty, one varint byte, two), the four kinds of address (none,
// IPv4, IPv6, IPv4-mapped), times either side of the epoch and of a day,
// every operation, both header flags.
func randomHit(r *rand.Rand) Hit {
	str := func() string {
		n := [...]int{0, 1, 7, 127, 128, 300}[r.IntN(6)]
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return string(b)
	}
	addr := func() netip.Addr {
		var a [16]byte
		for i := range a {
			a[i] = byte(r.Uint32())
		}
		switch r.IntN(4) {
		case 0:
			return netip.Addr{}
		case 1:
			return netip.AddrFrom4([4]byte(a[:4]))
		case 2:
			return netip.AddrFrom16(a)
		}
		return netip.AddrFrom16(netip.AddrFrom4([4]byte(a[:4])).As16())
	}
	when := func() time.Time {
		return time.Unix(0, r.Int64N(4_000_000_000_000_000_000)-1_000_000_000_000_000_000).UTC()
	}
	return Hit{
		Source:    Source{Topic: str(), Partition: r.Int32(), Offset: r.Int64() - r.Int64()},
		EventTime: when(), Ingested: when(),
		ClientIP: addr(), ClientPort: uint16(r.Uint32()), PeerIP: addr(), ForwardedFor: str(), ClientText: str(),
		ServerAddr: addr(), ServerPort: uint16(r.Uint32()), Site: str(),
		Method: [...]string{"GET", "POST", "PUT", "DELETE", "PATCH", "", "BREW"}[r.IntN(7)], Path: str(), Query: str(),
		Protocol: str(), Status: uint16(r.Uint32()), BytesSent: r.Uint64(), Referer: str(), UserAgent: str(),
		RequestTime: time.Duration(r.Int64N(1 << 50)), Upstream: str(), RequestID: str(), User: str(), TLSProtocol: str(),
		RawRequest: str(), Has: Fields(r.Uint32()), ShipperHost: str(), LogFile: str(), OptOut: r.IntN(2) == 0,
		Redacted: r.IntN(2) == 0, Operation: Operation(r.IntN(6)),
	}
}

// checkRowEncodings compares the straight-line encodings of h with the
// column lists' encoders, appending after bytes already in the arena as a
// batch does.
func checkRowEncodings(t *testing.T, h *Hit) {
	t.Helper()
	prefix := []byte("earlier rows")
	want := accessTable.encode(&encoder{b: bytes.Clone(prefix)}, h)
	got := encodeAccessV2(&encoder{b: bytes.Clone(prefix)}, h)
	sameRow(t, "access log", got, want)
	rec := ConnectionOf(h)
	want = connectionTable.encode(&encoder{b: bytes.Clone(prefix)}, &rec)
	got = encodeConnectionV2(&encoder{b: bytes.Clone(prefix)}, &rec)
	sameRow(t, "connection record", got, want)
}

func sameRow(t *testing.T, what string, got, want encodedRow) {
	t.Helper()
	if got.offset != want.offset || got.day != want.day || got.site != want.site {
		t.Fatalf("%s row: offset, day, site %d, %d, %q; the column list gives %d, %d, %q", what, got.offset, got.day, got.site, want.offset, want.day, want.site)
	}
	for _, p := range []struct {
		name      string
		got, want []byte
	}{{"columns", got.data, want.data}, {"detail columns", got.detail, want.detail}} {
		if !bytes.Equal(p.got, p.want) || (p.got == nil) != (p.want == nil) {
			i := 0
			for i < min(len(p.got), len(p.want)) && p.got[i] == p.want[i] {
				i++
			}
			t.Fatalf("%s row, %s: %d bytes (nil: %t), the column list gives %d (nil: %t); first difference at byte %d",
				what, p.name, len(p.got), p.got == nil, len(p.want), p.want == nil, i)
		}
	}
}

func TestRowEncodingsMatchTheColumnLists(t *testing.T) {
	h := goldenHit()
	checkRowEncodings(t, &h)
	checkRowEncodings(t, &Hit{})
	r := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		h := randomHit(r)
		checkRowEncodings(t, &h)
	}
}

// TestRowEncodingsSeeEveryField changes each hashed field of a hit alone and
// checks that the straight-line encoding changes with the lists': a field
// the lists hash and the encoder forgot would make the comparison above
// pass only by luck of equal values, never here.
func TestRowEncodingsSeeEveryField(t *testing.T) {
	base := goldenHit()
	changes := map[string]func(*Hit){
		"event_time": func(h *Hit) { h.EventTime = h.EventTime.Add(time.Millisecond) },
		"client_ip":  func(h *Hit) { h.ClientIP = netip.MustParseAddr("203.0.113.8") }, "client_port": func(h *Hit) { h.ClientPort++ },
		"peer_ip": func(h *Hit) { h.PeerIP = netip.MustParseAddr("2001:db8::2") }, "forwarded_for": func(h *Hit) { h.ForwardedFor += "x" },
		"server_addr": func(h *Hit) { h.ServerAddr = netip.MustParseAddr("192.0.2.11") }, "server_port": func(h *Hit) { h.ServerPort++ },
		"site": func(h *Hit) { h.Site += "x" }, "method": func(h *Hit) { h.Method = "PUT" }, "path": func(h *Hit) { h.Path += "x" },
		"query": func(h *Hit) { h.Query += "x" }, "protocol": func(h *Hit) { h.Protocol += "x" }, "status": func(h *Hit) { h.Status++ },
		"bytes_sent": func(h *Hit) { h.BytesSent++ }, "referer": func(h *Hit) { h.Referer += "x" }, "user_agent": func(h *Hit) { h.UserAgent += "x" },
		"request_time_us": func(h *Hit) { h.RequestTime += time.Microsecond }, "upstream": func(h *Hit) { h.Upstream += "x" },
		"request_id": func(h *Hit) { h.RequestID += "x" }, "user": func(h *Hit) { h.User += "x" }, "tls_protocol": func(h *Hit) { h.TLSProtocol += "x" },
		"kafka_topic": func(h *Hit) { h.Source.Topic += "x" }, "kafka_partition": func(h *Hit) { h.Source.Partition++ },
		"kafka_offset": func(h *Hit) { h.Source.Offset++ }, "operation": func(h *Hit) { h.Operation = OpDelete },
		"opt_out": func(h *Hit) { h.OptOut = !h.OptOut }, "shipper_host": func(h *Hit) { h.ShipperHost += "x" },
		"log_file": func(h *Hit) { h.LogFile += "x" }, "client_text": func(h *Hit) { h.ClientText += "x" },
		"raw_request": func(h *Hit) { h.RawRequest += "x" },
		"has_referer": func(h *Hit) { h.Referer = ""; h.Has ^= HasReferer }, "has_user_agent": func(h *Hit) { h.UserAgent = ""; h.Has ^= HasUserAgent },
	}
	for _, c := range accessTable.hashed {
		if changes[c.name] == nil {
			t.Errorf("column %s: no change of it in this test", c.name)
		}
	}
	enc := func(h *Hit) string {
		r := encodeAccessV2(&encoder{}, h)
		return string(r.data) + "|" + string(r.detail)
	}
	for name, change := range changes {
		h := base
		change(&h)
		checkRowEncodings(t, &h)
		if enc(&h) == enc(&base) {
			t.Errorf("changing %s does not change the access log's encoding", name)
		}
	}
}

func FuzzRowEncodings(f *testing.F) {
	f.Add(uint64(1), uint64(2), "/index.html", int64(1700000000123))
	f.Add(uint64(0), uint64(0), "", int64(-1))
	f.Fuzz(func(t *testing.T, a, b uint64, s string, ms int64) {
		h := randomHit(rand.New(rand.NewPCG(a, b)))
		h.Path, h.UserAgent, h.Site, h.Method = s, s, s, s
		h.EventTime = time.UnixMilli(ms)
		checkRowEncodings(t, &h)
	})
}
