package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/connlog/connlog/anonymize"
)

// AudienceDimensions are the dimensions the audience statistics count, the
// values of AudienceQuery.By. "site" gives the totals of the site (key "*");
// "region" and "city" exist only when anonymize is configured for them.
var AudienceDimensions = []string{"site", "path", "country", "region", "city", "browser", "os", "device", "referrer", "status"}

// AudienceGranularities are the time buckets of the audience statistics.
// Hourly statistics are kept 8 weeks, daily ones 25 months; months are
// built from days.
var AudienceGranularities = []string{"hour", "day", "month"}

// OtherKey is the key of the cell that gathers the cells with fewer than
// AudienceQuery.MinVisitors distinct visitors. It cannot clash with a real
// key: paths start with "/", and no dimension value is written in brackets
// except the fixed markers (direct), (internal), (ip), (invalid), (unknown).
const OtherKey = "(other)"

// AudienceQuery selects audience statistics of one site.
type AudienceQuery struct {
	// Site is the site whose statistics are read. Required: statistics are
	// never mixed across sites.
	Site string
	// From and To bound the buckets: a bucket is returned if it overlaps
	// [From, To). Required.
	From, To time.Time
	// By is the dimension, one of AudienceDimensions. Required.
	By string
	// Granularity is hour, day or month. Required.
	Granularity string
	// MinVisitors is the small-cell threshold k: within a bucket, cells with
	// fewer than k distinct visitors are merged into one OtherKey cell, and
	// that cell is left out too if it still has fewer than k visitors.
	// 0 or 1 turns suppression off.
	MinVisitors int
	// Limit caps the cells returned. Required, positive.
	Limit int
}

// AudienceCell is one count of the audience statistics: in the time bucket
// starting at Bucket (UTC), the requests (Hits) and distinct visitors
// (Visitors, estimated by uniqCombined64, about 1% error) whose dimension
// had the value Key. Visitors over several days count visitor-days, since
// the visitor hash changes every day.
type AudienceCell struct {
	Bucket   time.Time
	Key      string
	Hits     uint64
	Visitors uint64
}

// AudienceStats returns the cells of q, by bucket, then by hits (most
// first), then by key. Every value is a bound parameter.
func (s *Store) AudienceStats(ctx context.Context, q AudienceQuery) ([]AudienceCell, error) {
	switch {
	case q.Site == "":
		return nil, fmt.Errorf("%w: a site is required", ErrBadFilter)
	case !q.From.Before(q.To):
		return nil, fmt.Errorf("%w: the time window is empty (from must be before to)", ErrBadFilter)
	case !slices.Contains(AudienceDimensions, q.By):
		return nil, fmt.Errorf("%w: unknown dimension %q", ErrBadFilter, q.By)
	case q.Limit <= 0:
		return nil, fmt.Errorf("%w: limit must be positive", ErrBadFilter)
	case q.MinVisitors < 0:
		return nil, fmt.Errorf("%w: the small-cell threshold must not be negative", ErrBadFilter)
	}
	// table, time column, bucket expression, window condition: all fixed
	// strings chosen here, never from the query.
	var table, bucket, window string
	switch q.Granularity {
	case "hour":
		table = s.db.Stats + ".audience_hourly"
		bucket = "hour"
		window = "hour >= toStartOfHour({from:DateTime('UTC')}) AND hour < {to:DateTime('UTC')}"
	case "day", "month":
		table = s.db.Stats + ".audience_daily"
		bucket = "toDateTime(day, 'UTC')"
		if q.Granularity == "month" {
			bucket = "toDateTime(toStartOfMonth(day), 'UTC')"
		}
		window = "day >= toDate({from:DateTime('UTC')}) AND toDateTime(day, 'UTC') < {to:DateTime('UTC')}"
	default:
		return nil, fmt.Errorf("%w: unknown granularity %q", ErrBadFilter, q.Granularity)
	}
	sql := `SELECT bucket, cell, hits, visitors FROM (
    SELECT bucket, if(v < {k:UInt64}, '` + OtherKey + `', key) AS cell, sum(h) AS hits, uniqCombined64Merge(st) AS visitors
    FROM (
        SELECT ` + bucket + ` AS bucket, key, sum(hits) AS h, uniqCombined64MergeState(visitors) AS st, uniqCombined64Merge(visitors) AS v
        FROM ` + table + `
        WHERE site = {site:String} AND dim = {dim:String} AND ` + window + `
        GROUP BY bucket, key
    )
    GROUP BY bucket, cell
)
WHERE visitors >= {k:UInt64} OR cell != '` + OtherKey + `'
ORDER BY bucket, hits DESC, cell
LIMIT {limit:UInt64}`
	ctx = withParams(ctx, map[string]string{
		"site":  escapeParam(q.Site),
		"dim":   q.By,
		"from":  q.From.UTC().Format(time.DateTime),
		"to":    q.To.UTC().Format(time.DateTime),
		"k":     strconv.Itoa(q.MinVisitors),
		"limit": strconv.Itoa(q.Limit),
	})
	ctx, cancel := context.WithTimeout(ctx, s.cfg.QueryTimeout)
	defer cancel()
	rows, err := s.conn.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("read audience statistics: %w", err)
	}
	defer rows.Close()
	var out []AudienceCell
	for rows.Next() {
		var c AudienceCell
		if err := rows.Scan(&c.Bucket, &c.Key, &c.Hits, &c.Visitors); err != nil {
			return nil, fmt.Errorf("read audience statistics: %w", err)
		}
		c.Bucket = c.Bucket.UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audience statistics: %w", err)
	}
	return out, nil
}

const audienceColumns = "site, hour, path, country, region, city, browser, os, device, referrer_domain, status_class, visitor"

// insertAudience inserts rows into the Null table audience_in, whose
// materialized views aggregate them. The deduplication token reaches the
// views' target tables, so a retried batch is counted once.
func (s *Store) insertAudience(ctx context.Context, token string, rows []anonymize.Audience) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.InsertTimeout)
	defer cancel()
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
		"insert_deduplication_token":                         token,
		"deduplicate_blocks_in_dependent_materialized_views": 1,
		"max_partitions_per_insert_block":                    10000,
	}))
	bt, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.db.Stats+".audience_in ("+audienceColumns+")")
	if err != nil {
		return err
	}
	defer bt.Abort() //nolint:errcheck // no-op once sent
	n := len(rows)
	var (
		site, path, country, region = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		city, browser, os, device   = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		referrer, status            = make([]string, n), make([]string, n)
		hour                        = make([]time.Time, n)
		visitor                     = make([]uint64, n)
	)
	for i := range rows {
		r := &rows[i]
		// r.Network is deliberately not stored: the statistics need no
		// address, not even a truncated one.
		site[i], hour[i], path[i] = r.Site, r.Time, r.Path
		country[i], region[i], city[i] = r.Country, r.Region, r.City
		browser[i], os[i], device[i] = r.Browser, r.OS, r.Device
		referrer[i], status[i], visitor[i] = r.ReferrerDomain, r.StatusClass, r.Visitor
	}
	if err := appendColumns(bt, site, hour, path, country, region, city, browser, os, device, referrer, status, visitor); err != nil {
		return err
	}
	return bt.Send()
}
