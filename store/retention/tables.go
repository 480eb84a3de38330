package retention

import (
	"fmt"
	"slices"
	"strings"

	"github.com/connlog/connlog/store/internal/chsql"
)

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

// AccessDetailColumns returns the access log's detail columns, which the
// column TTL of Config.AccessDetail blanks before the row expires, in the
// order of the TTL statements (and of manifest hash version 1).
func AccessDetailColumns() []string {
	return []string{"query", "referer", "user_agent", "forwarded_for"}
}

// Table is one table under a lifetime.
type Table struct {
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

// Name is the table, as db.table.
func (t Table) Name() string { return t.table }

// Policy returns the lifetime of site's rows.
func (t Table) Policy(site string) Period {
	if p, ok := t.overrides[site]; ok {
		return p
	}
	return t.def
}

// Expiry is the SQL expression of the moment a row expires.
func (t Table) Expiry() string {
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

// Tables are the tables whose lifetime the configuration sets, with their
// policies, in the databases db: connection records, access log,
// quarantine, audit trail (the statistics tables are found in the engine:
// see Enforcer).
func Tables(cfg Config, db chsql.Databases) []Table {
	r := cfg.WithDefaults()
	conn, acc := map[string]Period{}, map[string]Period{}
	for _, s := range r.Sites {
		if !s.Connections.IsZero() {
			conn[s.Site] = s.Connections
		}
		if !s.Access.IsZero() {
			acc[s.Site] = s.Access
		}
	}
	return []Table{
		{class: ClassConnections, table: db.Connections + ".connection_records", timeCol: "event_time", bySite: true, def: r.Connections, overrides: conn, managed: true},
		{class: ClassAccess, table: db.Access + ".access_log", timeCol: "event_time", bySite: true, def: r.Access, overrides: acc, managed: true},
		{class: ClassQuarantine, table: db.Ops + ".quarantine", timeCol: "received_at", def: r.Quarantine, managed: true},
		{class: ClassAudit, table: db.Ops + ".audit", timeCol: "time", def: r.Audit, managed: true},
	}
}
