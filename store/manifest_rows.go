package store

import "time"

// The row encodings of hash version 2 for the two tables every line is
// stored in, written out column by column for the signing side of a write.
//
// The column lists in tables.go are the definition: newHashTable makes an
// encoder of any list, and verify reads rows back by it. That encoder
// calls one function per column and row, about 60 calls per line for the
// access log and its connection record, which made building a batch's
// manifests a tenth of ingest's CPU; these two write the same bytes in
// straight-line code. TestRowEncodingsMatchTheColumnLists and
// FuzzRowEncodings hold them to the lists' encoders on rows that differ in
// every field, so a column added to a list (which needs a new hash version
// anyway) fails the tests until it is added here too.

// encodeAccessV2 is accessTable.encode: the access log row of h under hash
// version 2, appended to arena.
func encodeAccessV2(arena *encoder, h *Hit) encodedRow {
	ms := h.EventTime.UnixMilli()
	r := encodedRow{offset: h.Source.Offset, day: dayOf(time.UnixMilli(ms)), site: h.Site}
	start := len(arena.b)
	arena.i64(ms) // event_time
	arena.ip(addr16(h.ClientIP))
	arena.u64(uint64(h.ClientPort))
	arena.ip(addr16(h.PeerIP))
	arena.ip(addr16(h.ServerAddr))
	arena.u64(uint64(h.ServerPort))
	arena.str(h.Site)
	arena.str(h.Method)
	arena.str(h.Path)
	arena.str(h.Protocol)
	arena.u64(uint64(h.Status))
	arena.u64(h.BytesSent)
	arena.u64(uint64(h.RequestTime / time.Microsecond)) // request_time_us
	arena.str(h.Upstream)
	arena.str(h.RequestID)
	arena.str(h.User)
	arena.str(h.TLSProtocol)
	arena.str(h.Source.Topic)
	arena.i64(int64(h.Source.Partition))
	arena.i64(h.Source.Offset)
	arena.str(hitOperation(h).String())
	arena.flag(h.OptOut)
	arena.str(h.ShipperHost)
	arena.str(h.LogFile)
	arena.str(h.ClientText)
	arena.str(h.RawRequest)
	arena.flag(h.RefererSent())
	arena.flag(h.UserAgentSent())
	mid := len(arena.b)
	// the detail columns, in list order
	arena.str(h.ForwardedFor)
	arena.str(h.Query)
	arena.str(h.Referer)
	arena.str(h.UserAgent)
	end := len(arena.b)
	r.data = arena.b[start:mid:mid]
	r.detail = arena.b[mid:end:end]
	return r
}

// encodeConnectionV2 is connectionTable.encode: the connection record c
// under hash version 2 (the same as version 1), appended to arena.
func encodeConnectionV2(arena *encoder, c *ConnectionRecord) encodedRow {
	ms := c.EventTime.UnixMilli()
	r := encodedRow{offset: c.Source.Offset, day: dayOf(time.UnixMilli(ms)), site: c.Site}
	start := len(arena.b)
	arena.i64(ms) // event_time
	arena.ip(addr16(c.ClientIP))
	arena.u64(uint64(c.ClientPort))
	arena.ip(addr16(c.ServerAddr))
	arena.u64(uint64(c.ServerPort))
	arena.str(c.Site)
	arena.str(c.Protocol)
	arena.str(c.TLSProtocol)
	arena.str(c.Operation.String())
	arena.str(c.Path)
	arena.str(c.User)
	arena.u64(uint64(c.Status))
	arena.str(c.Source.Topic)
	arena.i64(int64(c.Source.Partition))
	arena.i64(c.Source.Offset)
	end := len(arena.b)
	r.data = arena.b[start:end:end]
	return r
}
