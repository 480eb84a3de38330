package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connlog/connlog/store/internal/chsql"
)

// Enforcer applies the configured lifetimes to the tables (TTLs), runs the
// enforcement pass that removes what expired, and reports what is stored
// against each lifetime. It is safe for concurrent use.
type Enforcer struct {
	conn    driver.Conn
	db      chsql.Databases
	cfg     Config
	cluster string
	holds   Holds
	logger  *slog.Logger
}

// Holds is what enforcement and the report need from the legal holds.
type Holds interface {
	// ReleaseExpired releases the active holds whose expiry has passed and
	// returns their ids.
	ReleaseExpired(ctx context.Context) ([]string, error)
	// List returns every hold, active and released.
	List(ctx context.Context) ([]Hold, error)
}

// Hold is a legal hold as the retention report sees it.
type Hold struct {
	ID        string
	Reference string
	Site      string // "" for all sites
	Expires   time.Time
	// Released is zero while the hold is active.
	Released time.Time
}

// NewEnforcer returns the Enforcer of the databases db on conn, with the
// lifetimes of cfg; cluster is the ClickHouse cluster ("" for none), as in
// the store's configuration.
func NewEnforcer(conn driver.Conn, db chsql.Databases, cfg Config, cluster string, holds Holds, logger *slog.Logger) *Enforcer {
	return &Enforcer{conn: conn, db: db, cfg: cfg, cluster: cluster, holds: holds, logger: logger}
}

func (s *Enforcer) onCluster() string { return chsql.OnCluster(s.cluster) }

// heldRecords is the table of the held copies of connection records.
func (s *Enforcer) heldRecords() string { return s.db.Connections + ".held_records" }

// statsTables returns the audience statistics tables that exist (created
// by their own migration, 0004): the daily aggregates live for the
// configured statistics lifetime; the hourly ones keep the lifetime their
// migration gave them (8 weeks) and are only reported and enforced.
func (s *Enforcer) statsTables(ctx context.Context) ([]Table, error) {
	r := s.cfg.WithDefaults()
	known := []Table{
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
	var out []Table
	for _, t := range known {
		if exists[t.table] {
			out = append(out, t)
		}
	}
	return out, rows.Err()
}

func (s *Enforcer) allRetentionTables(ctx context.Context) ([]Table, error) {
	st, err := s.statsTables(ctx)
	if err != nil {
		return nil, err
	}
	return append(Tables(s.cfg, s.db), st...), nil
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
func (s *Enforcer) ApplyRetention(ctx context.Context) ([]RetentionChange, error) {
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
		want := t.Expiry()
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

func (s *Enforcer) recordChange(ctx context.Context, c RetentionChange) error {
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
func (s *Enforcer) detailTable() (t Table, ok bool) {
	p := s.cfg.AccessDetail
	return Table{class: ClassAccessDetail, table: s.db.Access + ".access_log", timeCol: "event_time", def: p}, !p.IsZero()
}

// detailPresent is true for an access-log row whose detail is not blank.
const detailPresent = "(query != '' OR referer != '' OR user_agent != '' OR forwarded_for != '')"

// applyDetailTTL sets (or removes) the column TTL of the access log's
// detail columns. The change is recorded under the table name + "#detail".
func (s *Enforcer) applyDetailTTL(ctx context.Context, actor string) (*RetentionChange, error) {
	t, ok := s.detailTable()
	want := ""
	if ok {
		want = t.Expiry()
	}
	key := s.db.Access + ".access_log#detail"
	last, err := s.lastAppliedTTL(ctx, key)
	if err != nil || last == want {
		return nil, err
	}
	for _, col := range AccessDetailColumns() {
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
func (s *Enforcer) enforceDetail(ctx context.Context) (EnforcedTable, error) {
	t, _ := s.detailTable()
	res := EnforcedTable{Class: ClassAccessDetail, Table: t.table + "#detail"}
	exp := t.Expiry()
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
func (s *Enforcer) RetentionChanges(ctx context.Context) ([]RetentionChange, error) {
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

func (s *Enforcer) lastAppliedTTL(ctx context.Context, table string) (string, error) {
	ctx = chsql.WithParams(ctx, map[string]string{"tb": chsql.Escape(table)})
	var ttl string
	err := s.conn.QueryRow(ctx, "SELECT argMax(new_ttl, time) FROM "+s.db.Ops+".retention_changes WHERE db_table = {tb:String}").Scan(&ttl)
	if err != nil {
		return "", fmt.Errorf("read last lifetime of %s: %w", table, err)
	}
	return ttl, nil
}

// currentTTL extracts the TTL clause from the table's engine description.
func (s *Enforcer) currentTTL(ctx context.Context, table string) (string, error) {
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
func (s *Enforcer) Enforce(ctx context.Context) (EnforcementResult, error) {
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
	released, err := s.holds.ReleaseExpired(ctx)
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

func (s *Enforcer) enforceTable(ctx context.Context, t Table) (dropped, mutated int, err error) {
	shortest := t.def
	ref := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, p := range t.overrides {
		if p.AddTo(ref).Before(shortest.AddTo(ref)) {
			shortest = p
		}
	}
	exp := t.Expiry()
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

func (s *Enforcer) rowsBySite(ctx context.Context, t Table) (map[string]uint64, error) {
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

func (s *Enforcer) recordRun(ctx context.Context, res EnforcementResult, runErr error) error {
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
func (s *Enforcer) RunEnforcement(ctx context.Context, interval time.Duration, reg prometheus.Registerer, logger *slog.Logger) error {
	if interval <= 0 {
		interval = s.cfg.WithDefaults().EnforceInterval
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
