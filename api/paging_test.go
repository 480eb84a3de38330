package api

import (
	"net/netip"
	"testing"
	"time"

	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/audit"
)

// TestCursorRoundTrip: each kind of position survives sealing, and a cursor
// opens only for its own scope and kind.
func TestCursorRoundTrip(t *testing.T) {
	at := time.Date(2026, 3, 3, 14, 0, 0, 123e6, time.UTC)
	search := store.Cursor{ClientIP: netip.MustParseAddr("203.0.113.7"), Time: at, Partition: 3, Offset: 42, Topic: "nginx"}
	v := sealCursor("/v1/access{}", search)
	if got, err := openCursor[store.Cursor]("/v1/access{}", v); err != nil || got != search {
		t.Errorf("search position: got %+v, %v; want %+v", got, err, search)
	}
	if _, err := openCursor[store.Cursor]("/v1/access{\"site\":\"x\"}", v); err == nil {
		t.Error("a cursor opened with other filters")
	}
	trail := audit.Cursor{Time: at, Hash: 1<<63 + 5}
	v = sealCursor("/v1/audit{}", trail)
	if got, err := openCursor[audit.Cursor]("/v1/audit{}", v); err != nil || got != trail {
		t.Errorf("audit position: got %+v, %v; want %+v", got, err, trail)
	}
	if _, err := openCursor[store.Cursor]("/v1/audit{}", v); err == nil {
		t.Error("an audit cursor opened as a search position")
	}
	// The sealed cursor with a character in its middle changed, to one it
	// is not (the seal is random; the last character was changed to "A"
	// before, which it already was one time in 64, and whose low bits are
	// padding).
	mid := len(v) / 2
	other := "A"
	if v[mid] == 'A' {
		other = "B"
	}
	for _, bad := range []string{"", "!!", "AAAA", v[:mid] + other + v[mid+1:]} {
		if _, err := openCursor[audit.Cursor]("/v1/audit{}", bad); err == nil {
			t.Errorf("cursor %q opened", bad)
		}
	}
}

// TestCut: a page keeps limit rows and seals the last one's position only
// when more matched.
func TestCut(t *testing.T) {
	p := page[audit.Cursor]{limit: 2, scope: "/v1/audit{}"}
	pos := func(n *int) audit.Cursor { return audit.Cursor{Hash: uint64(*n)} }
	rows, end := cut(p, []int{1, 2}, pos)
	if len(rows) != 2 || end.Truncated || end.NextCursor != "" || end.Count != 2 {
		t.Errorf("exact page: %v %+v", rows, end)
	}
	rows, end = cut(p, []int{1, 2, 3}, pos)
	if len(rows) != 2 || !end.Truncated || end.Count != 2 {
		t.Fatalf("truncated page: %v %+v", rows, end)
	}
	if got, err := openCursor[audit.Cursor](p.scope, end.NextCursor); err != nil || got.Hash != 2 {
		t.Errorf("next cursor: %+v, %v; want the last kept row's position", got, err)
	}
}
