package store

import (
	"testing"
)

func TestSplitStatements(t *testing.T) {
	got := splitStatements("-- comment;\nCREATE A;\n\nCREATE B\n  (x);\n")
	if len(got) != 2 || got[0] != "CREATE A" || got[1] != "CREATE B\n  (x)" {
		t.Errorf("got %q", got)
	}
}
