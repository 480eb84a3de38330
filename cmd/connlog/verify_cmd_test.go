package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/connlog/connlog/store/integrity"
)

// A chain deleted with its rows and manifests: connlog verify fails and
// names it.
func TestVerifyCommandNamesAChainDeletedWithItsRows(t *testing.T) {
	st, cfgPath, sg := retentionFixture(t)
	var out bytes.Buffer
	if err := cmdVerify(t.Context(), []string{"-config", cfgPath}, &out); err != nil {
		t.Fatalf("untouched store: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "key "+integrity.KeyID(sg.Public())+": latest insert 2") {
		t.Errorf("no writer head in:\n%s", out.String())
	}
	db := st.Databases()
	for _, q := range []string{
		"ALTER TABLE " + db.Access + ".access_log DELETE WHERE kafka_partition = 0 SETTINGS mutations_sync = 2",
		"ALTER TABLE " + db.Ops + ".manifests DELETE WHERE db_table = 'access_log' SETTINGS mutations_sync = 2",
	} {
		if err := st.Conn().Exec(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	out.Reset()
	err := cmdVerify(t.Context(), []string{"-config", cfgPath}, &out)
	if err == nil || !strings.Contains(out.String(), "PROBLEM chain-missing: access_log nginx/0") || !strings.Contains(out.String(), "1 chains,") {
		t.Fatalf("after deleting the access log chain: err %v\n%s", err, out.String())
	}
}
