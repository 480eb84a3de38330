package embedded

import "testing"

func TestScanStatement(t *testing.T) {
	for _, tc := range []struct {
		name, sql, keyword, format, rest string
	}{
		{"plain select", "SELECT 1", "SELECT", "", ""},
		{"select with format", "SELECT 1 FORMAT JSONEachRow", "SELECT", "JSONEachRow", ""},
		{"leading comment", "-- hi FORMAT x\n/* FORMAT y */ select 1", "SELECT", "", ""},
		{"format inside string", "SELECT 'FORMAT CSV', `FORMAT` FROM t", "SELECT", "", ""},
		{"escaped quote in string", `SELECT 'a\' FORMAT CSV'`, "SELECT", "", ""},
		{"insert with data", "INSERT INTO t (a, b) FORMAT CSV\n1,FORMAT TSV\n", "INSERT", "CSV", "\n1,FORMAT TSV\n"},
		{"insert native", "INSERT INTO `t` (`a`) FORMAT Native", "INSERT", "Native", ""},
		{"insert select", "INSERT INTO t SELECT * FROM s", "INSERT", "", ""},
		{"column named format", "SELECT format, x FROM t", "SELECT", "", ""},
		{"with", "WITH 1 AS x SELECT x", "WITH", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := scanStatement(tc.sql)
			if st.keyword != tc.keyword || st.format != tc.format {
				t.Fatalf("got keyword %q format %q, want %q %q", st.keyword, st.format, tc.keyword, tc.format)
			}
			if tc.format != "" && tc.sql[st.dataAt:] != tc.rest {
				t.Fatalf("data %q, want %q", tc.sql[st.dataAt:], tc.rest)
			}
		})
	}
}

func TestSettingValue(t *testing.T) {
	for in, want := range map[string]string{
		"5": "5", "-1": "-1", "1.5": "'1.5'", "": "''", "a'b\\": `'a\'b\\'`, "x; DROP TABLE t": "'x; DROP TABLE t'",
	} {
		if got := settingValue(in); got != want {
			t.Errorf("settingValue(%q) = %s, want %s", in, got, want)
		}
	}
}
