package api

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/connlog/connlog/internal/textcut"
	"github.com/connlog/connlog/store"
)

// Defaults of GET /v1/ip/{ip}.
const (
	// summaryWindow is the window when none is given: the last 7 days.
	summaryWindow = 7 * 24 * time.Hour
	summaryTop    = 10
	maxSummaryTop = 100
)

// ipParams are the query parameters /v1/ip/{ip} accepts.
var ipParams = paramSet{endpoint: "/v1/ip/{ip}", filters: []string{"from", "to", "site", "top"}}

// ipResponse is the body of GET /v1/ip/{ip}.
type ipResponse struct {
	IP   string `json:"ip"`
	From string `json:"from"`
	To   string `json:"to"`
	// Requests is 0 when the address was not seen; first_seen and
	// last_seen are then absent.
	Requests    uint64       `json:"requests"`
	FirstSeen   string       `json:"first_seen,omitempty"`
	LastSeen    string       `json:"last_seen,omitempty"`
	Bytes       uint64       `json:"bytes"`
	ClientPorts uint64       `json:"distinct_client_ports"`
	Paths       uint64       `json:"distinct_paths"`
	Sites       []valueCount `json:"sites"`
	ServerPorts []valueCount `json:"server_ports"`
	Methods     []valueCount `json:"methods"`
	Statuses    []valueCount `json:"statuses"`
	UserAgents  []valueCount `json:"user_agents"`
	// SitesLimited reports that the counts cover only the token's sites.
	SitesLimited bool `json:"sites_limited,omitempty"`
}

type valueCount struct {
	Value string `json:"value"`
	Count uint64 `json:"count"`
}

func valueCounts(vs []store.ValueCount) []valueCount {
	out := make([]valueCount, len(vs))
	for i, v := range vs {
		out[i] = valueCount{Value: v.Value, Count: v.Count}
	}
	return out
}

// ipSummary answers GET /v1/ip/{ip} (role analyst): what one address did
// over a window (default: the last 7 days), for the analyst's first look.
func (s *Server) ipSummary(r *http.Request, c *call) (any, error) {
	params := r.URL.Query()
	raw := r.PathValue("ip")
	m := map[string]any{"ip": textcut.Runes(raw, 100)}
	for _, n := range ipParams.filters {
		if v := params.Get(n); v != "" {
			m[n] = textcut.Runes(v, 100)
		}
	}
	c.filters = canonical(m)
	if err := ipParams.check(params); err != nil {
		return nil, err
	}
	a, err := netip.ParseAddr(raw)
	if err != nil || a.Zone() != "" {
		return nil, errorf(CodeBadRequest, "the path must end with one IP address, e.g. /v1/ip/203.0.113.7")
	}
	a = a.Unmap()
	q := store.AccessQuery{Network: netip.PrefixFrom(a, a.BitLen()), Limit: summaryTop}
	if params.Get("from") == "" && params.Get("to") == "" {
		q.To = s.now().UTC().Truncate(time.Millisecond)
		q.From = q.To.Add(-min(summaryWindow, s.cfg.MaxWindow))
	} else if q.From, q.To, err = parseRange(params.Get("from"), params.Get("to"), s.cfg.MaxWindow); err != nil {
		return nil, err
	}
	if q.Site, err = parseSite(params.Get("site")); err != nil {
		return nil, err
	}
	if v := params.Get("top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxSummaryTop {
			return nil, errorf(CodeBadRequest, fmt.Sprintf("top must be a number from 1 to %d", maxSummaryTop))
		}
		q.Limit = n
	}
	c.filters = canonical(map[string]any{
		"ip":   q.Network.String(),
		"from": q.From.Format(time.RFC3339Nano),
		"to":   q.To.Format(time.RFC3339Nano),
		"site": q.Site,
		"top":  q.Limit,
	})
	if q.Site != "" && !c.who.SitesAllowed(q.Site) {
		return nil, &apiError{code: CodeForbidden, msg: "your token does not allow this site", reason: fmt.Sprintf("site %q outside the token's sites", q.Site)}
	}
	q.Sites = c.who.Sites
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.QueryTimeout)
	defer cancel()
	sum, err := s.store.SummarizeIP(ctx, q)
	if err != nil {
		s.logger.Warn("summarise address", "err", err)
		return nil, storeError(r.Context(), err)
	}
	resp := ipResponse{
		IP:           a.String(),
		From:         q.From.Format(timeFormat),
		To:           q.To.Format(timeFormat),
		Requests:     sum.Requests,
		Bytes:        sum.Bytes,
		ClientPorts:  sum.ClientPorts,
		Paths:        sum.Paths,
		Sites:        valueCounts(sum.Sites),
		ServerPorts:  valueCounts(sum.ServerPorts),
		Methods:      valueCounts(sum.Methods),
		Statuses:     valueCounts(sum.Statuses),
		UserAgents:   valueCounts(sum.UserAgents),
		SitesLimited: len(q.Sites) > 0,
	}
	if sum.Requests > 0 {
		resp.FirstSeen = sum.FirstSeen.Format(timeFormat)
		resp.LastSeen = sum.LastSeen.Format(timeFormat)
	}
	c.rows = int(sum.Requests)
	return resp, nil
}
