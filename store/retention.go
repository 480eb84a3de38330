package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connlog/connlog/store/internal/chsql"
)

// Period is a lifetime: a number of months or of days. Its text form is
// "12mo", "6mo", "30d", "2w" or "3y" (years and weeks are converted to
// months and days).
type Period struct {
	Months int
	Days   int
}

// Months returns a Period of n months.
func Months(n int) Period { return Period{Months: n} }

// Days returns a Period of n days.
func Days(n int) Period { return Period{Days: n} }

// IsZero reports whether p is unset.
func (p Period) IsZero() bool { return p.Months == 0 && p.Days == 0 }

// String returns the text form, e.g. "12mo".
func (p Period) String() string {
	switch {
	case p.IsZero():
		return ""
	case p.Days == 0:
		return strconv.Itoa(p.Months) + "mo"
	case p.Months == 0:
		return strconv.Itoa(p.Days) + "d"
	}
	return strconv.Itoa(p.Months) + "mo" + strconv.Itoa(p.Days) + "d"
}

// MarshalText implements encoding.TextMarshaler.
func (p Period) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

var periodText = regexp.MustCompile(`^([0-9]{1,4})(mo|d|w|y)$`)

// UnmarshalText parses "12mo", "30d", "2w" or "3y".
func (p *Period) UnmarshalText(b []byte) error {
	m := periodText.FindStringSubmatch(strings.TrimSpace(string(b)))
	if m == nil {
		return fmt.Errorf("lifetime %q: want a number followed by mo, d, w or y (e.g. 12mo, 30d)", b)
	}
	n, _ := strconv.Atoi(m[1])
	switch m[2] {
	case "mo":
		*p = Period{Months: n}
	case "y":
		*p = Period{Months: 12 * n}
	case "w":
		*p = Period{Days: 7 * n}
	default:
		*p = Period{Days: n}
	}
	return nil
}

// AddTo returns t plus the period, as ClickHouse's date arithmetic does it
// up to the end-of-month clamping (a difference of at most three days).
func (p Period) AddTo(t time.Time) time.Time { return t.AddDate(0, p.Months, p.Days) }

// interval renders the period as a ClickHouse interval expression.
func (p Period) interval() string {
	switch {
	case p.Days == 0:
		return "toIntervalMonth(" + strconv.Itoa(p.Months) + ")"
	case p.Months == 0:
		return "toIntervalDay(" + strconv.Itoa(p.Days) + ")"
	}
	return "toIntervalMonth(" + strconv.Itoa(p.Months) + ") + toIntervalDay(" + strconv.Itoa(p.Days) + ")"
}

// RetentionConfig sets the lifetime of each data class. Zero fields take
// the defaults of DefaultRetention.
type RetentionConfig struct {
	// Connections: connection records (legal obligation). Default 12mo.
	Connections Period `yaml:"connections"`
	// Access: the security access log. Default 6mo.
	Access Period `yaml:"access"`
	// AccessDetail, if set, blanks the access log's query string, referer,
	// user agent and forwarded-for chain after this lifetime (a column TTL);
	// the rest of the record stays for Access. Default: unset.
	AccessDetail Period `yaml:"access_detail"`
	// Quarantine: unparsable lines. Default 30d.
	Quarantine Period `yaml:"quarantine"`
	// Audit: the audit trail. Default 3y.
	Audit Period `yaml:"audit"`
	// Statistics: audience statistics (no IP). Default 25mo.
	Statistics Period `yaml:"statistics"`
	// Sites overrides the lifetimes of connection records and access log
	// for some sites (exact host names).
	Sites []SiteRetention `yaml:"sites"`
	// EnforceInterval is how often the enforcement pass runs. Default 1h.
	EnforceInterval time.Duration `yaml:"enforce_interval"`
	// Grace is how long past its lifetime a record may still be stored
	// before the retention report flags it (daily partitions, lazy merges).
	// Default 1 day.
	Grace time.Duration `yaml:"grace"`
}

// SiteRetention overrides lifetimes for one site; zero fields inherit.
type SiteRetention struct {
	// Site is the host name (the Host header, exactly) the lifetimes apply to.
	Site string `yaml:"site"`
	// Connections is the site's lifetime of connection records. Default: clickhouse.retention.connections.
	Connections Period `yaml:"connections"`
	// Access is the site's lifetime of the access log. Default: clickhouse.retention.access.
	Access Period `yaml:"access"`
}

// DefaultRetention returns the lifetimes of PRODUCT.md.
func DefaultRetention() RetentionConfig {
	return RetentionConfig{
		Connections:     Months(12),
		Access:          Months(6),
		Quarantine:      Days(30),
		Audit:           Months(36),
		Statistics:      Months(25),
		EnforceInterval: time.Hour,
		Grace:           24 * time.Hour,
	}
}

func (r RetentionConfig) withDefaults() RetentionConfig {
	d := DefaultRetention()
	for _, f := range []struct{ p, def *Period }{
		{&r.Connections, &d.Connections}, {&r.Access, &d.Access}, {&r.Quarantine, &d.Quarantine},
		{&r.Audit, &d.Audit}, {&r.Statistics, &d.Statistics},
	} {
		if f.p.IsZero() {
			*f.p = *f.def
		}
	}
	if r.EnforceInterval == 0 {
		r.EnforceInterval = d.EnforceInterval
	}
	if r.Grace == 0 {
		r.Grace = d.Grace
	}
	return r
}

// siteName is what a site override may be called: a lower-case host name.
// The name ends up quoted in a TTL expression, so it is also checked.

// Validate reports every problem with the lifetimes.
func (r RetentionConfig) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		p    Period
	}{{"connections", r.Connections}, {"access", r.Access}, {"quarantine", r.Quarantine}, {"audit", r.Audit}, {"statistics", r.Statistics}} {
		if f.p.Months < 0 || f.p.Days < 0 {
			errs = append(errs, fmt.Errorf("store.retention.%s: negative lifetime", f.name))
		}
	}
	ref := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	if r.AccessDetail.Months < 0 || r.AccessDetail.Days < 0 {
		errs = append(errs, errors.New("store.retention.access_detail: negative lifetime"))
	} else if acc := r.withDefaults().Access; !r.AccessDetail.IsZero() && acc.AddTo(ref).Before(r.AccessDetail.AddTo(ref)) {
		errs = append(errs, fmt.Errorf("store.retention.access_detail: %s is longer than the access log's lifetime %s", r.AccessDetail, acc))
	}
	if r.EnforceInterval < 0 || r.Grace < 0 {
		errs = append(errs, errors.New("store.retention: enforce_interval and grace must not be negative"))
	}
	seen := map[string]bool{}
	for i, s := range r.Sites {
		if len(s.Site) > 253 || !chsql.SiteName.MatchString(s.Site) {
			errs = append(errs, fmt.Errorf("store.retention.sites[%d]: %q is not a lower-case host name", i, s.Site))
		}
		if seen[s.Site] {
			errs = append(errs, fmt.Errorf("store.retention.sites[%d]: %q appears twice", i, s.Site))
		}
		seen[s.Site] = true
		if s.Connections.Months < 0 || s.Connections.Days < 0 || s.Access.Months < 0 || s.Access.Days < 0 {
			errs = append(errs, fmt.Errorf("store.retention.sites[%d]: negative lifetime", i))
		}
	}
	return errors.Join(errs...)
}

// Data class names, as in the retention report.
const (
	ClassConnections = "connections"
	ClassAccess      = "access"
	// ClassAccessDetail is the access log's detail columns (query,
	// referer, user agent, forwarded-for) under retention.access_detail.
	ClassAccessDetail = "access_detail"
	ClassQuarantine   = "quarantine"
	ClassAudit        = "audit"
	ClassStatistics   = "statistics"
	ClassHolds        = "holds"
)

// retentionTable is one table under a lifetime.
type retentionTable struct {
	class   string
	table   string // db.table
	timeCol string
	// bySite: the table has a site column and per-site overrides apply.
	bySite    bool
	def       Period
	overrides map[string]Period
	// managed: ApplyRetention sets the table's TTL from the configuration.
	managed bool
}

// policy returns the lifetime of site's rows.
func (t retentionTable) policy(site string) Period {
	if p, ok := t.overrides[site]; ok {
		return p
	}
	return t.def
}

// expiry is the SQL expression of the moment a row expires.
func (t retentionTable) expiry() string {
	base := "toDateTime(" + t.timeCol + ")"
	if len(t.overrides) == 0 {
		return base + " + " + t.def.interval()
	}
	sites := make([]string, 0, len(t.overrides))
	for s := range t.overrides {
		sites = append(sites, s)
	}
	slices.Sort(sites)
	var b strings.Builder
	b.WriteString("multiIf(")
	for _, s := range sites {
		fmt.Fprintf(&b, "site = %s, %s + %s, ", chsql.Quote(s), base, t.overrides[s].interval())
	}
	b.WriteString(base + " + " + t.def.interval() + ")")
	return b.String()
}

func retentionTables(cfg Config) []retentionTable {
	r := cfg.Retention.withDefaults()
	db := cfg.databases()
	conn, acc := map[string]Period{}, map[string]Period{}
	for _, s := range r.Sites {
		if !s.Connections.IsZero() {
			conn[s.Site] = s.Connections
		}
		if !s.Access.IsZero() {
			acc[s.Site] = s.Access
		}
	}
	return []retentionTable{
		{class: ClassConnections, table: db.Connections + ".connection_records", timeCol: "event_time", bySite: true, def: r.Connections, overrides: conn, managed: true},
		{class: ClassAccess, table: db.Access + ".access_log", timeCol: "event_time", bySite: true, def: r.Access, overrides: acc, managed: true},
		{class: ClassQuarantine, table: db.Ops + ".quarantine", timeCol: "received_at", def: r.Quarantine, managed: true},
		{class: ClassAudit, table: db.Ops + ".audit", timeCol: "time", def: r.Audit, managed: true},
	}
}

// statsTables returns the audience statistics tables that exist (created
// by their own migration, 0004): the daily aggregates live for the
// configured statistics lifetime; the hourly ones keep the lifetime their
// migration gave them (8 weeks) and are only reported and enforced.
func (s *Store) statsTables(ctx context.Context) ([]retentionTable, error) {
	r := s.cfg.Retention.withDefaults()
	known := []retentionTable{
		{class: ClassStatistics, table: s.db.Stats + ".audience_daily", timeCol: "day", bySite: true, def: r.Statistics, managed: true},
		{class: ClassStatistics, table: s.db.Stats + ".audience_hourly", timeCol: "hour", bySite: true, def: Days(56)},
	}
	ctx = chsql.WithParams(ctx, map[string]string{"db": chsql.Escape(s.db.Stats)})
	rows, err := s.conn.Query(ctx, "SELECT name FROM system.tables WHERE database = {db:String}")
	if err != nil {
		return nil, fmt.Errorf("list statistics tables: %w", err)
	}
	defer rows.Close()
	exists := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("list statistics tables: %w", err)
		}
		exists[s.db.Stats+"."+name] = true
	}
	var out []retentionTable
	for _, t := range known {
		if exists[t.table] {
			out = append(out, t)
		}
	}
	return out, rows.Err()
}

func (s *Store) allRetentionTables(ctx context.Context) ([]retentionTable, error) {
	st, err := s.statsTables(ctx)
	if err != nil {
		return nil, err
	}
	return append(retentionTables(s.cfg), st...), nil
}

// RetentionChange is one lifetime change applied to a table.
type RetentionChange struct {
	Time   time.Time
	Actor  string
	Class  string
	Table  string
	OldTTL string
	NewTTL string
}

// ApplyRetention sets each table's TTL to the lifetimes of the
// configuration (ALTER TABLE ... MODIFY TTL, without rewriting the stored
// parts: the enforcement pass removes what expired). A change is recorded in
// the retention_changes table with who applied it and the old and new
// expressions. Tables whose TTL already matches are left alone. It returns
// the changes applied; call it at start-up, after Migrate.
func (s *Store) ApplyRetention(ctx context.Context) ([]RetentionChange, error) {
	tables, err := s.allRetentionTables(ctx)
	if err != nil {
		return nil, err
	}
	actor := actorName()
	var changes []RetentionChange
	for _, t := range tables {
		if !t.managed {
			continue
		}
		want := t.expiry()
		last, err := s.lastAppliedTTL(ctx, t.table)
		if err != nil {
			return changes, err
		}
		if last == want {
			continue
		}
		old := last
		if old == "" {
			old, err = s.currentTTL(ctx, t.table)
			if err != nil {
				return changes, err
			}
		}
		stmt := "ALTER TABLE " + t.table + s.onCluster() + " MODIFY TTL " + want + " SETTINGS materialize_ttl_after_modify = 0"
		if err := s.conn.Exec(ctx, stmt); err != nil {
			return changes, fmt.Errorf("set lifetime of %s: %w", t.table, err)
		}
		c := RetentionChange{Time: time.Now().UTC(), Actor: actor, Class: t.class, Table: t.table, OldTTL: old, NewTTL: want}
		if err := s.recordChange(ctx, c); err != nil {
			return changes, err
		}
		changes = append(changes, c)
	}
	c, err := s.applyDetailTTL(ctx, actor)
	if err != nil {
		return changes, err
	}
	if c != nil {
		changes = append(changes, *c)
	}
	return changes, nil
}

func (s *Store) recordChange(ctx context.Context, c RetentionChange) error {
	pctx := chsql.WithParams(ctx, map[string]string{
		"t": chsql.Time(c.Time), "a": chsql.Escape(c.Actor), "c": chsql.Escape(c.Class), "tb": chsql.Escape(c.Table),
		"o": chsql.Escape(c.OldTTL), "n": chsql.Escape(c.NewTTL),
	})
	if err := s.conn.Exec(pctx, "INSERT INTO "+s.db.Ops+".retention_changes (time, actor, class, db_table, old_ttl, new_ttl) VALUES ({t:DateTime64(3, 'UTC')}, {a:String}, {c:String}, {tb:String}, {o:String}, {n:String})"); err != nil {
		return fmt.Errorf("record lifetime change of %s: %w", c.Table, err)
	}
	s.logger.Info("retention lifetime applied", "table", c.Table, "class", c.Class, "old", c.OldTTL, "new", c.NewTTL)
	return nil
}

// detailTable is the access log's detail columns under their lifetime, or
// ok false when retention.access_detail is unset.
func (s *Store) detailTable() (t retentionTable, ok bool) {
	p := s.cfg.Retention.AccessDetail
	return retentionTable{class: ClassAccessDetail, table: s.db.Access + ".access_log", timeCol: "event_time", def: p}, !p.IsZero()
}

// detailPresent is true for an access-log row whose detail is not blank.
const detailPresent = "(query != '' OR referer != '' OR user_agent != '' OR forwarded_for != '')"

// applyDetailTTL sets (or removes) the column TTL of the access log's
// detail columns. The change is recorded under the table name + "#detail".
func (s *Store) applyDetailTTL(ctx context.Context, actor string) (*RetentionChange, error) {
	t, ok := s.detailTable()
	want := ""
	if ok {
		want = t.expiry()
	}
	key := s.db.Access + ".access_log#detail"
	last, err := s.lastAppliedTTL(ctx, key)
	if err != nil || last == want {
		return nil, err
	}
	for _, col := range accessDetailColumns {
		stmt := "ALTER TABLE " + s.db.Access + ".access_log" + s.onCluster() + " MODIFY COLUMN " + col + " REMOVE TTL"
		if want != "" {
			stmt = "ALTER TABLE " + s.db.Access + ".access_log" + s.onCluster() + " MODIFY COLUMN " + col + " TTL " + want + " SETTINGS materialize_ttl_after_modify = 0"
		}
		if err := s.conn.Exec(ctx, stmt); err != nil {
			return nil, fmt.Errorf("set lifetime of access log column %s: %w", col, err)
		}
	}
	c := RetentionChange{Time: time.Now().UTC(), Actor: actor, Class: ClassAccessDetail, Table: key, OldTTL: last, NewTTL: want}
	return &c, s.recordChange(ctx, c)
}

// enforceDetail blanks the detail columns of access-log rows past their
// detail lifetime, partition by partition.
func (s *Store) enforceDetail(ctx context.Context) (EnforcedTable, error) {
	t, _ := s.detailTable()
	res := EnforcedTable{Class: ClassAccessDetail, Table: t.table + "#detail"}
	exp := t.expiry()
	countDetail := func() (uint64, error) {
		var n uint64
		err := s.conn.QueryRow(ctx, "SELECT count() FROM "+t.table+" WHERE "+detailPresent).Scan(&n)
		return n, err
	}
	var err error
	if res.RowsBefore, err = countDetail(); err != nil {
		return res, fmt.Errorf("count access log detail: %w", err)
	}
	rows, err := s.conn.Query(ctx, "SELECT DISTINCT _partition_id FROM "+t.table+" WHERE toDateTime(event_time) <= now() - "+t.def.interval()+" AND "+detailPresent)
	if err != nil {
		return res, fmt.Errorf("find expired access log detail: %w", err)
	}
	var parts []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return res, fmt.Errorf("find expired access log detail: %w", err)
		}
		parts = append(parts, p)
	}
	rows.Close()
	for _, p := range parts {
		if err := s.conn.Exec(ctx, "ALTER TABLE "+t.table+s.onCluster()+" UPDATE query = '', referer = '', user_agent = '', forwarded_for = '' IN PARTITION ID "+
			chsql.Quote(p)+" WHERE "+exp+" <= now() AND "+detailPresent+" SETTINGS mutations_sync = 2"); err != nil {
			return res, fmt.Errorf("blank expired access log detail in partition %s: %w", p, err)
		}
	}
	if res.RowsAfter, err = countDetail(); err != nil {
		return res, fmt.Errorf("count access log detail: %w", err)
	}
	return res, nil
}

// RetentionChanges returns the recorded lifetime changes, oldest first.
func (s *Store) RetentionChanges(ctx context.Context) ([]RetentionChange, error) {
	rows, err := s.conn.Query(ctx, "SELECT time, actor, class, db_table, old_ttl, new_ttl FROM "+s.db.Ops+".retention_changes ORDER BY time")
	if err != nil {
		return nil, fmt.Errorf("read retention changes: %w", err)
	}
	defer rows.Close()
	var out []RetentionChange
	for rows.Next() {
		var c RetentionChange
		if err := rows.Scan(&c.Time, &c.Actor, &c.Class, &c.Table, &c.OldTTL, &c.NewTTL); err != nil {
			return nil, fmt.Errorf("read retention changes: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func (s *Store) lastAppliedTTL(ctx context.Context, table string) (string, error) {
	ctx = chsql.WithParams(ctx, map[string]string{"tb": chsql.Escape(table)})
	var ttl string
	err := s.conn.QueryRow(ctx, "SELECT argMax(new_ttl, time) FROM "+s.db.Ops+".retention_changes WHERE db_table = {tb:String}").Scan(&ttl)
	if err != nil {
		return "", fmt.Errorf("read last lifetime of %s: %w", table, err)
	}
	return ttl, nil
}

// currentTTL extracts the TTL clause from the table's engine description.
func (s *Store) currentTTL(ctx context.Context, table string) (string, error) {
	db, name, _ := strings.Cut(table, ".")
	ctx = chsql.WithParams(ctx, map[string]string{"d": chsql.Escape(db), "n": chsql.Escape(name)})
	var full string
	if err := s.conn.QueryRow(ctx, "SELECT engine_full FROM system.tables WHERE database = {d:String} AND name = {n:String}").Scan(&full); err != nil {
		return "", fmt.Errorf("read lifetime of %s: %w", table, err)
	}
	_, ttl, ok := strings.Cut(full, " TTL ")
	if !ok {
		return "", nil
	}
	ttl, _, _ = strings.Cut(ttl, " SETTINGS ")
	return strings.TrimSpace(ttl), nil
}

// actorName says who applied a configuration change: the OS user and host
// of the connlog process.
func actorName() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return "config:" + name + "@" + host
}

// EnforcedTable is what one enforcement pass did to one table and site.
type EnforcedTable struct {
	Class      string `json:"class"`
	Table      string `json:"table"`
	Site       string `json:"site,omitempty"`
	RowsBefore uint64 `json:"rows_before"`
	RowsAfter  uint64 `json:"rows_after"`
}

// Removed is how many rows the pass removed (rows inserted meanwhile are
// not counted against it).
func (e EnforcedTable) Removed() uint64 {
	if e.RowsAfter >= e.RowsBefore {
		return 0
	}
	return e.RowsBefore - e.RowsAfter
}

// EnforcementResult reports one enforcement pass.
type EnforcementResult struct {
	RunID    string          `json:"run_id"`
	Started  time.Time       `json:"started"`
	Duration time.Duration   `json:"duration"`
	Tables   []EnforcedTable `json:"tables"`
	// PartitionsDropped and PartitionsMutated say how: whole expired partitions
	// dropped, and rows deleted from partitions that also hold live rows
	// (another site's longer lifetime).
	PartitionsDropped int `json:"partitions_dropped"`
	PartitionsMutated int `json:"partitions_mutated"`
	// HoldsReleased lists the holds released because they expired.
	HoldsReleased []string `json:"holds_released,omitempty"`
}

// Removed is the total of rows removed.
func (r EnforcementResult) Removed() uint64 {
	var n uint64
	for _, t := range r.Tables {
		n += t.Removed()
	}
	return n
}

// Enforce removes everything older than its lifetime now, instead of
// waiting for ClickHouse's lazy TTL merges: partitions whose rows have all
// expired are dropped, and expired rows of partitions that also hold live
// rows (a site with a longer lifetime) are deleted with a synchronous
// mutation restricted to that partition. Expired legal holds are released.
// Rows per table and site before and after are recorded in retention_runs.
func (s *Store) Enforce(ctx context.Context) (EnforcementResult, error) {
	res := EnforcementResult{RunID: chsql.NewID(), Started: time.Now().UTC()}
	tables, err := s.allRetentionTables(ctx)
	if err != nil {
		return res, err
	}
	var errs []error
	for _, t := range tables {
		before, err := s.rowsBySite(ctx, t)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		dropped, mutated, err := s.enforceTable(ctx, t)
		res.PartitionsDropped += dropped
		res.PartitionsMutated += mutated
		if err != nil {
			errs = append(errs, err)
		}
		after, err := s.rowsBySite(ctx, t)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for site, n := range before {
			res.Tables = append(res.Tables, EnforcedTable{Class: t.class, Table: t.table, Site: site, RowsBefore: n, RowsAfter: after[site]})
		}
	}
	if _, ok := s.detailTable(); ok {
		d, err := s.enforceDetail(ctx)
		if err != nil {
			errs = append(errs, err)
		}
		res.Tables = append(res.Tables, d)
	}
	released, err := s.releaseExpiredHolds(ctx)
	res.HoldsReleased = released
	if err != nil {
		errs = append(errs, err)
	}
	res.Duration = time.Since(res.Started)
	runErr := errors.Join(errs...)
	if err := s.recordRun(ctx, res, runErr); err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

func (s *Store) enforceTable(ctx context.Context, t retentionTable) (dropped, mutated int, err error) {
	shortest := t.def
	ref := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, p := range t.overrides {
		if p.AddTo(ref).Before(shortest.AddTo(ref)) {
			shortest = p
		}
	}
	exp := t.expiry()
	// Only partitions old enough to hold an expired row are read.
	q := "SELECT _partition_id, countIf(" + exp + " > now()), countIf(" + exp + " <= now()) FROM " + t.table +
		" WHERE toDateTime(" + t.timeCol + ") <= now() - " + shortest.interval() + " GROUP BY _partition_id"
	rows, err := s.conn.Query(ctx, q)
	if err != nil {
		return 0, 0, fmt.Errorf("find expired partitions of %s: %w", t.table, err)
	}
	type part struct {
		id         string
		live, dead uint64
	}
	var parts []part
	for rows.Next() {
		var p part
		if err := rows.Scan(&p.id, &p.live, &p.dead); err != nil {
			rows.Close()
			return 0, 0, fmt.Errorf("find expired partitions of %s: %w", t.table, err)
		}
		if p.dead > 0 {
			parts = append(parts, p)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("find expired partitions of %s: %w", t.table, err)
	}
	for _, p := range parts {
		// The partition's rows outside the WHERE above (younger ones in the
		// same partition) may be live too.
		var live uint64
		if err := s.conn.QueryRow(ctx, "SELECT countIf("+exp+" > now()) FROM "+t.table+" WHERE _partition_id = "+chsql.Quote(p.id)).Scan(&live); err != nil {
			return dropped, mutated, fmt.Errorf("count live rows of %s partition %s: %w", t.table, p.id, err)
		}
		if live == 0 {
			if err := s.conn.Exec(ctx, "ALTER TABLE "+t.table+s.onCluster()+" DROP PARTITION ID "+chsql.Quote(p.id)); err != nil {
				return dropped, mutated, fmt.Errorf("drop expired partition %s of %s: %w", p.id, t.table, err)
			}
			dropped++
			continue
		}
		if err := s.conn.Exec(ctx, "ALTER TABLE "+t.table+s.onCluster()+" DELETE IN PARTITION ID "+chsql.Quote(p.id)+" WHERE "+exp+" <= now() SETTINGS mutations_sync = 2"); err != nil {
			return dropped, mutated, fmt.Errorf("delete expired rows of %s partition %s: %w", t.table, p.id, err)
		}
		mutated++
	}
	return dropped, mutated, nil
}

func (s *Store) rowsBySite(ctx context.Context, t retentionTable) (map[string]uint64, error) {
	siteExpr := "''"
	if t.bySite {
		siteExpr = "toString(site)"
	}
	rows, err := s.conn.Query(ctx, "SELECT "+siteExpr+" AS s, count() FROM "+t.table+" GROUP BY s")
	if err != nil {
		return nil, fmt.Errorf("count rows of %s: %w", t.table, err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	if !t.bySite {
		out[""] = 0
	}
	for rows.Next() {
		var site string
		var n uint64
		if err := rows.Scan(&site, &n); err != nil {
			return nil, fmt.Errorf("count rows of %s: %w", t.table, err)
		}
		out[site] = n
	}
	return out, rows.Err()
}

func (s *Store) recordRun(ctx context.Context, res EnforcementResult, runErr error) error {
	ctx = context.WithoutCancel(ctx)
	bt, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.db.Ops+".retention_runs (time, run_id, class, db_table, site, rows_before, rows_after, duration_ms, error)")
	if err != nil {
		return fmt.Errorf("record enforcement pass: %w", err)
	}
	defer bt.Abort() //nolint:errcheck // no-op once sent
	msg := ""
	if runErr != nil {
		msg = runErr.Error()
	}
	tables := res.Tables
	if len(tables) == 0 {
		tables = []EnforcedTable{{Class: "", Table: ""}}
	}
	for _, t := range tables {
		if err := bt.Append(res.Started, res.RunID, t.Class, t.Table, t.Site, t.RowsBefore, t.RowsAfter, uint64(res.Duration.Milliseconds()), msg); err != nil {
			return fmt.Errorf("record enforcement pass: %w", err)
		}
	}
	if err := bt.Send(); err != nil {
		return fmt.Errorf("record enforcement pass: %w", err)
	}
	return nil
}

// EnforcementMetrics are the Prometheus metrics of the enforcement pass.
type EnforcementMetrics struct {
	runs     *prometheus.CounterVec
	removed  *prometheus.CounterVec
	duration prometheus.Histogram
	last     prometheus.Gauge
	overdue  *prometheus.GaugeVec
}

// NewEnforcementMetrics registers connlog_retention_enforcement_* on reg.
func NewEnforcementMetrics(reg prometheus.Registerer) (*EnforcementMetrics, error) {
	m := &EnforcementMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connlog_retention_enforcement_runs_total", Help: "Retention enforcement passes, by result (ok, error).",
		}, []string{"result"}),
		removed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connlog_retention_enforcement_rows_removed_total", Help: "Rows removed by retention enforcement, by data class.",
		}, []string{"class"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "connlog_retention_enforcement_duration_seconds", Help: "Duration of retention enforcement passes.",
			Buckets: prometheus.ExponentialBuckets(0.05, 4, 8),
		}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "connlog_retention_enforcement_last_success_timestamp_seconds", Help: "When the last successful retention enforcement pass ended (Unix time).",
		}),
		overdue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "connlog_retention_overdue_entries",
			Help: "Entries of the retention report (table and site) holding records older than their lifetime allows, by data class, after the last enforcement pass. Anything above 0 breaks the privacy policy.",
		}, []string{"class"}),
	}
	for _, c := range []prometheus.Collector{m.runs, m.removed, m.duration, m.last, m.overdue} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register retention metrics: %w", err)
		}
	}
	for _, r := range []string{"ok", "error"} {
		m.runs.WithLabelValues(r)
	}
	for _, c := range []string{ClassConnections, ClassAccess, ClassQuarantine, ClassAudit, ClassStatistics} {
		m.removed.WithLabelValues(c)
		m.overdue.WithLabelValues(c)
	}
	return m, nil
}

func (m *EnforcementMetrics) observe(res EnforcementResult, err error) {
	if m == nil {
		return
	}
	m.duration.Observe(res.Duration.Seconds())
	for _, t := range res.Tables {
		m.removed.WithLabelValues(t.Class).Add(float64(t.Removed()))
	}
	if err != nil {
		m.runs.WithLabelValues("error").Inc()
		return
	}
	m.runs.WithLabelValues("ok").Inc()
	m.last.SetToCurrentTime()
}

// observeReport publishes how many report entries are overdue, per class.
func (m *EnforcementMetrics) observeReport(r Report) {
	if m == nil {
		return
	}
	counts := map[string]float64{}
	for _, e := range r.Entries {
		if _, ok := counts[e.Class]; !ok {
			counts[e.Class] = 0
		}
		if e.Overdue {
			counts[e.Class]++
		}
	}
	for class, n := range counts {
		m.overdue.WithLabelValues(class).Set(n)
	}
}

// RunEnforcement runs Enforce now and then every interval until ctx ends,
// logging and counting each pass (metrics registered on reg, which may be
// nil). A failed pass is logged and retried at the next tick.
func (s *Store) RunEnforcement(ctx context.Context, interval time.Duration, reg prometheus.Registerer, logger *slog.Logger) error {
	if interval <= 0 {
		interval = s.cfg.Retention.withDefaults().EnforceInterval
	}
	var m *EnforcementMetrics
	if reg != nil {
		var err error
		if m, err = NewEnforcementMetrics(reg); err != nil {
			return err
		}
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		res, err := s.Enforce(ctx)
		m.observe(res, err)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			logger.Error("retention enforcement pass failed", "run", res.RunID, "err", err)
		} else {
			// The report after the pass is what an auditor would see: alert
			// on it rather than trust the pass.
			if rep, rerr := s.RetentionReport(ctx); rerr != nil {
				logger.Warn("retention report after enforcement", "err", rerr)
			} else {
				m.observeReport(rep)
				if rep.Overdue {
					logger.Error("retention overdue: records older than their lifetime remain after enforcement", "run", res.RunID)
				}
			}
			logger.Info("retention enforcement pass", "run", res.RunID, "removed", res.Removed(),
				"partitions_dropped", res.PartitionsDropped, "partitions_mutated", res.PartitionsMutated,
				"holds_released", len(res.HoldsReleased), "duration", res.Duration)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// ReportEntry is the retention state of one table and site.
type ReportEntry struct {
	Class string `json:"class"`
	Table string `json:"table"`
	Site  string `json:"site,omitempty"`
	// Policy is the lifetime, e.g. "12mo"; "until released" for holds.
	Policy string `json:"policy"`
	// Oldest and Newest stored event times; zero when nothing is stored.
	Oldest time.Time `json:"oldest,omitzero"`
	Newest time.Time `json:"newest,omitzero"`
	Rows   uint64    `json:"rows"`
	// Bytes on disk (system.parts, active parts). For a table split by
	// site, each site gets its share by rows: BytesEstimated says so.
	Bytes          uint64 `json:"bytes_on_disk"`
	BytesEstimated bool   `json:"bytes_estimated,omitempty"`
	// LastRun is the last enforcement pass, LastRemoved what it removed.
	LastRun     time.Time `json:"last_enforcement,omitzero"`
	LastRemoved uint64    `json:"last_removed"`
	// Overdue flags a record older than its lifetime plus the grace.
	Overdue bool   `json:"overdue"`
	Detail  string `json:"detail,omitempty"`
}

// Report is the retention report: what is stored, for how long it may be,
// and whether anything outlived its lifetime.
type Report struct {
	Generated time.Time     `json:"generated"`
	Grace     string        `json:"grace"`
	Entries   []ReportEntry `json:"entries"`
	// Overdue is true when any entry is.
	Overdue bool `json:"overdue"`
}

// RetentionReport describes, per data class, table and site: the lifetime,
// the oldest and newest stored event times, rows, bytes on disk, the last
// enforcement pass and what it removed, and whether anything is older than
// its lifetime allows (plus Retention.Grace). Legal holds are listed as
// their own class: held copies live until released, and an expired hold
// whose copies are still there is overdue.
func (s *Store) RetentionReport(ctx context.Context) (Report, error) {
	now := time.Now().UTC()
	grace := s.cfg.Retention.withDefaults().Grace
	rep := Report{Generated: now, Grace: grace.String()}
	tables, err := s.allRetentionTables(ctx)
	if err != nil {
		return rep, err
	}
	for _, t := range tables {
		entries, err := s.reportTable(ctx, t, now, grace)
		if err != nil {
			return rep, err
		}
		rep.Entries = append(rep.Entries, entries...)
	}
	if t, ok := s.detailTable(); ok {
		e := ReportEntry{Class: ClassAccessDetail, Table: t.table + "#detail", Policy: t.def.String(), Detail: "query, referer, user agent, forwarded-for"}
		var oldest, newest time.Time
		if err := s.conn.QueryRow(ctx, "SELECT toDateTime64(min(event_time), 3, 'UTC'), toDateTime64(max(event_time), 3, 'UTC'), count() FROM "+t.table+" WHERE "+detailPresent).Scan(&oldest, &newest, &e.Rows); err != nil {
			return rep, fmt.Errorf("retention report of access log detail: %w", err)
		}
		if e.Rows > 0 {
			e.Oldest, e.Newest = oldest.UTC(), newest.UTC()
			if now.After(t.def.AddTo(e.Oldest).Add(grace)) {
				e.Overdue = true
				e.Detail += ": oldest detail expired on " + t.def.AddTo(e.Oldest).Format(time.DateOnly)
			}
		}
		rep.Entries = append(rep.Entries, e)
	}
	holds, err := s.reportHolds(ctx, now, grace)
	if err != nil {
		return rep, err
	}
	rep.Entries = append(rep.Entries, holds...)
	for _, e := range rep.Entries {
		rep.Overdue = rep.Overdue || e.Overdue
	}
	return rep, nil
}

func (s *Store) reportTable(ctx context.Context, t retentionTable, now time.Time, grace time.Duration) ([]ReportEntry, error) {
	siteExpr := "''"
	if t.bySite {
		siteExpr = "toString(site)"
	}
	rows, err := s.conn.Query(ctx, "SELECT "+siteExpr+" AS s, toDateTime64(min("+t.timeCol+"), 3, 'UTC'), toDateTime64(max("+t.timeCol+"), 3, 'UTC'), count() FROM "+t.table+" GROUP BY s ORDER BY s")
	if err != nil {
		return nil, fmt.Errorf("retention report of %s: %w", t.table, err)
	}
	bySite := map[string]*ReportEntry{}
	var out []*ReportEntry
	var total uint64
	for rows.Next() {
		e := &ReportEntry{Class: t.class, Table: t.table}
		if err := rows.Scan(&e.Site, &e.Oldest, &e.Newest, &e.Rows); err != nil {
			rows.Close()
			return nil, fmt.Errorf("retention report of %s: %w", t.table, err)
		}
		total += e.Rows
		bySite[e.Site] = e
		out = append(out, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("retention report of %s: %w", t.table, err)
	}
	// Sites with their own lifetime are listed even when empty.
	for site := range t.overrides {
		if bySite[site] == nil {
			e := &ReportEntry{Class: t.class, Table: t.table, Site: site}
			bySite[site] = e
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		e := &ReportEntry{Class: t.class, Table: t.table}
		bySite[""] = e
		out = append(out, e)
	}
	db, name, _ := strings.Cut(t.table, ".")
	var bytes uint64
	if err := s.conn.QueryRow(chsql.WithParams(ctx, map[string]string{"d": chsql.Escape(db), "n": chsql.Escape(name)}),
		"SELECT sum(bytes_on_disk) FROM system.parts WHERE database = {d:String} AND table = {n:String} AND active").Scan(&bytes); err != nil {
		return nil, fmt.Errorf("retention report of %s: bytes on disk: %w", t.table, err)
	}
	runs, err := s.conn.Query(chsql.WithParams(ctx, map[string]string{"tb": chsql.Escape(t.table)}),
		"SELECT site, max(time), argMax(greatest(toInt64(rows_before) - toInt64(rows_after), 0), time) FROM "+s.db.Ops+".retention_runs WHERE db_table = {tb:String} GROUP BY site")
	if err != nil {
		return nil, fmt.Errorf("retention report of %s: last runs: %w", t.table, err)
	}
	for runs.Next() {
		var site string
		var at time.Time
		var removed int64
		if err := runs.Scan(&site, &at, &removed); err != nil {
			runs.Close()
			return nil, fmt.Errorf("retention report of %s: last runs: %w", t.table, err)
		}
		if e := bySite[site]; e != nil {
			e.LastRun, e.LastRemoved = at.UTC(), uint64(removed)
		}
	}
	runs.Close()
	res := make([]ReportEntry, 0, len(out))
	for _, e := range out {
		p := t.policy(e.Site)
		e.Policy = p.String()
		switch {
		case total > 0 && len(out) > 1:
			e.Bytes, e.BytesEstimated = uint64(float64(bytes)*float64(e.Rows)/float64(total)), true
		default:
			e.Bytes = bytes
		}
		if e.Rows > 0 {
			e.Oldest, e.Newest = e.Oldest.UTC(), e.Newest.UTC()
			if limit := p.AddTo(e.Oldest).Add(grace); now.After(limit) {
				e.Overdue = true
				e.Detail = "oldest record expired on " + p.AddTo(e.Oldest).Format(time.DateOnly)
			}
		} else {
			e.Oldest, e.Newest = time.Time{}, time.Time{}
		}
		res = append(res, *e)
	}
	slices.SortFunc(res, func(a, b ReportEntry) int { return strings.Compare(a.Site, b.Site) })
	return res, nil
}

func (s *Store) reportHolds(ctx context.Context, now time.Time, grace time.Duration) ([]ReportEntry, error) {
	hs, err := s.ListHolds(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := s.conn.Query(ctx, "SELECT hold_id, min(event_time), max(event_time), count() FROM "+s.HeldRecordsTable()+" GROUP BY hold_id")
	if err != nil {
		return nil, fmt.Errorf("retention report of holds: %w", err)
	}
	type held struct {
		oldest, newest time.Time
		n              uint64
	}
	stored := map[string]held{}
	for rows.Next() {
		var id string
		var h held
		if err := rows.Scan(&id, &h.oldest, &h.newest, &h.n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("retention report of holds: %w", err)
		}
		stored[id] = h
	}
	rows.Close()
	var out []ReportEntry
	for _, h := range hs {
		st := stored[h.ID]
		delete(stored, h.ID)
		e := ReportEntry{Class: ClassHolds, Table: s.HeldRecordsTable(), Site: h.Selector.Site, Rows: st.n,
			Policy: "until released, expires " + h.Expires.UTC().Format(time.DateOnly), Detail: "hold " + h.ID + " (" + h.Reference + ")"}
		if st.n > 0 {
			e.Oldest, e.Newest = st.oldest.UTC(), st.newest.UTC()
		}
		if !h.Released.IsZero() {
			e.Policy = "released " + h.Released.UTC().Format(time.DateOnly)
		}
		if st.n > 0 && (!h.Released.IsZero() || now.After(h.Expires.Add(grace))) {
			e.Overdue = true
			e.Detail += ": copies outlive the hold"
		}
		out = append(out, e)
	}
	for id, st := range stored {
		out = append(out, ReportEntry{Class: ClassHolds, Table: s.HeldRecordsTable(), Rows: st.n, Oldest: st.oldest.UTC(), Newest: st.newest.UTC(),
			Policy: "none", Overdue: true, Detail: "copies of unregistered hold " + id})
	}
	return out, nil
}
