package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/connlog/connlog/anonymize"
	"github.com/connlog/connlog/store/internal/chsql"
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
	ctx = chsql.WithParams(ctx, map[string]string{
		"site":  chsql.Escape(q.Site),
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

// audienceDims is len(AudienceDimensions); cellGrouper.group fills them in
// that order.
const audienceDims = 10

// cellGrouper groups the audience rows of one batch into the rows of
// audience_cells, column by column: the hits of the batch that share site,
// hour, dimension and key, and their distinct visitor hashes. It keeps its
// buffers between batches (Store.groupers): a batch of 50,000 hits would
// otherwise allocate tens of megabytes, and the garbage collector would
// rescan every batch in flight for them.
type cellGrouper struct {
	// The columns of audience_cells, one entry per cell.
	site, dim, key []string
	hour           []time.Time
	hits           []uint64
	visitors       [][]uint64

	buckets map[cellBucket]*[audienceDims]map[string]int32
	last    cellBucket                        // the bucket of the row before
	current *[audienceDims]map[string]int32   // and its maps
	spare   []*[audienceDims]map[string]int32 // emptied maps for the next buckets
	of      []int32                           // of[i*audienceDims+d]: cell of row i in dimension d, -1 if none
	counts  []int32                           // visitor hashes per cell, repeats included
	start   []int32                           // counting sort: first slot of each cell in placed
	next    []int32
	placed  []int32 // visitor ids by cell
	mark    []int32 // mark[id]: last cell that took visitor id
	ids     map[uint64]int32
	hashes  []uint64 // hashes[id]
	out     []uint64 // the distinct visitors of every cell, cell after cell
}

type cellBucket struct {
	site string
	hour time.Time
}

// newCellGrouper is the New of Store.groupers.
func newCellGrouper() any {
	return &cellGrouper{buckets: map[cellBucket]*[audienceDims]map[string]int32{}, ids: map[uint64]int32{}}
}

// group replaces g's columns with the cells of rows, as the materialized
// view of migration 0004 grouped them in the engine: every hit counts once
// in each dimension whose key is not empty; country "" counts as (unknown);
// region and city are qualified by their country (and region); visitor hash
// 0 (no key) counts as a hit but not as a visitor. Cells come in order of
// first appearance, and each cell's visitors distinct in order of first
// appearance, so the same rows always give the same insert.
//
// Cost per hit (BenchmarkAudienceCells): one map lookup per dimension plus
// one for the visitor, no sorting; the visitors are placed by a counting
// sort and deduplicated with mark.
func (g *cellGrouper) group(segs ...[]anonymize.Audience) {
	g.reset()
	n := 0
	for _, rows := range segs {
		n += len(rows)
	}
	g.of = slices.Grow(g.of[:0], n*audienceDims)[:n*audienceDims]
	i := 0 // the row's index across segs
	for _, rows := range segs {
		for j := range rows {
			g.addRow(i, &rows[j])
			i++
		}
	}
	g.placeVisitors(segs)
}

// addRow counts r, the i-th row of the batch, in the cell of each of its
// dimensions.
func (g *cellGrouper) addRow(i int, r *anonymize.Audience) {
	if b := (cellBucket{r.Site, r.Time}); g.current == nil || b != g.last {
		g.last = b
		if g.current = g.buckets[b]; g.current == nil {
			g.current = g.newBucket()
			g.buckets[b] = g.current
		}
	}
	v := r.Visitor
	g.add(i, 0, "*", v)
	g.add(i, 1, r.Path, v)
	country := r.Country
	if country == "" {
		country = "(unknown)"
	}
	g.add(i, 2, country, v)
	region, city := "", ""
	if r.Region != "" {
		region = r.Country + "-" + r.Region
	}
	if r.City != "" {
		city = r.Country + "-" + r.Region + "/" + r.City
	}
	g.add(i, 3, region, v)
	g.add(i, 4, city, v)
	g.add(i, 5, r.Browser, v)
	g.add(i, 6, r.OS, v)
	g.add(i, 7, r.Device, v)
	g.add(i, 8, r.ReferrerDomain, v)
	g.add(i, 9, r.StatusClass, v)
}

// add counts the i-th row in dimension dim's cell key of the current
// bucket, creating the cell on its first row; an empty key is no cell.
func (g *cellGrouper) add(i, dim int, key string, visitor uint64) {
	if key == "" {
		g.of[i*audienceDims+dim] = -1
		return
	}
	m := g.current[dim]
	if m == nil {
		m = map[string]int32{}
		g.current[dim] = m
	}
	c, ok := m[key]
	if !ok {
		c = int32(len(g.key))
		g.site = append(g.site, g.last.site)
		g.hour = append(g.hour, g.last.hour)
		g.dim = append(g.dim, AudienceDimensions[dim])
		g.key = append(g.key, key)
		g.hits = append(g.hits, 0)
		g.counts = append(g.counts, 0)
		m[key] = c
	}
	g.hits[c]++
	if visitor != 0 {
		g.counts[c]++
	}
	g.of[i*audienceDims+dim] = c
}

// placeVisitors sets each cell's distinct visitor hashes, once every row of
// segs was counted (addRow): each distinct hash gets a small id; a counting
// sort places the ids by cell; each cell keeps the first occurrence of each
// id.
func (g *cellGrouper) placeVisitors(segs [][]anonymize.Audience) {
	cells := len(g.key)
	g.start = slices.Grow(g.start[:0], cells+1)[:cells+1]
	g.start[0] = 0
	for c, n := range g.counts {
		g.start[c+1] = g.start[c] + n
	}
	g.next = append(g.next[:0], g.start[:cells]...)
	g.placed = slices.Grow(g.placed[:0], int(g.start[cells]))[:g.start[cells]]
	i := -1
	for _, rows := range segs {
		for j := range rows {
			i++
			v := rows[j].Visitor
			if v == 0 {
				continue
			}
			id, ok := g.ids[v]
			if !ok {
				id = int32(len(g.hashes))
				g.ids[v] = id
				g.hashes = append(g.hashes, v)
			}
			for _, c := range g.of[i*audienceDims : (i+1)*audienceDims] {
				if c >= 0 {
					g.placed[g.next[c]] = id
					g.next[c]++
				}
			}
		}
	}
	g.mark = slices.Grow(g.mark[:0], len(g.hashes))[:len(g.hashes)]
	for i := range g.mark {
		g.mark[i] = -1
	}
	g.out = slices.Grow(g.out[:0], len(g.placed))
	g.visitors = slices.Grow(g.visitors[:0], cells)[:cells]
	for c := range cells {
		from := len(g.out)
		for _, id := range g.placed[g.start[c]:g.start[c+1]] {
			if g.mark[id] != int32(c) {
				g.mark[id] = int32(c)
				g.out = append(g.out, g.hashes[id])
			}
		}
		g.visitors[c] = g.out[from:len(g.out):len(g.out)]
	}
}

// newBucket returns empty per-dimension maps, reusing those of earlier
// batches.
func (g *cellGrouper) newBucket() *[audienceDims]map[string]int32 {
	if n := len(g.spare); n > 0 {
		b := g.spare[n-1]
		g.spare = g.spare[:n-1]
		return b
	}
	return new([audienceDims]map[string]int32)
}

// reset empties g, keeping its memory. Strings of the previous batch are
// dropped so that the pool does not keep them alive.
func (g *cellGrouper) reset() {
	for b, maps := range g.buckets {
		for _, m := range maps {
			clear(m)
		}
		g.spare = append(g.spare, maps)
		delete(g.buckets, b)
	}
	clear(g.site)
	clear(g.dim)
	clear(g.key)
	clear(g.visitors)
	g.site, g.dim, g.key, g.hour, g.hits, g.visitors = g.site[:0], g.dim[:0], g.key[:0], g.hour[:0], g.hits[:0], g.visitors[:0]
	g.counts, g.hashes = g.counts[:0], g.hashes[:0]
	clear(g.ids)
	g.last, g.current = cellBucket{}, nil
}

// batchMarkerDim is the dimension of the marker cells: an insert into
// audience_cells carries, after the cells of its batches, one marker cell
// per batch and month partition (site "", key the batch's markerKey, hits
// its rows of that month, no visitor), so that a batch rebuilt alone after
// a crash can tell whether its round's statistics were stored
// (insertRebuiltAudience). A marker goes to the same part as the cells of
// its month in each table. AudienceStats never reads it: its dimension is
// not one of AudienceDimensions.
const batchMarkerDim = "(batch)"

// markerKey is the key of a batch's marker cells: a digest of its ID, which
// names its topic.
func markerKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}

// month is the month partition (toYYYYMM) of a statistics hour.
func month(t time.Time) int {
	t = t.UTC()
	return t.Year()*100 + int(t.Month())
}

// addMarkers appends to g's columns the marker cells of the batch id whose
// audience rows are rows: one per month, at the latest hour of its rows in
// that month (the hourly table's TTL keeps it as long as those rows), in
// order of first appearance.
func (g *cellGrouper) addMarkers(id string, rows []anonymize.Audience) {
	key := markerKey(id)
	first := len(g.key)
	var last time.Time // the hour of the row before, in marker c
	c := -1
	for i := range rows {
		t := rows[i].Time
		if c < 0 || !t.Equal(last) { // rows come hour after hour: rarely
			last, c = t, first
			for m := month(t); c < len(g.key) && month(g.hour[c]) != m; {
				c++
			}
		}
		if c == len(g.key) {
			g.site = append(g.site, "")
			g.dim = append(g.dim, batchMarkerDim)
			g.hour = append(g.hour, t)
			g.key = append(g.key, key)
			g.hits = append(g.hits, 0)
			g.visitors = append(g.visitors, nil)
		}
		if t.After(g.hour[c]) {
			g.hour[c] = t
		}
		g.hits[c]++
	}
}

// The Null tables the audience cells go to: audience_cells reaches both
// statistics tables, audience_cells_hourly and audience_cells_daily
// (migration 0016) one each.
const (
	cellsTable       = "audience_cells"
	hourlyCellsTable = "audience_cells_hourly"
	dailyCellsTable  = "audience_cells_daily"
)

// audienceSegment is the audience rows of one batch in an insert, and the
// batch's ID if the insert carries its marker cells ("": none).
type audienceSegment struct {
	marked string
	rows   []anonymize.Audience
}

// insertAudience groups the audience rows of segs, one segment per batch,
// into cells (cellGrouper) and inserts them into the Null table table of
// the statistics, whose materialized views turn each cell's visitor hashes
// into the sketch of audience_hourly and audience_daily. Grouping here
// rather than in the engine is what keeps statistics cheap: the engine
// builds each sketch once, from distinct hashes, and one insert for all the
// batches of a write round builds and merges a quarter of the sketches that
// one per batch did. The deduplication token reaches the views' target
// tables, so a retried insert is counted once. The insert carries the
// marker cells (batchMarkerDim) of the segments that name their batch.
// rows[].Network is deliberately not used: the statistics need no address,
// not even a truncated one.
func (s *Store) insertAudience(ctx context.Context, token, table string, segs []audienceSegment) error {
	g := s.groupers.Get().(*cellGrouper)
	defer func() {
		g.reset()
		s.groupers.Put(g)
	}()
	rows := make([][]anonymize.Audience, len(segs))
	for i, seg := range segs {
		rows[i] = seg.rows
	}
	g.group(rows...)
	for _, seg := range segs {
		if seg.marked != "" {
			g.addMarkers(seg.marked, seg.rows)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.InsertTimeout)
	defer cancel()
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
		"insert_deduplication_token":                         token,
		"deduplicate_blocks_in_dependent_materialized_views": 1,
		"max_partitions_per_insert_block":                    10000,
		// The cells are grouped already, one per site, dimension, hour
		// and key: merging the block's equal keys on the way in (the
		// default) would only copy every sketch, about a tenth of the
		// insert's CPU. Background merges still combine the parts.
		"optimize_on_insert": 0,
	}))
	bt, err := s.prepareInsert(ctx, s.db.Stats+"."+table, "site, dim, hour, key, hits, visitors")
	if err != nil {
		return err
	}
	defer bt.Abort() //nolint:errcheck // no-op once sent
	if err := appendColumns(bt, g.site, g.dim, g.hour, g.key, g.hits, g.visitors); err != nil {
		return err
	}
	return bt.Send()
}

// insertRebuiltAudience inserts the audience rows of b, a batch rebuilt
// after a crash or a rebalance, that the statistics do not hold yet. The
// statistics keep no trace of the rows they counted, so the batch's marker
// cells tell, month by month and table by table, what was stored:
//
//   - no marker at all: the batch was not stored by this version, or was
//     stored alone by an earlier one (which wrote no markers) under its ID;
//     the same insert under the same ID is deduplicated if so;
//   - a month marked in both tables: stored;
//   - a month marked in one table: the insert stopped between the two (the
//     engine writes them side by side, in no set order), or the hourly
//     table's shorter TTL removed its marker; the month's rows go to the
//     other table alone;
//   - other months: not stored; they go to both tables.
//
// These inserts carry no markers, and tokens of their own, so the same
// state gives the same inserts: a crash during them is mended by the next
// rebuild as any retried insert is.
func (s *Store) insertRebuiltAudience(ctx context.Context, b Batch) error {
	hourly, daily, err := s.markedMonths(ctx, markerKey(b.ID))
	if err != nil {
		return err
	}
	if len(hourly) == 0 && len(daily) == 0 {
		return s.insertAudience(ctx, b.ID, cellsTable, []audienceSegment{{rows: b.Audience}})
	}
	var both, hourlyOnly, dailyOnly []anonymize.Audience
	for _, r := range b.Audience {
		switch m := month(r.Time); {
		case hourly[m] && daily[m]:
		case hourly[m]:
			dailyOnly = append(dailyOnly, r)
		case daily[m]:
			hourlyOnly = append(hourlyOnly, r)
		default:
			both = append(both, r)
		}
	}
	for _, in := range []struct {
		token, table string
		rows         []anonymize.Audience
	}{
		{"rebuilt/" + b.ID, cellsTable, both},
		{"rebuilt-hourly/" + b.ID, hourlyCellsTable, hourlyOnly},
		{"rebuilt-daily/" + b.ID, dailyCellsTable, dailyOnly},
	} {
		if len(in.rows) == 0 {
			continue
		}
		if err := s.insertAudience(ctx, in.token, in.table, []audienceSegment{{rows: in.rows}}); err != nil {
			return err
		}
	}
	return nil
}

// markedMonths returns the months (toYYYYMM) in which each statistics
// table holds a marker cell of key.
func (s *Store) markedMonths(ctx context.Context, key string) (hourly, daily map[int]bool, err error) {
	ctx = chsql.WithParams(ctx, map[string]string{"k": chsql.Escape(key), "dim": batchMarkerDim})
	ctx, cancel := context.WithTimeout(ctx, s.cfg.QueryTimeout)
	defer cancel()
	rows, err := s.conn.Query(ctx, `SELECT 'hourly', toYYYYMM(hour) FROM `+s.db.Stats+`.audience_hourly WHERE site = '' AND dim = {dim:String} AND key = {k:String}
UNION ALL SELECT 'daily', toYYYYMM(day) FROM `+s.db.Stats+`.audience_daily WHERE site = '' AND dim = {dim:String} AND key = {k:String}`)
	if err != nil {
		return nil, nil, fmt.Errorf("read the statistics' batch markers: %w", err)
	}
	defer rows.Close()
	hourly, daily = map[int]bool{}, map[int]bool{}
	for rows.Next() {
		var table string
		var m uint32
		if err := rows.Scan(&table, &m); err != nil {
			return nil, nil, fmt.Errorf("read the statistics' batch markers: %w", err)
		}
		if table == "daily" {
			daily[int(m)] = true
		} else {
			hourly[int(m)] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read the statistics' batch markers: %w", err)
	}
	return hourly, daily, nil
}
