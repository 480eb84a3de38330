package store_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/connlog/connlog/store"
)

// formatQuery parses sql with the embedded engine's own parser: an error
// means ClickHouse would reject the statement's syntax.
func formatQuery(t *testing.T, st *store.Store, sql string) string {
	t.Helper()
	var out string
	esc := strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\n", `\n`).Replace(sql)
	ctx := clickhouse.Context(t.Context(), clickhouse.WithParameters(clickhouse.Parameters{"q": esc}))
	if err := st.Conn().QueryRow(ctx, "SELECT formatQuery({q:String})").Scan(&out); err != nil {
		t.Errorf("ClickHouse does not parse:\n%s\n%v", sql, err)
	}
	return out
}

func TestClusterDDLIsReplicatedOnClusterAndParses(t *testing.T) {
	st, _ := openConfigured(t, nil)
	cfg := store.DefaultConfig()
	cfg.Cluster = "connlog"
	migs, err := store.Migrations(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var creates, replicated, distributed int
	for _, m := range migs {
		for _, stmt := range m.Statements {
			up := strings.ToUpper(stmt)
			switch {
			case strings.HasPrefix(up, "CREATE") || strings.HasPrefix(up, "ALTER") || strings.HasPrefix(up, "DROP"):
				if !strings.Contains(stmt, " ON CLUSTER `connlog`") {
					t.Errorf("migration %d: not ON CLUSTER:\n%s", m.Version, stmt)
				}
			}
			if strings.Contains(stmt, "non_replicated_deduplication_window") {
				t.Errorf("migration %d keeps the non-replicated window:\n%s", m.Version, stmt)
			}
			if strings.HasPrefix(up, "CREATE TABLE") {
				creates++
			}
			if regexp.MustCompile(`ENGINE = Replicated\w*MergeTree\('/clickhouse/tables/\{shard\}/\{database\}/\{table\}', '\{replica\}'`).MatchString(stmt) {
				replicated++
			}
			if strings.Contains(stmt, "ENGINE = Distributed('connlog', ") {
				distributed++
			}
			if strings.Contains(stmt, "ENGINE = MergeTree") || strings.Contains(stmt, "ENGINE = ReplacingMergeTree") {
				t.Errorf("migration %d: unreplicated engine left:\n%s", m.Version, stmt)
			}
			formatQuery(t, st, stmt)
		}
	}
	if replicated == 0 || distributed != replicated || creates != replicated*2+countNonMergeTree(migs) {
		t.Errorf("creates %d, replicated %d, distributed %d", creates, replicated, distributed)
	}
	// The version argument of ReplacingMergeTree(version) is kept.
	out := store.ClusterStatements("c1", []string{"CREATE TABLE IF NOT EXISTS d.t\n(\n    id String,\n    version UInt64\n)\nENGINE = ReplacingMergeTree(version)\nORDER BY id"})
	if !strings.Contains(out[0], "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)") {
		t.Errorf("ReplacingMergeTree(version): %s", out[0])
	}
	formatQuery(t, st, out[0])
	formatQuery(t, st, out[1])
	// Unchanged without a cluster.
	plain, _ := store.Migrations(store.DefaultConfig())
	if strings.Contains(strings.Join(plain[0].Statements, "\n"), "ON CLUSTER") {
		t.Error("ON CLUSTER without a cluster")
	}
}

// countNonMergeTree counts the CREATE TABLE statements of engines that get
// no Distributed companion (Null).
func countNonMergeTree(migs []store.Migration) int {
	n := 0
	for _, m := range migs {
		for _, s := range m.Statements {
			if strings.HasPrefix(strings.ToUpper(s), "CREATE TABLE") && !strings.Contains(s, "MergeTree(") && !strings.Contains(s, "Distributed(") {
				n++
			}
		}
	}
	return n
}

func TestRoleUsersAreSeparatedAndTheirSQLParses(t *testing.T) {
	st, _ := openConfigured(t, nil)
	cfg := store.DefaultConfig()
	cfg.RoleUsers = store.RoleUsers{Ingest: "i-secret", Analyst: "a'secret\\", Officer: "o", Stats: "s", Auditor: "u"}
	db := st.Databases()
	_ = db
	users := map[string][]string{}
	for _, u := range store.RoleUsersFor(cfg) {
		users[u.Role] = u.Grants
	}
	// The access-log reader reads the access log and nothing else.
	if got := strings.Join(users["analyst"], "\n"); got != "GRANT SELECT ON connlog_access.*" {
		t.Errorf("analyst grants: %s", got)
	}
	for role, grants := range users {
		for _, g := range grants {
			if role != "ingest" && !strings.HasPrefix(g, "GRANT SELECT") {
				t.Errorf("%s may do more than read: %s", role, g)
			}
			switch role {
			case "analyst", "stats":
				if strings.Contains(g, "connlog_connections") || strings.Contains(g, "connlog_ops") {
					t.Errorf("%s reaches another class: %s", role, g)
				}
			case "officer":
				if strings.Contains(g, "connlog_access") || strings.Contains(g, ".audit") || strings.Contains(g, "connlog_stats") {
					t.Errorf("officer reaches another class: %s", g)
				}
			case "auditor":
				if strings.Contains(g, "connlog_access") || strings.Contains(g, "connlog_connections") || strings.Contains(g, "connlog_stats") {
					t.Errorf("auditor reaches records: %s", g)
				}
			case "ingest":
				if g == "GRANT SELECT ON connlog_access.*" || g == "GRANT SELECT ON connlog_connections.*" {
					t.Errorf("ingest reads whole records: %s", g)
				}
			}
			// The shared daily visitor keys would link visitor hashes
			// back to addresses: nobody but connlog's ingest user reads them.
			if role != "ingest" && (strings.HasSuffix(g, " ON connlog_ops.*") || strings.Contains(g, "visitor_keys")) {
				t.Errorf("%s can read the visitor keys: %s", role, g)
			}
		}
	}
	sql := store.RoleSQL(cfg)
	if len(sql) == 0 {
		t.Fatal("no role SQL")
	}
	for _, s := range sql {
		formatQuery(t, st, s)
	}
	if !strings.Contains(strings.Join(sql, "\n"), `BY 'a\'secret\\'`) {
		t.Errorf("password not quoted: %q", sql)
	}
	cfg.Cluster = "connlog"
	for _, s := range store.RoleSQL(cfg) {
		if !strings.Contains(s, "ON CLUSTER") {
			t.Errorf("cluster role SQL without ON CLUSTER: %s", s)
		}
		formatQuery(t, st, s)
	}
	// chDB has no access management: ApplyRoles cannot run there; the API
	// enforces the separation in embedded mode.
	if err := st.Conn().Exec(t.Context(), fmt.Sprintf("CREATE USER IF NOT EXISTS %s_probe", strings.TrimSuffix(db.Ops, "_ops"))); err == nil {
		t.Log("this engine supports CREATE USER")
	}
}

func TestNoStatisticsColumnCanHoldAnAddress(t *testing.T) {
	st, _ := openConfigured(t, nil)
	db := st.Databases()
	rows, err := st.Conn().Query(t.Context(), "SELECT table, name, type FROM system.columns WHERE database = '"+db.Stats+"'")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	suspicious := regexp.MustCompile(`(?i)(^|_)(ip|ips|addr|address|network|client|peer|forwarded|user_agent|ua|referer)($|_)`)
	for rows.Next() {
		var table, name, typ string
		if err := rows.Scan(&table, &name, &typ); err != nil {
			t.Fatal(err)
		}
		n++
		if strings.Contains(typ, "IPv4") || strings.Contains(typ, "IPv6") || strings.Contains(typ, "FixedString(16)") || strings.Contains(typ, "UInt128") {
			t.Errorf("%s.%s is %s: it can hold an address", table, name, typ)
		}
		if suspicious.MatchString(name) {
			t.Errorf("%s.%s: the name says it holds an address or a raw header", table, name)
		}
	}
	if n == 0 {
		t.Skip("no statistics tables in this build")
	}
}

func TestForRoleConnectsAsTheRoleUser(t *testing.T) {
	cfg := store.DefaultConfig()
	cfg.Addrs = []string{"ch-a:9000"}
	cfg.Username, cfg.Password = "admin", "x"
	cfg.RoleUsers.Analyst = "analyst-pw"
	a, ok := cfg.ForRole("analyst")
	if !ok || a.Username != "connlog_analyst" || a.Password != "analyst-pw" {
		t.Errorf("analyst: %v %+v", ok, a.Username)
	}
	if o, ok := cfg.ForRole("officer"); ok || o.Username != "admin" {
		t.Errorf("officer without password: %v %s", ok, o.Username)
	}
	cfg.Addrs = nil
	if _, ok := cfg.ForRole("analyst"); ok {
		t.Error("embedded mode has no role users")
	}
}
