package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/connlog/connlog/store"
)

// DefaultStatsMinVisitors is the small-cell threshold k of the audience
// statistics when Config.StatsMinVisitors is not set: cells with fewer
// distinct visitors are merged into "(other)".
const DefaultStatsMinVisitors = 5

// maxStatsWindow bounds the time window of a statistics request: the daily
// statistics are kept 25 months.
const maxStatsWindow = 26 * 31 * 24 * time.Hour

// maxHourlyWindow bounds an hourly request, which returns one bucket per
// hour and key.
const maxHourlyWindow = 31 * 24 * time.Hour

// AudienceStore is what GET /v1/stats/audience needs from storage;
// *store.Store satisfies it. A [Store] that does not implement it answers
// statistics requests with 503.
type AudienceStore interface {
	// AudienceStats returns the cells of q, suppression applied.
	AudienceStats(ctx context.Context, q store.AudienceQuery) ([]store.AudienceCell, error)
}

// statsParams are the query parameters /v1/stats/audience accepts.
var statsParams = paramSet{endpoint: "/v1/stats/audience", filters: []string{"site", "from", "to", "by", "granularity"}}

// statsDimensions are the values of by, in the order of the documentation.
var statsDimensions = []string{"path", "country", "region", "city", "browser", "os", "device", "referrer", "status", "site"}

// statsResponse is the body of a successful /v1/stats/audience answer.
type statsResponse struct {
	Site        string    `json:"site"`
	By          string    `json:"by"`
	Granularity string    `json:"granularity"`
	MinVisitors int       `json:"min_visitors"`
	Rows        []statRow `json:"rows"`
	Count       int       `json:"count"`
	Truncated   bool      `json:"truncated"`
}

// statRow is one cell: in the bucket starting at Bucket, the hits and
// distinct visitors whose dimension had the value Key. Cells with fewer
// than min_visitors visitors are merged into the key "(other)".
type statRow struct {
	Bucket   string `json:"bucket"`
	Key      string `json:"key"`
	Hits     uint64 `json:"hits"`
	Visitors uint64 `json:"visitors"`
}

// minVisitors is the configured small-cell threshold.
func (s *Server) minVisitors() int {
	if s.cfg.StatsMinVisitors > 0 {
		return s.cfg.StatsMinVisitors
	}
	return DefaultStatsMinVisitors
}

// audience answers GET /v1/stats/audience.
func (s *Server) audience(r *http.Request, c *call) (any, error) {
	params := r.URL.Query()
	c.filters = statsParams.raw(params)
	q, err := s.parseAudience(params)
	if err != nil {
		return nil, err
	}
	c.filters = canonical(map[string]any{
		"site":         q.Site,
		"from":         q.From.Format(time.RFC3339Nano),
		"to":           q.To.Format(time.RFC3339Nano),
		"by":           q.By,
		"granularity":  q.Granularity,
		"min_visitors": q.MinVisitors,
	})
	if !c.who.SitesAllowed(q.Site) {
		return nil, &apiError{
			code:   CodeForbidden,
			msg:    "your token does not allow this site",
			reason: fmt.Sprintf("site %q outside the token's sites", q.Site),
		}
	}
	as, ok := s.store.(AudienceStore)
	if !ok {
		return nil, &apiError{code: CodeUnavailable, msg: "audience statistics are not available", reason: "the store does not serve statistics"}
	}
	limit := s.cfg.MaxLimit
	q.Limit = limit + 1 // one more row tells whether the answer is truncated
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.QueryTimeout)
	defer cancel()
	cells, err := as.AudienceStats(ctx, q)
	if err != nil {
		s.logger.Warn("read audience statistics", "err", err)
		return nil, storeError(r.Context(), err)
	}
	resp := statsResponse{
		Site: q.Site, By: q.By, Granularity: q.Granularity, MinVisitors: q.MinVisitors,
		Rows: make([]statRow, 0, min(len(cells), limit)),
	}
	if len(cells) > limit {
		cells, resp.Truncated = cells[:limit], true
	}
	for _, cell := range cells {
		resp.Rows = append(resp.Rows, statRow{
			Bucket:   cell.Bucket.UTC().Format(time.RFC3339),
			Key:      cell.Key,
			Hits:     cell.Hits,
			Visitors: cell.Visitors,
		})
	}
	resp.Count = len(resp.Rows)
	c.rows = resp.Count
	return resp, nil
}

// parseAudience checks the query parameters of /v1/stats/audience.
func (s *Server) parseAudience(params url.Values) (store.AudienceQuery, error) {
	q := store.AudienceQuery{MinVisitors: s.minVisitors()}
	if err := statsParams.check(params); err != nil {
		return q, err
	}
	q.Site = params.Get("site")
	switch {
	case q.Site == "":
		return q, errorf(CodeBadRequest, "site is required: statistics are per site")
	case len(q.Site) > maxSite || strings.ContainsFunc(q.Site, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return q, errorf(CodeBadRequest, "site must be a host name")
	}
	var err error
	if q.From, err = parseTime("from", params.Get("from")); err != nil {
		return q, err
	}
	if q.To, err = parseTime("to", params.Get("to")); err != nil {
		return q, err
	}
	if !q.From.Before(q.To) {
		return q, errorf(CodeBadRequest, "from must be before to")
	}
	q.By = params.Get("by")
	if !slices.Contains(statsDimensions, q.By) {
		return q, errorf(CodeBadRequest, "by must be one of "+strings.Join(statsDimensions, ", "))
	}
	q.Granularity = params.Get("granularity")
	if q.Granularity == "" {
		q.Granularity = "day"
	}
	if !slices.Contains(store.AudienceGranularities, q.Granularity) {
		return q, errorf(CodeBadRequest, "granularity must be one of hour, day, month")
	}
	maxWindow := maxStatsWindow
	if q.Granularity == "hour" {
		maxWindow = maxHourlyWindow
	}
	if w := q.To.Sub(q.From); w > maxWindow {
		return q, errorf(CodeWindowTooLarge, fmt.Sprintf("the time window (%s) exceeds the maximum of %s for granularity %s", w, maxWindow, q.Granularity))
	}
	return q, nil
}
