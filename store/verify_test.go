package store_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/integrity"
)

// writeTwoBatches stores two batches of three hits (offsets 1-3, 4-6) and
// a quarantined line, and returns the batch ids.
func writeTwoBatches(t *testing.T, st *store.Store) (string, string) {
	t.Helper()
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	ids := []string{"nginx-1-1-3", "nginx-1-4-6"}
	for b := range 2 {
		var hits []store.Hit
		for i := range 3 {
			off := int64(b*3 + i + 1)
			hits = append(hits, hit(fmt.Sprintf("203.0.113.%d", off), uint16(40000+off), base.Add(time.Duration(off)*time.Second), "POST", "/form", off))
		}
		batch := store.Batch{ID: ids[b], Hits: hits}
		if b == 1 {
			batch.Quarantine = []store.Quarantined{{Source: store.Source{Topic: "nginx", Partition: 1, Offset: 7}, Received: base, Reason: "bad line", Raw: []byte("garbage")}}
		}
		if err := st.Write(t.Context(), batch); err != nil {
			t.Fatal(err)
		}
	}
	return ids[0], ids[1]
}

func verifyProblems(t *testing.T, st *store.Store) []store.Problem {
	t.Helper()
	rep, err := st.Verify(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Manifests == 0 {
		t.Fatal("verify found no manifests")
	}
	return rep.Problems
}

func TestVerifyPassesOnAnUntouchedStoreAndReplays(t *testing.T) {
	st, sg := openConfigured(t, nil)
	writeTwoBatches(t, st)
	writeTwoBatches(t, st) // a replay: same ids, deduplicated, no second manifest
	rep, err := st.Verify(t.Context(), sg.Public())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Manifests != 5 || rep.Rows != 13 {
		t.Fatalf("untouched store: %+v", rep)
	}
}

func TestVerifyNamesTheBatchOfAnUpdatedRow(t *testing.T) {
	st, _ := openConfigured(t, nil)
	first, _ := writeTwoBatches(t, st)
	if err := st.Conn().Exec(t.Context(), "ALTER TABLE "+st.Databases().Connections+".connection_records UPDATE status = 404 WHERE kafka_offset = 2 SETTINGS mutations_sync = 2"); err != nil {
		t.Fatal(err)
	}
	ps := verifyProblems(t, st)
	if len(ps) != 1 || ps[0].Kind != store.ProblemAltered || ps[0].BatchID != first || ps[0].Table != "connection_records" {
		t.Fatalf("problems after UPDATE: %v", ps)
	}
	if !strings.Contains(ps[0].String(), first) {
		t.Errorf("problem %q does not name batch %s", ps[0], first)
	}
}

func TestVerifyNamesTheBatchOfADeletedRow(t *testing.T) {
	st, _ := openConfigured(t, nil)
	_, second := writeTwoBatches(t, st)
	if err := st.Conn().Exec(t.Context(), "DELETE FROM "+st.Databases().Access+".access_log WHERE kafka_offset = 5"); err != nil {
		t.Fatal(err)
	}
	ps := verifyProblems(t, st)
	if len(ps) != 1 || ps[0].Kind != store.ProblemDeleted || ps[0].BatchID != second || ps[0].Table != "access_log" {
		t.Fatalf("problems after DELETE: %v", ps)
	}
}

func TestVerifyFindsADeletedManifestAndAForgedOne(t *testing.T) {
	st, _ := openConfigured(t, nil)
	first, second := writeTwoBatches(t, st)
	ops := st.Databases().Ops
	if err := st.Conn().Exec(t.Context(), "ALTER TABLE "+ops+".manifests DELETE WHERE batch_id = '"+first+"' AND db_table = 'access_log' SETTINGS mutations_sync = 2"); err != nil {
		t.Fatal(err)
	}
	if err := st.Conn().Exec(t.Context(), "ALTER TABLE "+ops+".manifests UPDATE rows = 2 WHERE batch_id = '"+second+"' AND db_table = 'quarantine' SETTINGS mutations_sync = 2"); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for _, p := range verifyProblems(t, st) {
		kinds[p.Kind+" "+p.Table] = p.BatchID
	}
	if kinds[store.ProblemGap+" access_log"] != second {
		t.Errorf("deleted manifest: problems %v, want a gap before batch %s", kinds, second)
	}
	if _, ok := kinds[store.ProblemAdded+" access_log"]; !ok {
		t.Errorf("rows of the deleted manifest not reported as unsigned: %v", kinds)
	}
	if kinds[store.ProblemManifest+" quarantine"] != second {
		t.Errorf("altered manifest: problems %v", kinds)
	}
}

func TestReplayingOlderBatchesAddsNoManifest(t *testing.T) {
	st, _ := openConfigured(t, nil)
	writeTwoBatches(t, st)
	// A second instance (no cached heads) replays both batches after a
	// crash, oldest first, as ingest does.
	st2 := reopen(t, st, func(*store.Config) {})
	_, sg := openConfigured(t, nil)
	st2.SetSigner(sg)
	writeTwoBatches(t, st2)
	rep, err := st2.Verify(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Manifests != 5 {
		t.Fatalf("after replay: %+v", rep)
	}
}

// The retention report names the signed state it describes: the head of
// every manifest chain, as the manifests table holds it, and the key that
// signed it.
func TestRetentionReportNamesEveryChainHead(t *testing.T) {
	st, sg := openConfigured(t, nil)
	writeTwoBatches(t, st)
	rep, err := st.RetentionReport(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Integrity) != 3 {
		t.Fatalf("chain heads %+v, want access log, connection records and quarantine", rep.Integrity)
	}
	var manifests uint64
	for _, h := range rep.Integrity {
		manifests += h.Manifests
		var want string
		q := "SELECT hash FROM " + st.Databases().Ops + ".manifests WHERE db_table = '" + h.Table + "' AND kafka_topic = '" + h.Topic + "' AND kafka_partition = " + fmt.Sprint(h.Partition) + " ORDER BY chain_seq DESC LIMIT 1"
		if err := st.Conn().QueryRow(t.Context(), q).Scan(&want); err != nil {
			t.Fatal(err)
		}
		if h.Hash != want || len(h.Hash) != 64 || h.KeyID != integrity.KeyID(sg.Public()) || h.Created.IsZero() {
			t.Errorf("head %+v, want hash %s signed by %s", h, want, integrity.KeyID(sg.Public()))
		}
	}
	if manifests != 5 {
		t.Errorf("%d manifests in the heads, want 5", manifests)
	}
	before := rep.Integrity[0].Hash
	base := time.Now().UTC().Add(-time.Hour)
	if err := st.Write(t.Context(), store.Batch{ID: "nginx-1-7-7", Hits: []store.Hit{hit("203.0.113.9", 40009, base, "GET", "/", 8)}}); err != nil {
		t.Fatal(err)
	}
	rep, err = st.RetentionReport(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Integrity[0].Hash == before {
		t.Errorf("chain %s/%s/%d: head unchanged after a new batch", rep.Integrity[0].Table, rep.Integrity[0].Topic, rep.Integrity[0].Partition)
	}
}
