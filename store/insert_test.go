package store

import "testing"

func TestInsertTypeSendsLowCardinalityAsItsValueType(t *testing.T) {
	for in, want := range map[string]string{
		"LowCardinality(String)":           "String",
		"LowCardinality(Nullable(String))": "Nullable(String)",
		"String":                           "String",
		"DateTime64(3, 'UTC')":             "DateTime64(3, 'UTC')",
		"Array(LowCardinality(String))":    "Array(LowCardinality(String))",
	} {
		if got := insertType(in); got != want {
			t.Errorf("insertType(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNativeBlocksOfEveryProtectedTableCanFollowTheirStatement(t *testing.T) {
	for name, n := range map[string]int{tableAccess: len(accessTable.cols), tableConnections: len(connectionTable.cols), tableQuarantine: len(quarantineTable.cols)} {
		if !nativeFramable(n) {
			t.Errorf("%s: %d columns: its Native block would start with a blank and go through the batch API", name, n)
		}
	}
	for _, n := range []int{9, 10, 13, 32} {
		if nativeFramable(n) {
			t.Errorf("%d columns accepted", n)
		}
	}
}
