package logline

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"unicode/utf8"

	"github.com/connlog/connlog/store"
)

// AppendJSON appends h to dst as one JSON object, the form `connlog parse`
// prints, and returns the extended slice. Keys, in this order: time
// (RFC 3339 UTC with milliseconds, e.g. 2016-12-07T10:05:07.000Z),
// client_ip, client_text, client_port, peer_ip, server_addr, server_port,
// site, method, path, query, protocol, raw_request, tls_protocol, status,
// bytes, request_time (seconds), referer, user_agent, upstream, request_id,
// user, forwarded_for, operation, shipper_host, log_file, opt_out (only
// when true).
//
// A field the line did not carry ("-" or absent) is omitted. Zero is a
// value: status 000, 0 bytes and a request time of 0 are written when the
// line carries them (h.Has), and a referer or user agent sent empty is
// written as "" (a "-" one is omitted). Ports are omitted when 0, which no
// TCP port is. Bytes that are not valid UTF-8 are written as U+FFFD, as
// encoding/json does ([ParseStream] says so); "\xNN" escapes from the log
// are kept as text.
func AppendJSON(dst []byte, h *store.Hit) []byte {
	dst = append(dst, '{')
	first := true
	key := func(k string) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = append(dst, k...)
		dst = append(dst, '"', ':')
	}
	strField := func(k, v string) {
		if v != "" {
			key(k)
			dst = appendJSONString(dst, v)
		}
	}
	addrField := func(k string, a netip.Addr) {
		if a.IsValid() {
			key(k)
			dst = append(dst, '"')
			dst = a.AppendTo(dst)
			dst = append(dst, '"')
		}
	}
	uintField := func(k string, v uint64) {
		if v != 0 {
			key(k)
			dst = strconv.AppendUint(dst, v, 10)
		}
	}
	// hasField writes a value whose zero the line may carry.
	hasField := func(k string, v uint64, has store.Fields) {
		if v != 0 || h.Has&has != 0 {
			key(k)
			dst = strconv.AppendUint(dst, v, 10)
		}
	}
	hasString := func(k, v string, has store.Fields) {
		if v != "" || h.Has&has != 0 {
			key(k)
			dst = appendJSONString(dst, v)
		}
	}
	if !h.EventTime.IsZero() {
		key("time")
		dst = append(dst, '"')
		dst = h.EventTime.UTC().AppendFormat(dst, jsonTimeLayout)
		dst = append(dst, '"')
	}
	addrField("client_ip", h.ClientIP)
	strField("client_text", h.ClientText)
	uintField("client_port", uint64(h.ClientPort))
	addrField("peer_ip", h.PeerIP)
	addrField("server_addr", h.ServerAddr)
	uintField("server_port", uint64(h.ServerPort))
	strField("site", h.Site)
	strField("method", h.Method)
	strField("path", h.Path)
	strField("query", h.Query)
	strField("protocol", h.Protocol)
	strField("raw_request", h.RawRequest)
	strField("tls_protocol", h.TLSProtocol)
	hasField("status", uint64(h.Status), store.HasStatus)
	hasField("bytes", h.BytesSent, store.HasBytes)
	if h.RequestTime != 0 || h.Has&store.HasRequestTime != 0 {
		key("request_time")
		dst = strconv.AppendFloat(dst, h.RequestTime.Seconds(), 'f', -1, 64)
	}
	hasString("referer", h.Referer, store.HasReferer)
	hasString("user_agent", h.UserAgent, store.HasUserAgent)
	strField("upstream", h.Upstream)
	strField("request_id", h.RequestID)
	strField("user", h.User)
	strField("forwarded_for", h.ForwardedFor)
	if h.Operation != store.OpUnknown {
		strField("operation", h.Operation.String())
	}
	strField("shipper_host", h.ShipperHost)
	strField("log_file", h.LogFile)
	if h.OptOut {
		key("opt_out")
		dst = append(dst, "true"...)
	}
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string literal.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else if r == '\u2028' || r == '\u2029' {
			dst = append(dst, `\u202`...)
			dst = append(dst, hexDigits[r&0xf])
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

// ParseStream reads r line by line, parses each line with p (as a line of no topic in particular: its "*" format) and writes one
// JSON object per line to w: the hit as [AppendJSON] renders it, or
// {"error":"...","line":N} (N counts from 1) for a line p rejects. A line
// that is not valid UTF-8 gets one more key, "invalid_utf8", saying how its
// bytes were shown: `connlog serve` quarantines such a line with its bytes
// as they are. It is what
// `connlog parse` runs. Lines may be of any length. It returns the first
// read or write error, or nil at the end of r; a bad line is not an error.
func ParseStream(r io.Reader, w io.Writer, p *Parser) error {
	br := bufio.NewReaderSize(r, 64<<10)
	bw := bufio.NewWriterSize(w, 64<<10)
	var (
		h    store.Hit
		out  []byte
		long []byte
	)
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read line %d: %w", n, err)
		}
		if len(line) == 0 && errors.Is(err, io.EOF) {
			break
		}
		out = out[:0]
		if perr := p.Parse("", line, &h); perr != nil {
			out = append(out, `{"error":`...)
			out = appendJSONString(out, perr.Error())
			out = append(out, `,"line":`...)
			out = strconv.AppendInt(out, int64(n), 10)
			out = append(out, '}')
		} else {
			out = AppendJSON(out, &h)
			if !utf8.Valid(line) {
				out = append(out[:len(out)-1], `,"invalid_utf8":"bytes that are not UTF-8 are shown as U+FFFD; connlog serve quarantines this line with its bytes as they are"}`...)
			}
		}
		out = append(out, '\n')
		if _, werr := bw.Write(out); werr != nil {
			return fmt.Errorf("write line %d: %w", n, werr)
		}
		if errors.Is(err, io.EOF) {
			break
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("flush output: %w", err)
	}
	return nil
}

// jsonTimeLayout is RFC 3339 with milliseconds; times are UTC, so it ends in Z.
const jsonTimeLayout = "2006-01-02T15:04:05.000Z07:00"
