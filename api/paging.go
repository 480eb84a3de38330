package api

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/audit"
)

// Paging. Every paged search (/v1/access, /v1/connections, /v1/audit,
// /v1/audit/subject) works the same way, written once here:
//
//  1. openPage reads the limit and cursor parameters, opens the cursor
//     against the search's canonical filters and records those filters in
//     the audit row;
//  2. the handler asks the store for page.fetch() rows: one more than the
//     limit tells whether more matched;
//  3. cut keeps the first limit rows and, when more matched, seals the
//     position of the last one into the next cursor (the pageEnd of the
//     answer: count, truncated, next_cursor).
//
// A cursor is a store's keyset position (a [position]) sealed with an HMAC
// under a per-process key to the endpoint and filters of its search: it
// cannot be forged, altered or used with other filters, and dies with the
// process.

// position is what a cursor holds: the keyset position of a row in the
// order of a store search.
type position interface {
	store.Cursor | audit.Cursor
}

// page is the paging of one search request.
type page[P position] struct {
	// limit is the number of rows asked for; in an export, 0 means up to
	// the export bound.
	limit int
	// after is the position the cursor named, nil on the first page.
	after *P
	// scope is what the cursors of this search are sealed to: the endpoint
	// and its canonical filters.
	scope string
}

// fetch is the number of rows to ask the store for: one more than the
// limit, which tells whether the answer is truncated.
func (p page[P]) fetch() int { return p.limit + 1 }

// pageEnd closes the body of a page: how many rows it has and, if more
// matched than the limit, the cursor that continues the search.
type pageEnd struct {
	Count     int  `json:"count"`
	Truncated bool `json:"truncated"`
	// NextCursor, set when truncated, continues the search: pass it as
	// the cursor parameter with the same filters.
	NextCursor string `json:"next_cursor,omitempty"`
}

// openPage reads the limit and cursor parameters of a search of endpoint
// whose canonical filters are f. It opens the cursor against them and
// records in the audit row (c.filters) the filters with the cursor, the
// export format (format, "" for a page) and the limit. An export's limit is
// optional and may go up to the export bound (Config.Search.MaxExportRows);
// a page's defaults to Config.DefaultLimit and goes up to Config.MaxLimit.
func openPage[P position](s *Server, c *call, params url.Values, endpoint string, f map[string]any, format string) (page[P], error) {
	var p page[P]
	var err error
	if p.limit, err = s.parseLimit(params.Get("limit"), format != ""); err != nil {
		return p, err
	}
	p.scope = endpoint + canonical(f)
	if v := params.Get("cursor"); v != "" {
		after, err := openCursor[P](p.scope, v)
		if err != nil {
			return p, err
		}
		p.after = &after
		f["cursor"] = v
	}
	if format != "" {
		f["export"] = format
	}
	if p.limit != 0 || format == "" {
		f["limit"] = p.limit
	}
	c.filters = canonical(f)
	return p, nil
}

// parseLimit parses the row limit of a page (default DefaultLimit, at most
// MaxLimit) or of an export (default 0: the export bound, at most it).
func (s *Server) parseLimit(v string, export bool) (int, error) {
	top, def := s.cfg.MaxLimit, s.cfg.DefaultLimit
	if export {
		top, def = s.cfg.Search.MaxExportRows, 0
	}
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > top {
		return 0, errorf(CodeBadRequest, fmt.Sprintf("limit must be a number from 1 to %d", top))
	}
	return n, nil
}

// cut keeps the rows of the page out of rows, fetched with p.fetch(): the
// first p.limit, and when there were more, the cursor to the next page,
// sealed from the position (at) of the last row kept.
func cut[T any, P position](p page[P], rows []T, at func(*T) P) ([]T, pageEnd) {
	var end pageEnd
	if len(rows) > p.limit {
		rows, end.Truncated = rows[:p.limit], true
		end.NextCursor = sealCursor(p.scope, at(&rows[p.limit-1]))
	}
	end.Count = len(rows)
	return rows, end
}

// cursorKey authenticates cursors. It is drawn at start-up: cursors are
// valid for the life of the process only, and cannot be forged or altered.
var cursorKey = func() []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic("api: no randomness for the cursor key: " + err.Error())
	}
	return k
}()

// cursorMAC is the length of a cursor's truncated HMAC-SHA256.
const cursorMAC = 16

var errBadCursor = errorf(CodeBadRequest, "the cursor is invalid, expired (the server restarted) or from another search; start again without it")

// sealCursor encodes pos as an opaque cursor bound to scope (the endpoint
// and its filters): base64url(payload || HMAC(scope, payload)).
func sealCursor[P position](scope string, pos P) string {
	payload := encodePosition(pos)
	return base64.RawURLEncoding.EncodeToString(append(payload, cursorSum(scope, payload)...))
}

// openCursor checks a cursor against scope and returns its position.
func openCursor[P position](scope, v string) (P, error) {
	var pos P
	if len(v) > 1024 {
		return pos, errBadCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(b) < cursorMAC {
		return pos, errBadCursor
	}
	payload, mac := b[:len(b)-cursorMAC], b[len(b)-cursorMAC:]
	if !hmac.Equal(mac, cursorSum(scope, payload)) {
		return pos, errBadCursor
	}
	if !decodePosition(payload, &pos) {
		return pos, errBadCursor
	}
	return pos, nil
}

// cursorSum is the HMAC-SHA256 of payload bound to scope under cursorKey,
// truncated to cursorMAC bytes.
func cursorSum(scope string, payload []byte) []byte {
	m := hmac.New(sha256.New, cursorKey)
	m.Write([]byte(scope))
	m.Write([]byte{0})
	m.Write(payload)
	return m.Sum(nil)[:cursorMAC]
}

// encodePosition writes a position as bytes. A search position
// (store.Cursor): 16 bytes of address, 8 of Unix milliseconds, 4 of
// partition, 8 of offset, then the topic. An audit position
// (audit.Cursor): 8 bytes of Unix milliseconds and 8 of hash.
func encodePosition[P position](pos P) []byte {
	switch c := any(pos).(type) {
	case store.Cursor:
		b := make([]byte, 0, 36+len(c.Topic))
		a := c.ClientIP.As16()
		b = append(b, a[:]...)
		b = binary.BigEndian.AppendUint64(b, uint64(c.Time.UnixMilli()))
		b = binary.BigEndian.AppendUint32(b, uint32(c.Partition))
		b = binary.BigEndian.AppendUint64(b, uint64(c.Offset))
		return append(b, c.Topic...)
	case audit.Cursor:
		b := binary.BigEndian.AppendUint64(nil, uint64(c.Time.UnixMilli()))
		return binary.BigEndian.AppendUint64(b, c.Hash)
	}
	panic("api: no encoding for this cursor position")
}

// decodePosition reads what encodePosition wrote into pos; false if b is
// not such a position.
func decodePosition[P position](b []byte, pos *P) bool {
	switch c := any(pos).(type) {
	case *store.Cursor:
		if len(b) < 36 {
			return false
		}
		*c = store.Cursor{
			ClientIP:  netip.AddrFrom16([16]byte(b[:16])).Unmap(),
			Time:      time.UnixMilli(int64(binary.BigEndian.Uint64(b[16:24]))).UTC(),
			Partition: int32(binary.BigEndian.Uint32(b[24:28])),
			Offset:    int64(binary.BigEndian.Uint64(b[28:36])),
			Topic:     string(b[36:]),
		}
		return true
	case *audit.Cursor:
		if len(b) != 16 {
			return false
		}
		*c = audit.Cursor{
			Time: time.UnixMilli(int64(binary.BigEndian.Uint64(b[:8]))).UTC(),
			Hash: binary.BigEndian.Uint64(b[8:]),
		}
		return true
	}
	return false
}
