package store

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// goldenHit and goldenQuarantined are fixed inputs whose manifest hashes
// are pinned below: a hash version's encoding must never change, or the
// manifests written under it stop verifying. A new column means a new
// version, not an edit of an old one.
func goldenHit() Hit {
	t := time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.UTC)
	return Hit{
		Source: Source{Topic: "nginx", Partition: 2, Offset: 42}, EventTime: t, Ingested: t.Add(time.Second),
		ClientIP: netip.MustParseAddr("203.0.113.7"), ClientPort: 40001, PeerIP: netip.MustParseAddr("2001:db8::1"),
		ForwardedFor: "198.51.100.1", ServerAddr: netip.MustParseAddr("192.0.2.10"), ServerPort: 443,
		Site: "www.example.org", Method: "POST", Path: "/form", Query: "q=1", Protocol: "HTTP/1.1", Status: 201,
		BytesSent: 1234, Referer: "https://example.org/", UserAgent: "Mozilla/5.0", RequestTime: 1500 * time.Microsecond,
		Upstream: "10.0.0.1:8080", RequestID: "req-42", User: "alice", TLSProtocol: "TLSv1.3",
		ShipperHost: "web1", LogFile: "/var/log/nginx/access.log", OptOut: true,
	}
}

func goldenQuarantined() Quarantined {
	return Quarantined{Source: Source{Topic: "nginx", Partition: 2, Offset: 43}, Received: time.Date(2026, 3, 4, 5, 6, 8, 0, time.UTC), Reason: "bad line", Raw: []byte("garbage")}
}

func TestManifestHashVersion1IsUnchanged(t *testing.T) {
	h, q := goldenHit(), goldenQuarantined()
	a := groupRows([]encodedRow{encodeHit(&encoder{}, 1, tableAccess, &h)})[0]
	c := groupRows([]encodedRow{encodeHit(&encoder{}, 1, tableConnections, &h)})[0]
	qq := groupRows([]encodedRow{encodeQuarantined(&encoder{}, 1, &q)})[0]
	for _, c := range []struct{ name, got, want string }{
		{"access", a.Hash, "460def3a18ea0ad813ca5e5f60b1d353b955f71b72e5d522531c50fda974f187"},
		{"access detail", a.DetailHash, "c6ddb549d8131ea705534ac469acbbebe8d60c11df59226b4a8beb34ff730e0a"},
		{"connection", c.Hash, "cd4fb9ea2d3fce4d93acee16208978c2a932dfdd37c5171351dc473a448fc37f"},
		{"quarantine", qq.Hash, "26c490a7fab3614d17a60b8bbd1f0cd8462cfb08d305faae7601f559f605e8a0"},
	} {
		if c.got != c.want {
			t.Errorf("version 1 %s hash %s, was %s", c.name, c.got, c.want)
		}
	}
	m := Manifest{Version: 1, Created: h.EventTime, BatchID: "nginx-2-42-43", Table: tableAccess, Topic: "nginx", Partition: 2, FirstOffset: 42, LastOffset: 43, Rows: 1, Groups: []ManifestGroup{a}, PrevHash: "00", KeyID: "ignored in v1"}
	if got := m.computeHash(); got != "9d23402753e82a134b573f85c8a7fa1854b1fdc87569f4471f8729317176e3dd" {
		t.Errorf("version 1 manifest hash %s", got)
	}
}

func TestManifestHashVersion2IsUnchanged(t *testing.T) {
	h, q := goldenHit(), goldenQuarantined()
	a := groupRows([]encodedRow{encodeHit(&encoder{}, 2, tableAccess, &h)})[0]
	c := groupRows([]encodedRow{encodeHit(&encoder{}, 2, tableConnections, &h)})[0]
	qq := groupRows([]encodedRow{encodeQuarantined(&encoder{}, 2, &q)})[0]
	m := Manifest{Version: 2, Created: h.EventTime, BatchID: "nginx/2/42-43/inc/digest", Table: tableAccess, Topic: "nginx", Partition: 2, FirstOffset: 42, LastOffset: 43, Rows: 1, Groups: []ManifestGroup{a},
		PrevHash: "00", Seq: 7, WriterPrev: []string{"11", "22"}, WriterPrevChains: []string{"quarantine/nginx/2", "access_log/nginx/2"}, WriterChains: []string{"access_log/nginx/2"}, WriterSeq: 9, KeyID: "k"}
	// connection_records and quarantine were already whole in version 1:
	// their row encodings did not change.
	for _, c := range []struct{ name, got, want string }{
		{"access", a.Hash, "ed6d8f307353fe0e01e21a05f89a38636beeb241a5695bddd815a11f69760a12"},
		{"access detail", a.DetailHash, "2d1b58ab105152f76c9ce0e8e200759b1bb9b09d174b14a6f86be57846266e0c"},
		{"connection", c.Hash, "cd4fb9ea2d3fce4d93acee16208978c2a932dfdd37c5171351dc473a448fc37f"},
		{"quarantine", qq.Hash, "26c490a7fab3614d17a60b8bbd1f0cd8462cfb08d305faae7601f559f605e8a0"},
		{"manifest", m.computeHash(), "006c6e984e354b5a671366e6aecf9dcf7de64fea928f4e3a5573a01cd8cbfa68"},
	} {
		if c.got != c.want {
			t.Errorf("version 2 %s hash %s, was %s", c.name, c.got, c.want)
		}
	}
}

// The manifests of a batch in offset order are hashed row by row as they
// come; any other batch is sorted first, as verify sorts what it reads
// back. Both must give the same manifests for the same rows.
func TestStreamedManifestsEqualSortedOnes(t *testing.T) {
	base := goldenHit()
	var b Batch
	for i := range 300 {
		h := base
		h.Source.Partition = int32(i % 3)
		h.Source.Offset = int64(100 + i)
		h.EventTime = base.EventTime.Add(time.Duration(i%7) * 11 * time.Hour) // several days
		h.Site = []string{"a.example", "b.example", ""}[i%5%3]
		h.Method = []string{"GET", "POST", "DELETE"}[i%3]
		h.Referer = ""
		if i%4 == 0 {
			h.Referer = "https://r.example/"
		}
		b.Hits = append(b.Hits, h)
	}
	for i := range 20 {
		q := goldenQuarantined()
		q.Source.Offset = int64(1000 + i)
		b.Quarantine = append(b.Quarantine, q)
	}
	created := time.Now().UTC()
	if !inOffsetOrder(b) {
		t.Fatal("batch in offset order not seen as such")
	}
	for _, v := range []uint8{1, 2} {
		streamed, sorted := manifestsFor(v, "id", b, created), manifestsSorted(v, "id", b, created)
		if !reflect.DeepEqual(streamed, sorted) {
			t.Fatalf("version %d:\nstreamed %+v\nsorted   %+v", v, streamed, sorted)
		}
		if len(streamed) != 7 {
			t.Fatalf("version %d: %d manifests, want 3 partitions × 2 tables + quarantine", v, len(streamed))
		}
	}
	// Out of order (a rebuilt or merged batch): still the sorted result.
	b.Hits[10], b.Hits[40] = b.Hits[40], b.Hits[10]
	if inOffsetOrder(b) {
		t.Fatal("swapped offsets not seen")
	}
	b.Hits[10], b.Hits[40] = b.Hits[40], b.Hits[10]
	b.Quarantine[3].Source.Offset = b.Quarantine[2].Source.Offset
	if inOffsetOrder(b) {
		t.Fatal("repeated quarantine offset not seen")
	}
}
