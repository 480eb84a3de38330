package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/connlog/connlog/api/auth"
	"github.com/connlog/connlog/store"
)

// Narrowest networks a search may cover; wider ones would scan whole tables.
const (
	minBits4 = 8
	minBits6 = 32
)

// maxSite bounds a site name (a DNS name is at most 253 characters).
const maxSite = 253

// accessParams are the query parameters /v1/access accepts.
var accessParams = paramSet{endpoint: "/v1/access", paged: true, filters: []string{
	"ip", "client", "from", "to", "site", "port", "path_prefix", "method", "status", "user_agent", "user",
}}

// Bounds of the text filters, in bytes.
const (
	maxPathPrefix = 2048
	maxUserAgent  = 512
	maxUser       = 256
	maxMethod     = 16
	maxClient     = 253 // a host name
)

// accessResponse is the body of a successful /v1/access answer.
type accessResponse struct {
	Rows []accessRow `json:"rows"`
	pageEnd
}

// accessRow is one access-log row as the API shows it. Empty strings, absent
// addresses and zero ports are left out; counts and the Kafka source never.
type accessRow struct {
	Time          string `json:"time"`
	ClientIP      string `json:"client_ip"`
	ClientText    string `json:"client_text,omitempty"`
	ClientPort    uint16 `json:"client_port,omitempty"`
	PeerIP        string `json:"peer_ip,omitempty"`
	ForwardedFor  string `json:"forwarded_for,omitempty"`
	ServerAddr    string `json:"server_addr,omitempty"`
	ServerPort    uint16 `json:"server_port,omitempty"`
	Site          string `json:"site,omitempty"`
	Method        string `json:"method,omitempty"`
	Path          string `json:"path,omitempty"`
	Query         string `json:"query,omitempty"`
	Protocol      string `json:"protocol,omitempty"`
	RawRequest    string `json:"raw_request,omitempty"`
	Status        uint16 `json:"status"`
	Bytes         uint64 `json:"bytes"`
	Referer       string `json:"referer,omitempty"`
	UserAgent     string `json:"user_agent,omitempty"`
	RequestTimeMS int64  `json:"request_time_ms"`
	Upstream      string `json:"upstream,omitempty"`
	RequestID     string `json:"request_id,omitempty"`
	User          string `json:"user,omitempty"`
	TLSProtocol   string `json:"tls_protocol,omitempty"`
	Topic         string `json:"topic"`
	Partition     int32  `json:"partition"`
	Offset        int64  `json:"offset"`
}

// timeFormat is RFC 3339 with milliseconds; times are written in UTC.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

func newAccessRow(h *store.Hit) accessRow {
	return accessRow{
		Time:          h.EventTime.UTC().Format(timeFormat),
		ClientIP:      addrString(h.ClientIP),
		ClientText:    h.ClientText,
		ClientPort:    h.ClientPort,
		PeerIP:        addrString(h.PeerIP),
		ForwardedFor:  h.ForwardedFor,
		ServerAddr:    addrString(h.ServerAddr),
		ServerPort:    h.ServerPort,
		Site:          h.Site,
		Method:        h.Method,
		Path:          h.Path,
		Query:         h.Query,
		Protocol:      h.Protocol,
		RawRequest:    h.RawRequest,
		Status:        h.Status,
		Bytes:         h.BytesSent,
		Referer:       h.Referer,
		UserAgent:     h.UserAgent,
		RequestTimeMS: h.RequestTime.Milliseconds(),
		Upstream:      h.Upstream,
		RequestID:     h.RequestID,
		User:          h.User,
		TLSProtocol:   h.TLSProtocol,
		Topic:         h.Source.Topic,
		Partition:     h.Source.Partition,
		Offset:        h.Source.Offset,
	}
}

// addrString writes a, IPv4 as a dotted quad even when stored mapped into
// IPv6; "" if a is absent.
func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.Unmap().String()
}

// access answers GET /v1/access: a page of rows as JSON, or, if the client
// accepts NDJSON or CSV, the whole result as a stream.
func (s *Server) access(r *http.Request, c *call) (any, error) {
	params := r.URL.Query()
	c.filters = accessParams.raw(params)
	format := streamFormat(r)
	q, err := s.parseAccess(params)
	if err != nil {
		return nil, err
	}
	f := map[string]any{
		"ip":          "",
		"client":      q.Client,
		"from":        q.From.Format(time.RFC3339Nano),
		"to":          q.To.Format(time.RFC3339Nano),
		"site":        q.Site,
		"path_prefix": q.PathPrefix,
		"method":      q.Method,
		"status":      params.Get("status"),
		"user_agent":  q.UserAgent,
		"user":        q.User,
	}
	if q.Network.IsValid() {
		f["ip"] = q.Network.String()
	}
	if q.Port != 0 {
		f["port"] = q.Port
	}
	pg, err := openPage[store.Cursor](s, c, params, "/v1/access", f, format)
	if err != nil {
		return nil, err
	}
	if err := searchSite(c.who, q.Site); err != nil {
		return nil, err
	}
	q.Limit, q.After, q.Sites = pg.limit, pg.after, c.who.Sites

	if format != "" {
		return s.accessStream(q, format), nil
	}
	q.Limit = pg.fetch()
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.QueryTimeout)
	defer cancel()
	hits, err := s.store.SearchAccess(ctx, q)
	if err != nil {
		s.logger.Warn("search access log", "err", err)
		return nil, storeError(r.Context(), err)
	}
	hits, end := cut(pg, hits, store.CursorOf)
	resp := accessResponse{Rows: make([]accessRow, 0, len(hits)), pageEnd: end}
	for i := range hits {
		resp.Rows = append(resp.Rows, newAccessRow(&hits[i]))
	}
	c.rows = resp.Count
	return resp, nil
}

// searchSite refuses a search of a site outside p's sites.
func searchSite(p *auth.Principal, site string) error {
	if site != "" && !p.SitesAllowed(site) {
		return &apiError{
			code:   CodeForbidden,
			msg:    "your token does not allow this site",
			reason: fmt.Sprintf("site %q outside the token's sites", site),
		}
	}
	return nil
}

// parseAccess checks the filters of /v1/access; limit and cursor are read
// by openPage.
func (s *Server) parseAccess(params url.Values) (store.AccessQuery, error) {
	var q store.AccessQuery
	if err := accessParams.check(params); err != nil {
		return q, err
	}
	var err error
	if client := params.Get("client"); client != "" || params.Has("client") {
		// A client that is not an IP address ("unix:", a host name).
		if params.Get("ip") != "" {
			return q, errorf(CodeBadRequest, "give ip or client, not both")
		}
		if q.Client, err = parseText("client", client, maxClient); err != nil {
			return q, err
		}
		if q.Client == "" {
			return q, errorf(CodeBadRequest, "client must not be empty")
		}
		if q.From, q.To, err = parseRange(params.Get("from"), params.Get("to"), s.cfg.MaxWindow); err != nil {
			return q, err
		}
	} else if q.Network, q.From, q.To, err = s.parseWindow(params, s.cfg.MaxWindow); err != nil {
		return q, err
	}
	if q.Site, err = parseSite(params.Get("site")); err != nil {
		return q, err
	}
	if q.Port, err = parsePort(params.Get("port")); err != nil {
		return q, err
	}
	if q.PathPrefix, err = parseText("path_prefix", params.Get("path_prefix"), maxPathPrefix); err != nil {
		return q, err
	}
	if q.Method, err = parseMethod(params.Get("method")); err != nil {
		return q, err
	}
	if q.StatusMin, q.StatusMax, err = parseStatus(params.Get("status")); err != nil {
		return q, err
	}
	if q.UserAgent, err = parseText("user_agent", params.Get("user_agent"), maxUserAgent); err != nil {
		return q, err
	}
	q.User, err = parseText("user", params.Get("user"), maxUser)
	return q, err
}

// parseWindow parses ip, from and to, the window being at most maxWindow.
func (s *Server) parseWindow(params url.Values, maxWindow time.Duration) (network netip.Prefix, from, to time.Time, err error) {
	if network, err = parseNetwork(params.Get("ip")); err != nil {
		return
	}
	from, to, err = parseRange(params.Get("from"), params.Get("to"), maxWindow)
	return
}

// parseRange parses a required time window of at most maxWindow.
func parseRange(fromV, toV string, maxWindow time.Duration) (from, to time.Time, err error) {
	if from, err = parseTime("from", fromV); err != nil {
		return
	}
	if to, err = parseTime("to", toV); err != nil {
		return
	}
	if !from.Before(to) {
		return from, to, errorf(CodeBadRequest, "from must be before to")
	}
	if w := to.Sub(from); w > maxWindow {
		return from, to, errorf(CodeWindowTooLarge, fmt.Sprintf("the time window (%s) exceeds the maximum of %s; split the search", w, maxWindow))
	}
	return from, to, nil
}

// parseSite checks an optional site name.
func parseSite(v string) (string, error) {
	if len(v) > maxSite || strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f || r == utf8.RuneError }) {
		return "", errorf(CodeBadRequest, "site must be a host name")
	}
	return v, nil
}

// parsePort parses an optional client port.
func parsePort(v string) (uint16, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil || n == 0 {
		return 0, errorf(CodeBadRequest, "port must be a number from 1 to 65535")
	}
	return uint16(n), nil
}

// parseText checks an optional free-text filter: valid UTF-8, printable,
// at most max bytes.
func parseText(name, v string, max int) (string, error) {
	if len(v) > max {
		return "", errorf(CodeBadRequest, fmt.Sprintf("%s must be at most %d bytes", name, max))
	}
	if !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return "", errorf(CodeBadRequest, name+" must be printable text")
	}
	return v, nil
}

// parseMethod checks an optional HTTP method: an upper-case token.
func parseMethod(v string) (string, error) {
	if len(v) > maxMethod || strings.ContainsFunc(v, func(r rune) bool { return r < 'A' || r > 'Z' }) {
		return "", errorf(CodeBadRequest, "method must be an HTTP method in upper case, e.g. POST")
	}
	return v, nil
}

// parseStatus parses an optional status: exact ("404") or a class ("4xx").
func parseStatus(v string) (lo, hi uint16, err error) {
	if v == "" {
		return 0, 0, nil
	}
	bad := errorf(CodeBadRequest, "status must be an HTTP status (404) or a class (4xx)")
	if len(v) == 3 && (v[1:] == "xx" || v[1:] == "XX") && v[0] >= '1' && v[0] <= '5' {
		c := uint16(v[0]-'0') * 100
		return c, c + 99, nil
	}
	n, perr := strconv.ParseUint(v, 10, 16)
	if perr != nil || n < 100 || n > 599 {
		return 0, 0, bad
	}
	return uint16(n), uint16(n), nil
}

// parseNetwork parses an address or a CIDR network. An address becomes a
// single-address prefix; IPv4-mapped IPv6 becomes IPv4.
func parseNetwork(v string) (netip.Prefix, error) {
	if v == "" {
		return netip.Prefix{}, errorf(CodeBadRequest, "ip is required: an address or a CIDR network")
	}
	var p netip.Prefix
	if strings.Contains(v, "/") {
		var err error
		if p, err = netip.ParsePrefix(v); err != nil {
			return p, errorf(CodeBadRequest, "ip must be an address or a CIDR network")
		}
	} else {
		a, err := netip.ParseAddr(v)
		if err != nil || a.Zone() != "" {
			return p, errorf(CodeBadRequest, "ip must be an address or a CIDR network")
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return p, errorf(CodeBadRequest, "an IPv4-mapped network must be at least a /96")
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	if p.Addr().Is4() && p.Bits() < minBits4 || p.Addr().Is6() && p.Bits() < minBits6 {
		return p, errorf(CodeBadRequest, fmt.Sprintf("the network is too wide: at least /%d for IPv4 and /%d for IPv6", minBits4, minBits6))
	}
	return p.Masked(), nil
}

// parseTime parses an RFC 3339 time and returns it in UTC.
func parseTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, errorf(CodeBadRequest, name+" is required: an RFC 3339 time, e.g. 2026-03-03T14:00:00Z")
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil && strings.Contains(v, " ") {
		// An unescaped '+' in a query string arrives as a space.
		t, err = time.Parse(time.RFC3339, strings.ReplaceAll(v, " ", "+"))
	}
	if err != nil {
		return time.Time{}, errorf(CodeBadRequest, name+" must be an RFC 3339 time, e.g. 2026-03-03T14:00:00Z")
	}
	return t.UTC(), nil
}

// storeError turns a store failure into the error the client sees; the
// detail goes to the audit row only.
func storeError(reqCtx context.Context, err error) error {
	switch {
	case errors.Is(err, store.ErrBadFilter):
		return &apiError{code: CodeBadRequest, msg: "the search cannot be run as asked", reason: err.Error()}
	case reqCtx.Err() != nil:
		return &apiError{code: CodeUnavailable, msg: "request canceled", reason: "client went away: " + err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return &apiError{code: CodeUnavailable, msg: "the search took too long; narrow the window or the network", reason: "store timeout: " + err.Error()}
	default:
		return &apiError{code: CodeUnavailable, msg: "the log store cannot answer now; try again later", reason: "store: " + err.Error()}
	}
}
