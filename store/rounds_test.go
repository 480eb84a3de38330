package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/connlog/connlog/store"
)

// partitionBatch is a batch of n hits of one partition, offsets from first,
// with one quarantined message after them.
func partitionBatch(partition int32, first int64, n int, at time.Time) store.Batch {
	b := store.Batch{ID: fmt.Sprintf("nginx/%d/%d-%d/test", partition, first, first+int64(n))}
	for i := range n {
		h := hit(fmt.Sprintf("203.0.113.%d", i%250+1), uint16(1000+i), at.Add(time.Duration(i)*time.Millisecond), "GET", "/", first+int64(i))
		h.Source.Partition = partition
		b.Hits = append(b.Hits, h)
	}
	b.Quarantine = []store.Quarantined{{
		Source: store.Source{Topic: "nginx", Partition: partition, Offset: first + int64(n)}, Received: at,
		Reason: "status: not a number", Raw: []byte("garbage line"),
	}}
	return b
}

// countBy returns how many rows, and how many distinct offsets, table holds
// for one partition.
func countBy(t *testing.T, st *store.Store, table string, partition int32) (rows, offsets uint64) {
	t.Helper()
	if err := st.Conn().QueryRow(t.Context(), fmt.Sprintf("SELECT count(), uniqExact(kafka_offset) FROM %s WHERE kafka_partition = %d", table, partition)).Scan(&rows, &offsets); err != nil {
		t.Fatal(err)
	}
	return rows, offsets
}

// TestRoundThenRebuiltBatchesStoreEachRowOnce writes the batches of two
// partitions in rounds, as ingest does, then writes each of them again
// alone as rebuilt after a crash: a, of which a round stored only some rows
// and no manifest (the process died mid-insert), and b, which a round
// stored whole with its manifests (the process died before committing).
// The rebuilt batches must add exactly the missing rows to every table and
// the missing manifests, no row or manifest twice, and leave every chain
// verifiable; a retried round must store nothing twice.
func TestRoundThenRebuiltBatchesStoreEachRowOnce(t *testing.T) {
	st, sg := openConfigured(t, nil)
	unsigned := reopen(t, st, func(*store.Config) {}) // the dead process's inserts, before their manifests
	at := time.Now().UTC().Truncate(time.Millisecond).Add(-time.Hour)
	a, b := partitionBatch(0, 0, 300, at), partitionBatch(1, 0, 200, at)
	c, d := partitionBatch(2, 0, 50, at), partitionBatch(3, 0, 50, at)

	partial := a
	partial.Hits, partial.Quarantine = a.Hits[:120], nil
	if err := unsigned.Write(t.Context(), partial, c); err != nil {
		t.Fatal(err)
	}
	for range 2 { // a retried round is stored once
		if err := st.Write(t.Context(), b, d); err != nil {
			t.Fatal(err)
		}
	}
	// A row of an earlier incarnation of partition 0's log, at an offset of
	// a but with another message time: not a's row.
	old := a.Hits[200]
	old.Ingested = old.Ingested.Add(-24 * time.Hour)
	if err := st.Write(t.Context(), store.Batch{ID: "nginx/0/200-200/old", Hits: []store.Hit{old}}); err != nil {
		t.Fatal(err)
	}

	for _, rb := range []store.Batch{a, b, c, d} {
		rb.Rebuilt = true
		if err := st.Write(t.Context(), rb); err != nil {
			t.Fatal(err)
		}
	}
	db := st.Databases()
	for _, tc := range []struct {
		table     string
		partition int32
		rows      uint64
		offsets   uint64
	}{
		{db.Access + ".access_log", 0, 301, 300}, // 300 of a, and the earlier incarnation's
		{db.Connections + ".connection_records", 0, 301, 300},
		{db.Ops + ".quarantine", 0, 1, 1},
		{db.Access + ".access_log", 1, 200, 200},
		{db.Connections + ".connection_records", 1, 200, 200},
		{db.Ops + ".quarantine", 1, 1, 1},
		{db.Access + ".access_log", 2, 50, 50},
		{db.Ops + ".quarantine", 2, 1, 1},
		{db.Access + ".access_log", 3, 50, 50},
		{db.Connections + ".connection_records", 3, 50, 50},
	} {
		rows, offsets := countBy(t, st, tc.table, tc.partition)
		if rows != tc.rows || offsets != tc.offsets {
			t.Errorf("%s, partition %d: %d rows at %d offsets, want %d at %d", tc.table, tc.partition, rows, offsets, tc.rows, tc.offsets)
		}
	}

	manifests := count(t, st, "SELECT count() FROM "+db.Ops+".manifests WHERE batch_id IN ('"+a.ID+"', '"+b.ID+"', '"+c.ID+"', '"+d.ID+"')")
	if manifests != 12 { // access, connections and quarantine of each, once
		t.Errorf("%d manifests name a, b, c or d, want 12", manifests)
	}
	if names := count(t, st, "SELECT uniqExact(batch_id) FROM "+db.Ops+".manifests WHERE kafka_partition = 1"); names != 1 {
		t.Errorf("b's manifests carry %d batch ids, want b's own", names)
	}
	rep, err := st.Verify(t.Context(), sg.Public())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) > 0 || rep.Rows != 2*601+4 { // access and connections, quarantine
		t.Errorf("verify: %d rows checked, problems %+v; want 1206 rows, none", rep.Rows, rep.Problems)
	}
}

// TestPreparedRoundsStoreWhatTheBatchesHold writes rounds of batches
// prepared ahead (Store.Prepare), as ingest does: the first as prepared,
// whose blocks go in one after the other, the second with a batch changed
// after it was prepared. Every table must hold exactly the batches' rows
// (the changed batch's as it is at the write, not as prepared), a round
// must be one part per table and day, a retried round must store nothing
// twice, and the manifests hashed ahead must verify.
func TestPreparedRoundsStoreWhatTheBatchesHold(t *testing.T) {
	for _, native := range []bool{true, false} {
		t.Run(fmt.Sprintf("native=%v", native), func(t *testing.T) { testPreparedRounds(t, native) })
	}
}

func testPreparedRounds(t *testing.T, native bool) {
	st, sg := openConfigured(t, nil)
	store.SetNativeInserts(st, native) // as on the embedded engine, or through the batch API
	at := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	a, b := partitionBatch(0, 0, 300, at), partitionBatch(1, 0, 200, at)
	c, d := partitionBatch(0, 301, 100, at.Add(time.Second)), partitionBatch(1, 201, 100, at.Add(time.Second))
	for _, x := range []*store.Batch{&a, &b, &c, &d} {
		st.Prepare(x)
	}
	db := st.Databases()
	for range 2 { // a retried round is stored once
		if err := st.Write(t.Context(), a, b); err != nil {
			t.Fatal(err)
		}
	}
	for _, table := range []string{"access_log", "connection_records"} {
		if n := count(t, st, "SELECT count() FROM system.parts WHERE active AND table = '"+table+"' AND database IN ('"+db.Access+"', '"+db.Connections+"')"); n != 1 {
			t.Errorf("%s: %d parts after one round of prepared batches, want 1", table, n)
		}
	}
	c.Hits = c.Hits[:50] // changed after it was prepared
	if err := st.Write(t.Context(), c, d); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		table     string
		partition int32
		rows      uint64
	}{
		{db.Access + ".access_log", 0, 350},
		{db.Connections + ".connection_records", 0, 350},
		{db.Ops + ".quarantine", 0, 2},
		{db.Access + ".access_log", 1, 300},
		{db.Connections + ".connection_records", 1, 300},
		{db.Ops + ".quarantine", 1, 2},
	} {
		if rows, offsets := countBy(t, st, tc.table, tc.partition); rows != tc.rows || offsets != tc.rows {
			t.Errorf("%s, partition %d: %d rows at %d offsets, want %d", tc.table, tc.partition, rows, offsets, tc.rows)
		}
	}
	rep, err := st.Verify(t.Context(), sg.Public())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) > 0 || rep.Rows != 2*650+4 {
		t.Errorf("verify: %d rows checked, problems %+v; want 1304 rows, none", rep.Rows, rep.Problems)
	}
}
