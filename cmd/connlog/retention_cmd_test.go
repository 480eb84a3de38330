package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/embedded/embeddedtest"
	"github.com/connlog/connlog/store/integrity"
	"github.com/connlog/connlog/store/retention"
	"github.com/connlog/connlog/store/storetest"
)

// TestMain closes the in-process engine of the tests that use one before
// the binary exits.
func TestMain(m *testing.M) { embeddedtest.Main(m) }

// retentionFixture writes two signed batches into databases of their own on
// the test engine and returns a configuration file pointing at them.
func retentionFixture(t *testing.T) (*store.Store, string, *integrity.Signer) {
	t.Helper()
	dir := privateDir(t)
	scfg := storetest.Config(t)
	cfgPath := filepath.Join(dir, "connlog.yaml")
	yaml := fmt.Sprintf("data_dir: %s\nclickhouse:\n  addrs: [%q]\n  protocol: http\n  database_prefix: %s\n", dir, scfg.Addrs[0], scfg.DatabasePrefix)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	st := storetest.Migrated(t, scfg)
	sg, _, err := integrity.LoadOrCreate(filepath.Join(dir, "instance.key"))
	if err != nil {
		t.Fatal(err)
	}
	st.SetSigner(sg)
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	for b := range 2 {
		var hits []store.Hit
		for i := range 3 {
			off := int64(b*3 + i)
			hits = append(hits, store.Hit{
				Source: store.Source{Topic: "nginx", Partition: 0, Offset: off}, EventTime: base.Add(time.Duration(off) * time.Second),
				Site: "www.example.org", Method: "GET", Path: "/", Status: 200, ClientPort: uint16(1000 + off),
			})
		}
		if err := st.Write(t.Context(), store.Batch{ID: fmt.Sprintf("batch-%d", b), Hits: hits}); err != nil {
			t.Fatal(err)
		}
	}
	return st, cfgPath, sg
}

func TestVerifyCommandExitsNonZeroNamingTheAlteredBatch(t *testing.T) {
	st, cfgPath, sg := retentionFixture(t)
	var out bytes.Buffer
	if err := cmdVerify(t.Context(), []string{"-config", cfgPath}, &out); err != nil {
		t.Fatalf("untouched store: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "OK") || !strings.Contains(out.String(), integrity.KeyID(sg.Public())) {
		t.Errorf("untouched store output:\n%s", out.String())
	}
	if err := st.Conn().Exec(t.Context(), "ALTER TABLE "+st.Databases().Access+".access_log UPDATE path = '/changed' WHERE kafka_offset = 4 SETTINGS mutations_sync = 2"); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err := cmdVerify(t.Context(), []string{"-config", cfgPath}, &out)
	if err == nil || !strings.Contains(out.String(), "batch batch-1") || !strings.Contains(out.String(), "rows-altered") {
		t.Fatalf("after UPDATE: err %v\n%s", err, out.String())
	}
	if code := run([]string{"verify", "-config", cfgPath}, nil, &out, &out); code == 0 {
		t.Error("connlog verify exited 0 on an altered store")
	}
}

func TestRetentionCommandPrintsTheReport(t *testing.T) {
	_, cfgPath, _ := retentionFixture(t)
	var out bytes.Buffer
	if err := cmdRetention(t.Context(), []string{"-config", cfgPath, "-json", "-enforce"}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	var rep retention.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	var conn, access bool
	for _, e := range rep.Entries {
		if e.Class == retention.ClassConnections && e.Site == "www.example.org" && e.Rows == 6 && e.Policy == "12mo" && !e.LastRun.IsZero() {
			conn = true
		}
		if e.Class == retention.ClassAccess && e.Rows == 6 && e.Policy == "6mo" {
			access = true
		}
	}
	if !conn || !access || rep.Overdue {
		t.Errorf("report: %s", out.String())
	}
	out.Reset()
	if err := cmdRetention(t.Context(), []string{"-config", cfgPath}, &out); err != nil || !strings.Contains(out.String(), "nothing is stored past its lifetime") {
		t.Errorf("table report: %v\n%s", err, out.String())
	}
}

func TestKeyCommandPrintsThePublicKey(t *testing.T) {
	dir := privateDir(t)
	cfgPath := filepath.Join(dir, "connlog.yaml")
	if err := os.WriteFile(cfgPath, []byte("data_dir: "+dir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := cmdKey(t.Context(), []string{"-config", cfgPath}, &out); err != nil {
		t.Fatal(err)
	}
	pub, err := integrity.ParsePublicPEM(out.Bytes())
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "key id: "+integrity.KeyID(pub)) {
		t.Errorf("output:\n%s", out.String())
	}
	first := out.String()
	out.Reset()
	if err := cmdKey(t.Context(), []string{"-config", cfgPath}, &out); err != nil || out.String() != first {
		t.Errorf("second run printed another key: %v\n%s", err, out.String())
	}
}
