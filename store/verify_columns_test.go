package store_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/connlog/connlog/store"
)

// storedColumn is a column as the engine describes it.
type storedColumn struct {
	name, typ string
	key       bool // in the partition or sorting key: ALTER UPDATE refuses it
}

func storedColumns(t *testing.T, st *store.Store, table string) []storedColumn {
	t.Helper()
	db := st.Databases()
	full := map[string]string{
		"access_log":         db.Access + ".access_log",
		"connection_records": db.Connections + ".connection_records",
		"quarantine":         db.Ops + ".quarantine",
	}[table]
	if full == "" {
		t.Fatalf("no database known for protected table %s: add it here", table)
	}
	database, name, _ := strings.Cut(full, ".")
	rows, err := st.Conn().Query(t.Context(), "SELECT name, type, is_in_partition_key OR is_in_sorting_key FROM system.columns WHERE database = '"+database+"' AND table = '"+name+"' ORDER BY position")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []storedColumn
	for rows.Next() {
		var c storedColumn
		var key uint8
		if err := rows.Scan(&c.name, &c.typ, &key); err != nil {
			t.Fatal(err)
		}
		c.key = key != 0
		out = append(out, c)
	}
	if len(out) == 0 {
		t.Fatalf("table %s has no columns", full)
	}
	return out
}

// A column added to a protected table must be added to the hash (a new
// hash version): the engine's column list is the reference.
func TestEveryStoredColumnIsUnderTheManifestHash(t *testing.T) {
	st, _ := openConfigured(t, nil)
	hashed, unhashed := store.HashedColumns()
	if len(hashed) != len(store.ManifestTables) {
		t.Fatalf("hashed tables %v, manifests are written for %v", hashed, store.ManifestTables)
	}
	for _, table := range store.ManifestTables {
		var want []string
		for _, c := range storedColumns(t, st, table) {
			if !unhashed[c.name] {
				want = append(want, c.name)
			}
		}
		got := slices.Clone(hashed[table])
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: hash version 2 covers %v, the table stores %v (all but %v must be covered)", table, got, want, unhashed)
		}
	}
}

// The table descriptions the writer and the hash read (tables.go) say what
// the migrations created: every stored column, with its type.
func TestTableDescriptionsMatchTheSchema(t *testing.T) {
	st := openStore(t)
	described := store.TableColumns()
	for _, table := range store.ManifestTables {
		stored := map[string]string{}
		for _, c := range storedColumns(t, st, table) {
			typ := c.typ
			if inner, ok := strings.CutPrefix(typ, "LowCardinality("); ok {
				typ = strings.TrimSuffix(inner, ")")
			}
			stored[c.name] = typ
		}
		for name, typ := range stored {
			if d, ok := described[table][name]; !ok {
				t.Errorf("%s.%s (%s) is stored but not described", table, name, typ)
			} else if d != typ {
				t.Errorf("%s.%s is %s in the schema, %s in its description", table, name, typ, d)
			}
		}
		for name := range described[table] {
			if _, ok := stored[name]; !ok {
				t.Errorf("%s.%s is described but not in the schema", table, name)
			}
		}
	}
}

// changeExpr returns an expression of c's type whose value differs from
// the column's.
func changeExpr(t *testing.T, c storedColumn) string {
	switch typ := c.typ; {
	case typ == "String" || typ == "LowCardinality(String)":
		return "concat(" + c.name + ", 'x')"
	case strings.HasPrefix(typ, "Enum8("):
		return "if(" + c.name + " = 'delete', 'read', 'delete')"
	case typ == "Bool":
		return "NOT " + c.name
	case strings.HasPrefix(typ, "UInt") || strings.HasPrefix(typ, "Int"):
		return c.name + " + 1"
	case strings.HasPrefix(typ, "DateTime64"):
		return c.name + " + INTERVAL 1 SECOND"
	case typ == "IPv6":
		return "toIPv6('2001:db8::99')"
	}
	t.Fatalf("column %s: no change known for type %s", c.name, c.typ)
	return ""
}

// Every hashed column, one at a time: a row of one batch changed in that
// column only, and verify names that batch. Each column gets a batch of its
// own (one store, one verify). Key columns cannot be updated in place
// (ClickHouse refuses ALTER UPDATE on them); they are changed the only way
// there is: the row deleted and inserted again with the new value.
func TestVerifyNamesTheBatchAfterAnUpdateOfEachColumn(t *testing.T) {
	st, _ := openConfigured(t, nil)
	db := st.Databases()
	full := map[string]string{"access_log": db.Access + ".access_log", "connection_records": db.Connections + ".connection_records", "quarantine": db.Ops + ".quarantine"}
	_, unhashed := store.HashedColumns()
	type target struct {
		table string
		col   storedColumn
		off   int64
	}
	byBatch := map[string]target{}
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	var targets []target
	for _, table := range store.ManifestTables {
		for _, c := range storedColumns(t, st, table) {
			if unhashed[c.name] {
				continue
			}
			off := int64(10 * (len(targets) + 1))
			h := hit(fmt.Sprintf("203.0.113.%d", len(targets)+1), 40000, base.Add(time.Duration(off)*time.Second), "POST", "/form", off)
			h.ForwardedFor, h.ShipperHost, h.LogFile, h.OptOut = "198.51.100.7", "web1", "/var/log/nginx/access.log", false
			id := fmt.Sprintf("nginx/1/%d-%d", off, off+1)
			b := store.Batch{ID: id, Hits: []store.Hit{h}, Quarantine: []store.Quarantined{{Source: store.Source{Topic: "nginx", Partition: 1, Offset: off + 1}, Received: h.Ingested, Reason: "bad line", Raw: []byte("garbage")}}}
			if err := st.Write(t.Context(), b); err != nil {
				t.Fatal(err)
			}
			tg := target{table, c, off}
			if table == "quarantine" {
				tg.off = off + 1
			}
			targets = append(targets, tg)
			byBatch[id] = tg
		}
	}
	if rep, err := st.Verify(t.Context()); err != nil || !rep.OK() {
		t.Fatalf("before any change: %v %+v", err, rep.Problems)
	}
	exec := func(q string) {
		t.Helper()
		if err := st.Conn().Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for i, tg := range targets {
		where := fmt.Sprintf("kafka_topic = 'nginx' AND kafka_partition = 1 AND kafka_offset = %d", tg.off)
		expr := changeExpr(t, tg.col)
		if !tg.col.key {
			exec("ALTER TABLE " + full[tg.table] + " UPDATE " + tg.col.name + " = " + expr + " WHERE " + where + " SETTINGS mutations_sync = 2")
			continue
		}
		tmp := fmt.Sprintf("%s.changed_%d", db.Ops, i)
		exec("CREATE TABLE " + tmp + " AS " + full[tg.table] + " ENGINE = Memory")
		exec("INSERT INTO " + tmp + " SELECT * REPLACE (" + expr + " AS " + tg.col.name + ") FROM " + full[tg.table] + " WHERE " + where)
		exec("ALTER TABLE " + full[tg.table] + " DELETE WHERE " + where + " SETTINGS mutations_sync = 2")
		exec("INSERT INTO " + full[tg.table] + " SELECT * FROM " + tmp)
		exec("DROP TABLE " + tmp)
	}
	rep, err := st.Verify(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{}
	for _, p := range rep.Problems {
		if p.BatchID == "" {
			// rows moved out of every batch's range (an offset changed)
			if p.Kind != store.ProblemAdded {
				t.Errorf("problem naming no batch: %s", p)
			}
			continue
		}
		tg, ok := byBatch[p.BatchID]
		if !ok || tg.table != p.Table {
			t.Errorf("problem about an unchanged table or batch: %s", p)
			continue
		}
		if !strings.Contains(p.String(), p.BatchID) {
			t.Errorf("problem %q does not print its batch", p)
		}
		named[p.BatchID] = true
	}
	for id, tg := range byBatch {
		if !named[id] {
			t.Errorf("%s.%s changed in batch %s: verify does not name the batch", tg.table, tg.col.name, id)
		}
	}
	t.Logf("%d columns changed, %d problems", len(targets), len(rep.Problems))
}
