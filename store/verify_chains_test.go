package store_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/connlog/connlog/store"
)

func exec(t *testing.T, st *store.Store, q string) {
	t.Helper()
	if err := st.Conn().Exec(t.Context(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func verifyReport(t *testing.T, st *store.Store) store.VerifyReport {
	t.Helper()
	rep, err := st.Verify(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// Manifests written before hash version 2 keep verifying under version 1,
// in the same chains as the version-2 ones that follow them.
func TestVersion1ManifestsStillVerify(t *testing.T) {
	st, _ := openConfigured(t, nil)
	store.SetManifestVersion(st, 1)
	first, _ := writeTwoBatches(t, st)
	store.SetManifestVersion(st, 2)
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	third := "nginx-1-8-9"
	if err := st.Write(t.Context(), store.Batch{ID: third, Hits: []store.Hit{
		hit("203.0.113.8", 40008, base.Add(8*time.Second), "GET", "/a", 8),
		hit("203.0.113.9", 40009, base.Add(9*time.Second), "GET", "/b", 9),
	}}); err != nil {
		t.Fatal(err)
	}
	rep := verifyReport(t, st)
	if !rep.OK() || rep.Versions[1] != 5 || rep.Versions[2] != 2 || rep.Rows != 17 {
		t.Fatalf("mixed versions: %+v", rep)
	}
	exec(t, st, "ALTER TABLE "+st.Databases().Connections+".connection_records UPDATE status = 404 WHERE kafka_offset = 2 SETTINGS mutations_sync = 2")
	exec(t, st, "ALTER TABLE "+st.Databases().Access+".access_log UPDATE shipper_host = 'elsewhere' WHERE kafka_offset = 9 SETTINGS mutations_sync = 2")
	got := map[string]string{}
	for _, p := range verifyReport(t, st).Problems {
		got[p.Table] += p.Kind + " " + p.BatchID + ";"
	}
	if got["connection_records"] != store.ProblemAltered+" "+first+";" || got["access_log"] != store.ProblemAltered+" "+third+";" || len(got) != 2 {
		t.Fatalf("problems: %v", got)
	}
}

// verify changes no schema: on a store not migrated to 0013 it reads the
// version-1 manifests as such.
func TestVerifyReadsManifestsOfAStoreBeforeMigration13(t *testing.T) {
	st, _ := openConfigured(t, nil)
	store.SetManifestVersion(st, 1)
	writeTwoBatches(t, st)
	exec(t, st, "ALTER TABLE "+st.Databases().Ops+".manifests DROP COLUMN version, DROP COLUMN chain_seq, DROP COLUMN writer_seq, DROP COLUMN writer_prev, DROP COLUMN writer_prev_chains, DROP COLUMN writer_chains")
	if rep := verifyReport(t, st); !rep.OK() || rep.Versions[1] != 5 || rep.Rows != 13 {
		t.Fatalf("store before 0013: %+v", rep)
	}
}

// writeRounds writes rounds of one batch per partition 0..3 (two hits each;
// partition 3 also a quarantined line): 9 chains.
func writeRounds(t *testing.T, st *store.Store, rounds int) {
	t.Helper()
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	for r := range rounds {
		for p := range int32(4) {
			off := int64(r * 3)
			var hits []store.Hit
			for i := range int64(2) {
				h := hit(fmt.Sprintf("203.0.113.%d", p*10+int32(i)+1), 40000, base.Add(time.Duration(off+i)*time.Second), "POST", "/form", off+i)
				h.Source.Partition = p
				hits = append(hits, h)
			}
			b := store.Batch{ID: fmt.Sprintf("nginx/%d/%d-%d", p, off, off+2), Hits: hits}
			if p == 3 {
				b.Quarantine = []store.Quarantined{{Source: store.Source{Topic: "nginx", Partition: p, Offset: off + 2}, Received: base, Reason: "bad line", Raw: []byte("garbage")}}
			}
			if err := st.Write(t.Context(), b); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// A chain that disappears with its rows leaves no gap in itself: the
// writer links of the manifests signed after it name it.
func TestVerifyNamesAChainDeletedWithItsRows(t *testing.T) {
	st, _ := openConfigured(t, nil)
	writeRounds(t, st, 3)
	db := st.Databases()
	if rep := verifyReport(t, st); !rep.OK() || rep.Chains != 9 {
		t.Fatalf("before: %+v", rep)
	}
	// One chain, rows and manifests.
	exec(t, st, "ALTER TABLE "+db.Access+".access_log DELETE WHERE kafka_partition = 2 SETTINGS mutations_sync = 2")
	exec(t, st, "ALTER TABLE "+db.Ops+".manifests DELETE WHERE db_table = 'access_log' AND kafka_partition = 2 SETTINGS mutations_sync = 2")
	rep := verifyReport(t, st)
	if rep.Chains != 8 || len(rep.Problems) != 1 {
		t.Fatalf("after deleting a chain: %d chains, problems %v", rep.Chains, rep.Problems)
	}
	p := rep.Problems[0]
	if p.Kind != store.ProblemMissing || p.Table != "access_log" || p.Topic != "nginx" || p.Partition != 2 || !strings.Contains(p.String(), "access_log nginx/2") {
		t.Fatalf("deleted chain reported as %s", p)
	}
	// Every chain of a partition: access, connections, quarantine.
	for _, table := range []string{db.Access + ".access_log", db.Connections + ".connection_records", db.Ops + ".quarantine"} {
		exec(t, st, "ALTER TABLE "+table+" DELETE WHERE kafka_partition = 3 SETTINGS mutations_sync = 2")
	}
	exec(t, st, "ALTER TABLE "+db.Ops+".manifests DELETE WHERE kafka_partition = 3 SETTINGS mutations_sync = 2")
	missing := map[string]bool{}
	for _, p := range verifyReport(t, st).Problems {
		if p.Kind != store.ProblemMissing {
			t.Errorf("unexpected %s", p)
		}
		missing[fmt.Sprintf("%s %s/%d", p.Table, p.Topic, p.Partition)] = true
	}
	for _, want := range []string{"access_log nginx/2", "access_log nginx/3", "connection_records nginx/3", "quarantine nginx/3"} {
		if !missing[want] {
			t.Errorf("chain %s deleted, not reported: %v", want, missing)
		}
	}
	// Partition 2 whole as well: its batches' manifests were each followed
	// by partition 3's, deleted too, so nothing names them; the holes in
	// the key's sequence are still seen.
	exec(t, st, "ALTER TABLE "+db.Connections+".connection_records DELETE WHERE kafka_partition = 2 SETTINGS mutations_sync = 2")
	exec(t, st, "ALTER TABLE "+db.Ops+".manifests DELETE WHERE kafka_partition = 2 SETTINGS mutations_sync = 2")
	var unnamed []store.Problem
	for _, p := range verifyReport(t, st).Problems {
		if p.Table == "" {
			unnamed = append(unnamed, p)
		}
	}
	if len(unnamed) != 1 || unnamed[0].Kind != store.ProblemMissing || !strings.Contains(unnamed[0].String(), "2 inserts of manifests") {
		t.Errorf("two rounds of partitions 2 and 3 deleted: %v", unnamed)
	}
}

// The newest manifests of one chain deleted with their rows: the chain's
// own links show nothing (it just ends earlier), the writer links do.
func TestVerifyNamesAChainWhoseNewestBatchesWereDeleted(t *testing.T) {
	st, _ := openConfigured(t, nil)
	writeRounds(t, st, 3)
	db := st.Databases()
	// round 3 of partition 0 (offsets 6-7), not the last batch written
	exec(t, st, "ALTER TABLE "+db.Connections+".connection_records DELETE WHERE kafka_partition = 0 AND kafka_offset >= 6 SETTINGS mutations_sync = 2")
	exec(t, st, "ALTER TABLE "+db.Ops+".manifests DELETE WHERE db_table = 'connection_records' AND kafka_partition = 0 AND first_offset >= 6 SETTINGS mutations_sync = 2")
	ps := verifyReport(t, st).Problems
	if len(ps) != 1 || ps[0].Kind != store.ProblemGap || ps[0].Table != "connection_records" || ps[0].Partition != 0 {
		t.Fatalf("truncated chain: %v", ps)
	}
}

// After a broker restart offsets start again at 0 in the same chain: the
// chain continues (no fork), and verify tells the rows of the two
// incarnations apart.
func TestVerifyAfterOffsetsStartAgain(t *testing.T) {
	st, sg := openConfigured(t, nil)
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	write := func(st *store.Store, inc string, first int64) string {
		t.Helper()
		var hits []store.Hit
		for off := first; off < first+3; off++ {
			h := hit("203.0.113.1", uint16(40000+off), base.Add(time.Duration(off)*time.Second), "POST", "/"+inc, off)
			h.RequestID = fmt.Sprintf("%s-%d", inc, off)
			h.Ingested = time.Now().UTC().Truncate(time.Millisecond)
			hits = append(hits, h)
		}
		id := fmt.Sprintf("nginx/1/%d-%d/%s", first, first+2, inc)
		if err := st.Write(t.Context(), store.Batch{ID: id, Hits: hits}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		return id
	}
	write(st, "a", 0)
	write(st, "a", 3)
	// a restart: a new Store (no cached heads), the broker's offsets at 0
	st2 := reopen(t, st, func(*store.Config) {})
	st2.SetSigner(sg)
	b0 := write(st2, "b", 0)
	st3 := reopen(t, st, func(*store.Config) {})
	st3.SetSigner(sg)
	write(st3, "b", 3)
	rep := verifyReport(t, st)
	if !rep.OK() || rep.Manifests != 8 || rep.Rows != 24 {
		t.Fatalf("after offsets started again: %+v", rep)
	}
	// A row of the second incarnation at an offset the first also has.
	exec(t, st, "ALTER TABLE "+st.Databases().Access+".access_log UPDATE status = 500 WHERE request_id = 'b-1' SETTINGS mutations_sync = 2")
	ps := verifyReport(t, st).Problems
	if len(ps) != 1 || ps[0].Kind != store.ProblemAltered || ps[0].BatchID != b0 {
		t.Fatalf("changed row of batch %s: %v", b0, ps)
	}
	exec(t, st, "ALTER TABLE "+st.Databases().Access+".access_log UPDATE status = 200 WHERE request_id = 'b-1' SETTINGS mutations_sync = 2")
	// A row of the first deleted: its batch, not the second's, misses it.
	exec(t, st, "DELETE FROM "+st.Databases().Access+".access_log WHERE request_id = 'a-2'")
	ps = verifyReport(t, st).Problems
	if len(ps) != 1 || ps[0].Kind != store.ProblemDeleted || ps[0].BatchID != "nginx/1/0-2/a" {
		t.Fatalf("deleted row of batch nginx/1/0-2/a: %v", ps)
	}
}

// Rows in a partition no chain covers are read too: forged ones, arrived
// after signing began, are unsigned additions.
func TestVerifyReportsRowsOfAPartitionWithoutManifests(t *testing.T) {
	st, _ := openConfigured(t, nil)
	writeTwoBatches(t, st)
	exec(t, st, "INSERT INTO "+st.Databases().Connections+".connection_records (event_time, ingested_at, client_ip, site, kafka_topic, kafka_partition, kafka_offset) VALUES (now64(3), now64(3), toIPv6('203.0.113.66'), 'www.example.org', 'forged', 0, 1)")
	ps := verifyReport(t, st).Problems
	if len(ps) != 1 || ps[0].Kind != store.ProblemAdded || ps[0].Table != "connection_records" || ps[0].Topic != "forged" {
		t.Fatalf("forged row in a new partition: %v", ps)
	}
}
