package logline

import (
	"bytes"
	"net/netip"
	"time"

	"github.com/connlog/connlog/store"
)

// field is a value a log line can carry, named after its nginx variable.
// The log_format compiler and the JSON reader both map their input to
// fields, so both formats share one way of filling a [store.Hit].
type field uint8

const (
	fIgnore field = iota
	fRemoteAddr
	fRealIPRemoteAddr
	fRemotePort
	fRealIPRemotePort
	fProxyProtocolAddr
	fProxyProtocolPort
	fXForwardedFor
	fXRealIP
	fServerAddr
	fServerPort
	fHost
	fServerName
	fTimeLocal
	fTimeISO8601
	fMsec
	fRequest
	fRequestMethod
	fRequestURI
	fURI
	fArgs
	fServerProtocol
	fStatus
	fBodyBytesSent
	fBytesSent
	fReferer
	fUserAgent
	fRemoteUser
	fRequestID
	fSSLProtocol
	fRequestTime
	fUpstreamAddr
	fSecGPC
	fDNT
	numFields
)

// fieldByName maps nginx variable names (without '$') to fields. Variables
// not listed are accepted in a log_format and ignored.
var fieldByName = map[string]field{
	"remote_addr":          fRemoteAddr,
	"realip_remote_addr":   fRealIPRemoteAddr,
	"remote_port":          fRemotePort,
	"realip_remote_port":   fRealIPRemotePort,
	"proxy_protocol_addr":  fProxyProtocolAddr,
	"proxy_protocol_port":  fProxyProtocolPort,
	"http_x_forwarded_for": fXForwardedFor,
	"http_x_real_ip":       fXRealIP,
	"server_addr":          fServerAddr,
	"server_port":          fServerPort,
	"host":                 fHost,
	"server_name":          fServerName,
	"time_local":           fTimeLocal,
	"time_iso8601":         fTimeISO8601,
	"msec":                 fMsec,
	"request":              fRequest,
	"request_method":       fRequestMethod,
	"request_uri":          fRequestURI,
	"uri":                  fURI,
	"document_uri":         fURI,
	"args":                 fArgs,
	"query_string":         fArgs,
	"server_protocol":      fServerProtocol,
	"status":               fStatus,
	"body_bytes_sent":      fBodyBytesSent,
	"bytes_sent":           fBytesSent,
	"http_referer":         fReferer,
	"http_user_agent":      fUserAgent,
	"remote_user":          fRemoteUser,
	"request_id":           fRequestID,
	"ssl_protocol":         fSSLProtocol,
	"request_time":         fRequestTime,
	"upstream_addr":        fUpstreamAddr,
	"http_sec_gpc":         fSecGPC,
	"http_dnt":             fDNT,
}

// fieldNames is the inverse of fieldByName (first name wins), for errors.
var fieldNames = func() [numFields]string {
	var n [numFields]string
	n[fIgnore] = "field"
	for name, f := range fieldByName {
		if n[f] == "" || name < n[f] {
			n[f] = name
		}
	}
	n[fURI] = "uri"
	n[fArgs] = "args"
	return n
}()

// lineState holds, while one line is parsed, what has no place of its own in
// a Hit or must be resolved once every field is known (which address is the
// client, which time wins). It lives on the caller's stack.
type lineState struct {
	remoteAddr, realIPAddr, proxyAddr, realIP netip.Addr
	remotePort, realIPPort, proxyPort         uint16
	hasTime                                   bool
	timePrec                                  uint8 // 1 time_local/iso8601, 2 msec
	method, uri, args                         []byte
	haveRequest                               bool
	serverName                                []byte
	bytesSent                                 uint64
	haveBodyBytes, haveBytes                  bool
	// clientText is $remote_addr (or $realip_remote_addr) when it is not an
	// IP address: "unix:" or a host name.
	clientText []byte
	// emptySent: "" in the line is a value sent empty, "-" an absent one
	// (nginx's default escaping). With escape=json and escape=none nginx
	// writes "" for both, so "" means absent.
	emptySent bool
	// dashIsValue: "-" is a value, not nginx's mark for an empty one
	// (escape=none writes nothing for an empty value).
	dashIsValue bool
}

// empty reports whether an nginx value means "not set": nginx writes "-"
// for an empty variable in the default escaping, "" with escape=json.
func empty(b []byte) bool {
	return len(b) == 0 || (len(b) == 1 && b[0] == '-')
}

// setField stores one value. v aliases the line; it is not modified.
func setField(f field, v []byte, h *store.Hit, st *lineState) error {
	if f == fIgnore {
		return nil
	}
	if len(v) == 0 || (!st.dashIsValue && empty(v)) {
		if len(v) == 0 && st.emptySent {
			switch f {
			case fReferer:
				h.Has |= store.HasReferer
			case fUserAgent:
				h.Has |= store.HasUserAgent
			}
		}
		return nil
	}
	switch f {
	case fRemoteAddr, fRealIPRemoteAddr, fProxyProtocolAddr, fXRealIP, fServerAddr:
		a, ok := parseAddr(v)
		if !ok {
			switch {
			case f == fXRealIP:
				return nil // a header anyone can send; garbage is ignored
			case f == fServerAddr && bytes.HasPrefix(v, []byte("unix:")):
				return nil // a unix-socket listener has no address
			case (f == fRemoteAddr || f == fRealIPRemoteAddr) && string(v) == "unix:":
				// nginx's unix-socket listener; nginx never writes a host
				// name here (Apache's %h does, read by ParseCombined).
				st.clientText = v
				return nil
			}
			return perr(fieldNames[f], 0, "not an IP address")
		}
		a = a.Unmap()
		switch f {
		case fRemoteAddr:
			st.remoteAddr = a
		case fRealIPRemoteAddr:
			st.realIPAddr = a
		case fProxyProtocolAddr:
			st.proxyAddr = a
		case fXRealIP:
			st.realIP = a
		case fServerAddr:
			h.ServerAddr = a
		}
	case fRemotePort, fRealIPRemotePort, fProxyProtocolPort, fServerPort:
		n, ok := parseUint(v)
		if !ok || n > 65535 {
			return perr(fieldNames[f], 0, "expected a port number")
		}
		switch f {
		case fRemotePort:
			st.remotePort = uint16(n)
		case fRealIPRemotePort:
			st.realIPPort = uint16(n)
		case fProxyProtocolPort:
			st.proxyPort = uint16(n)
		case fServerPort:
			h.ServerPort = uint16(n)
		}
	case fXForwardedFor:
		h.ForwardedFor = str(v)
	case fHost:
		h.Site = str(v)
	case fServerName:
		st.serverName = v
	case fTimeLocal, fTimeISO8601, fMsec:
		var (
			t      time.Time
			reason string
			prec   uint8 = 1
		)
		switch f {
		case fTimeLocal:
			if len(v) != timeLocalLen {
				reason = "expected dd/Mon/yyyy:HH:MM:SS +zzzz"
			} else {
				t, _, reason = parseTimeLocal(v)
			}
		case fTimeISO8601:
			t, reason = parseISO8601(v)
		case fMsec:
			t, reason = parseMsec(v)
			prec = 2
		}
		if reason != "" {
			return perr(fieldNames[f], 0, reason)
		}
		if prec >= st.timePrec {
			h.EventTime, st.timePrec = t, prec
		}
		st.hasTime = true
	case fRequest:
		splitRequest(v, h)
		if len(v) == 1 && v[0] == '-' && st.dashIsValue {
			h.RawRequest = "-" // sent as such: not HTTP
		}
		st.haveRequest = true
	case fRequestMethod:
		st.method = v
	case fRequestURI:
		st.uri = v
	case fURI:
		if st.uri == nil {
			st.uri = v
		}
	case fArgs:
		st.args = v
	case fServerProtocol:
		h.Protocol = str(v)
	case fStatus:
		// "000": no response was sent; "009": an HTTP/0.9 request.
		n, ok := parseUint(v)
		if !ok || n > 999 || (n < 100 && len(v) != 3) {
			return perr("status", 0, "expected a 3-digit status")
		}
		h.Status = uint16(n)
		h.Has |= store.HasStatus
	case fBodyBytesSent, fBytesSent:
		n, ok := parseUint(v)
		if !ok {
			return perr(fieldNames[f], 0, "expected a decimal number")
		}
		if f == fBodyBytesSent {
			h.BytesSent, st.haveBodyBytes = n, true
		} else {
			st.bytesSent, st.haveBytes = n, true
		}
	case fReferer:
		h.Referer = str(v)
		h.Has |= store.HasReferer
	case fUserAgent:
		h.UserAgent = str(v)
		h.Has |= store.HasUserAgent
	case fRemoteUser:
		h.User = str(v)
	case fRequestID:
		h.RequestID = str(v)
	case fSSLProtocol:
		h.TLSProtocol = str(v)
	case fRequestTime:
		d, ok := parseSeconds(v)
		if !ok {
			return perr("request_time", 0, "expected seconds with a decimal fraction")
		}
		h.RequestTime = d
		h.Has |= store.HasRequestTime
	case fUpstreamAddr:
		h.Upstream = str(v)
	case fSecGPC, fDNT:
		if len(v) == 1 && v[0] == '1' {
			h.OptOut = true
		}
	}
	return nil
}

// finishFields resolves what depends on several fields: the request parts,
// the site fallback, the byte count, and the TCP peer. The client itself is
// resolved later by the trusted-proxy rules.
func finishFields(h *store.Hit, st *lineState) error {
	if !st.hasTime {
		return perr("time", 0, "no time in the line ($time_local, $time_iso8601 or $msec)")
	}
	switch {
	case st.realIPAddr.IsValid():
		// nginx's realip module rewrote $remote_addr; the TCP peer is
		// $realip_remote_addr, and $remote_addr is what realip believed.
		h.PeerIP = st.realIPAddr
		st.remotePort, st.realIPPort = st.realIPPort, st.remotePort
		if st.remoteAddr.IsValid() && st.remoteAddr != st.realIPAddr && !st.realIP.IsValid() {
			st.realIP = st.remoteAddr
		}
	case st.remoteAddr.IsValid():
		h.PeerIP = st.remoteAddr
	case len(st.clientText) > 0:
		h.ClientText = str(st.clientText)
	default:
		return perr("remote_addr", 0, "no client address in the line")
	}
	h.ClientIP = h.PeerIP
	h.ClientPort = st.remotePort
	// A request that is not HTTP has no protocol: nginx leaves
	// $server_protocol empty for it. A line that names one anyway
	// contradicts itself, and which half is true cannot be told.
	if h.RawRequest != "" && h.Protocol != "" {
		return perr("server_protocol", 0, "a protocol for a request that is not HTTP")
	}
	if !st.haveRequest {
		h.Method = str(st.method)
		uri := st.uri
		if q := bytes.IndexByte(uri, '?'); q >= 0 {
			h.Query = str(uri[q+1:])
			uri = uri[:q]
		} else if len(st.args) > 0 {
			h.Query = str(st.args)
		}
		h.Path = str(uri)
	}
	if h.Site == "" && len(st.serverName) > 0 {
		h.Site = str(st.serverName)
	}
	if !st.haveBodyBytes {
		h.BytesSent = st.bytesSent
	}
	if st.haveBodyBytes || st.haveBytes {
		h.Has |= store.HasBytes
	}
	return nil
}

// parseISO8601 parses nginx's $time_iso8601, "2006-01-02T15:04:05+07:00",
// also with a fraction of a second and "Z".
func parseISO8601(b []byte) (time.Time, string) {
	const bad = "expected yyyy-mm-ddTHH:MM:SS+hh:mm"
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != ' ') || b[13] != ':' || b[16] != ':' {
		return time.Time{}, bad
	}
	year, ok1 := num(b[0:4])
	month, ok2 := num(b[5:7])
	day, ok3 := num(b[8:10])
	hour, ok4 := num(b[11:13])
	minute, ok5 := num(b[14:16])
	sec, ok6 := num(b[17:19])
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 {
		return time.Time{}, bad
	}
	i := 19
	var nanos int64
	if b[i] == '.' {
		i++
		scale := int64(100_000_000)
		j := i
		for ; j < len(b) && b[j] >= '0' && b[j] <= '9'; j++ {
			nanos += int64(b[j]-'0') * scale
			scale /= 10
		}
		if j == i {
			return time.Time{}, bad
		}
		i = j
	}
	var zone int64
	switch {
	case i == len(b)-1 && b[i] == 'Z':
	case i == len(b)-6 && (b[i] == '+' || b[i] == '-') && b[i+3] == ':':
		zh, ok1 := num(b[i+1 : i+3])
		zm, ok2 := num(b[i+4 : i+6])
		if !ok1 || !ok2 || zh > 23 || zm > 59 {
			return time.Time{}, "UTC offset out of range"
		}
		zone = int64(zh*3600 + zm*60)
		if b[i] == '-' {
			zone = -zone
		}
	default:
		return time.Time{}, bad
	}
	switch {
	case month < 1 || month > 12:
		return time.Time{}, "month out of range"
	case year < 1970 || year > 2299:
		return time.Time{}, "year out of range 1970-2299"
	case day < 1 || day > daysIn(month, year):
		return time.Time{}, "day out of range for the month"
	case hour > 23 || minute > 59 || sec > 59:
		return time.Time{}, "time of day out of range"
	}
	secs := daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec) - zone
	return time.Unix(secs, nanos).UTC(), ""
}

// maxMsec is 2299-12-31T23:59:59Z, the end of ClickHouse's DateTime64.
const maxMsec = 10413791999

// parseMsec parses nginx's $msec, seconds since the epoch with a
// millisecond fraction ("1700000000.123").
func parseMsec(b []byte) (time.Time, string) {
	dot := bytes.IndexByte(b, '.')
	ip, fp := b, []byte(nil)
	if dot >= 0 {
		ip, fp = b[:dot], b[dot+1:]
	}
	secs, ok := parseUint(ip)
	if !ok || (dot >= 0 && len(fp) == 0) || len(fp) > 9 {
		return time.Time{}, "expected seconds since the epoch with a fraction (1700000000.123)"
	}
	var nanos int64
	scale := int64(100_000_000)
	for _, c := range fp {
		if c < '0' || c > '9' {
			return time.Time{}, "expected seconds since the epoch with a fraction (1700000000.123)"
		}
		nanos += int64(c-'0') * scale
		scale /= 10
	}
	if secs > maxMsec {
		return time.Time{}, "year out of range 1970-2299"
	}
	return time.Unix(int64(secs), nanos).UTC(), ""
}

// parseSeconds parses "0.123" (nginx's $request_time) into a Duration.
func parseSeconds(b []byte) (time.Duration, bool) {
	dot := bytes.IndexByte(b, '.')
	ip, fp := b, []byte(nil)
	if dot >= 0 {
		ip, fp = b[:dot], b[dot+1:]
	}
	secs, ok := parseUint(ip)
	if !ok || len(fp) > 9 || secs > 1<<32 {
		return 0, false
	}
	d := time.Duration(secs) * time.Second
	scale := time.Duration(100_000_000)
	for _, c := range fp {
		if c < '0' || c > '9' {
			return 0, false
		}
		d += time.Duration(c-'0') * scale
		scale /= 10
	}
	return d, true
}
