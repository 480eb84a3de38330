package store_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/integrity"
	"github.com/connlog/connlog/store/storetest"
)

// TestVerifyAcrossAKeyRotation follows docs/operations.md: an instance
// writes with one key, stops, starts again with a new key and writes on. Each
// manifest verifies against its own registered key, the chains continue, and
// tampering with a batch of either key is still named.
func TestVerifyAcrossAKeyRotation(t *testing.T) {
	var cfg store.Config
	st, old := openConfigured(t, func(c *store.Config) { cfg = *c })
	writeRounds(t, st, 2)
	st.Close()

	// The restart: a new process, a new key file.
	st2 := storetest.Open(t, cfg)
	sg, created, err := integrity.LoadOrCreate(filepath.Join(t.TempDir(), "instance.key"))
	if err != nil || !created {
		t.Fatalf("new key: %v %v", created, err)
	}
	st2.SetSigner(sg)
	writeRounds(t, st2, 4) // rounds 0-1 again (replays), then 2-3

	rep := verifyReport(t, st2)
	if !rep.OK() {
		t.Fatalf("after a rotation: %+v", rep.Problems)
	}
	oldID, newID := integrity.KeyID(old.Public()), integrity.KeyID(sg.Public())
	if !slices.Contains(rep.KeyIDs, oldID) || !slices.Contains(rep.KeyIDs, newID) {
		t.Errorf("key ids %v, want both %s and %s", rep.KeyIDs, oldID, newID)
	}
	// writeRounds: per round, 4 partitions × (access log + connection
	// records) and one quarantine manifest; 4 rounds stored once each.
	if rep.Chains != 9 || rep.Manifests != 36 {
		t.Errorf("%d chains, %d manifests; want 9 and 36", rep.Chains, rep.Manifests)
	}

	// Tampering with a row signed by the old key and one signed by the new
	// key: both named.
	db := st2.Databases()
	exec(t, st2, "ALTER TABLE "+db.Access+".access_log UPDATE user_agent = 'x' WHERE kafka_partition = 0 AND kafka_offset = 0 SETTINGS mutations_sync = 2")
	exec(t, st2, "ALTER TABLE "+db.Access+".access_log UPDATE user_agent = 'x' WHERE kafka_partition = 1 AND kafka_offset = 9 SETTINGS mutations_sync = 2")
	rep = verifyReport(t, st2)
	var named []string
	for _, p := range rep.Problems {
		named = append(named, p.BatchID)
	}
	if !slices.Contains(named, "nginx/0/0-2") || !slices.Contains(named, "nginx/1/9-11") {
		t.Errorf("problems %+v, want batches nginx/0/0-2 (old key) and nginx/1/9-11 (new key) named", rep.Problems)
	}
}
