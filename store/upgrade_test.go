package store_test

import (
	"strings"
	"testing"

	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/storetest"
)

// TestUpgradeFromTheFirstSchemaKeepsRows builds a store as connlog 0001
// left it (only the first migration, recorded), with rows, and upgrades it.
func TestUpgradeFromTheFirstSchemaKeepsRows(t *testing.T) {
	ctx := t.Context()
	cfg := storetest.Config(t)
	st := storetest.Open(t, cfg)
	migs, err := store.Migrations(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if migs[0].Version != 1 {
		t.Fatalf("first migration is %d", migs[0].Version)
	}
	db := st.Databases()
	// Version 1 created the operations database at bootstrap.
	if err := st.Conn().Exec(ctx, "CREATE DATABASE "+db.Ops); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range migs[0].Statements {
		if err := st.Conn().Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Conn().Exec(ctx, "CREATE TABLE "+db.Ops+".schema_migrations (version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC')) ENGINE = ReplacingMergeTree ORDER BY version"); err != nil {
		t.Fatal(err)
	}
	if err := st.Conn().Exec(ctx, "INSERT INTO "+db.Ops+".schema_migrations VALUES (1, 'initial', '"+migs[0].Checksum+"', now64(3))"); err != nil {
		t.Fatal(err)
	}
	// Rows as version 1 wrote them (its columns only).
	for _, q := range []string{
		"INSERT INTO " + db.Access + ".access_log (event_time, ingested_at, client_ip, client_port, site, method, path, status, kafka_topic, kafka_partition, kafka_offset) SELECT now64(3) - toIntervalHour(number), now64(3), toIPv6('::ffff:192.0.2.' || toString(number)), 1000 + number, 'www.example.org', 'GET', '/p' || toString(number), 200, 'nginx', 0, number FROM numbers(50)",
		"INSERT INTO " + db.Connections + ".connection_records (event_time, ingested_at, client_ip, client_port, site, operation, status, kafka_topic, kafka_partition, kafka_offset) SELECT now64(3) - toIntervalHour(number), now64(3), toIPv6('::ffff:192.0.2.' || toString(number)), 1000 + number, 'www.example.org', 'read', 200, 'nginx', 0, number FROM numbers(50)",
		"INSERT INTO " + db.Ops + ".audit (time, actor, role, endpoint, status, outcome) VALUES (now64(3), 'alice', 'analyst', '/v1/access', 200, 'ok')",
	} {
		if err := st.Conn().Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	checksum := func() string {
		var s string
		if err := st.Conn().QueryRow(ctx, "SELECT toString(groupBitXor(cityHash64(client_ip, client_port, event_time, path))) FROM "+db.Access+".access_log").Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := checksum()

	applied, err := st.Migrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != len(migs)-1 || applied[0] != 2 && applied[0] != 3 {
		t.Errorf("upgrade applied %v, want every migration after 1", applied)
	}
	if v, _ := st.SchemaVersion(ctx); v != migs[len(migs)-1].Version {
		t.Errorf("schema version %d after upgrade", v)
	}
	if n := count(t, st, "SELECT count() FROM "+db.Access+".access_log"); n != 50 {
		t.Errorf("access log has %d rows after upgrade, want 50", n)
	}
	if n := count(t, st, "SELECT count() FROM "+db.Connections+".connection_records"); n != 50 {
		t.Errorf("connection records: %d rows after upgrade, want 50", n)
	}
	if n := count(t, st, "SELECT count() FROM "+db.Ops+".audit"); n != 1 {
		t.Errorf("audit: %d rows after upgrade, want 1", n)
	}
	if after := checksum(); after != before {
		t.Errorf("access log content changed by the upgrade: %s → %s", before, after)
	}
	for _, table := range []string{db.Connections + ".held_records", db.Ops + ".holds", db.Ops + ".manifests", db.Ops + ".retention_runs", db.Ops + ".retention_changes", db.Ops + ".instance_keys"} {
		count(t, st, "SELECT count() FROM "+table)
	}
	// The upgraded store works: lifetimes, report, verify of pre-manifest rows.
	if _, err := st.ApplyRetention(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := st.RetentionReport(ctx)
	if err != nil || rep.Overdue {
		t.Fatalf("report after upgrade: %+v %v", rep, err)
	}
	vr, err := st.Verify(ctx)
	if err != nil || !vr.OK() {
		t.Fatalf("verify after upgrade: %+v %v", vr, err)
	}
	if !strings.HasPrefix(db.Ops, cfg.DatabasePrefix) {
		t.Fatal(db.Ops)
	}
}
