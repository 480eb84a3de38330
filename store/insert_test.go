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
