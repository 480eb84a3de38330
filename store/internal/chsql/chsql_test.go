package chsql

import "testing"

func TestArrayParamEscapesQuotes(t *testing.T) {
	got := Array([]string{"a", `it's`, `back\slash`, "new\nline"})
	want := `['a','it\'s','back\\slash','new\nline']`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
