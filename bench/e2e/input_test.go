package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRestampReplacesOnlyTheTime(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 1, 0, time.UTC)
	for _, c := range []struct{ in, want string }{
		{`1.2.3.4 - - [17/May/2015:11:05:06 +0200] "GET / HTTP/1.1" 200 5 "-" "x [y]"`, `1.2.3.4 - - [22/Nov/2026:10:00:01 +0000] "GET / HTTP/1.1" 200 5 "-" "x [y]"`},
		{`xxxxxxxxxxxx`, `xxxxxxxxxxxx`},
		{`a [not a time at all here ok] b`, `a [not a time at all here ok] b`},
		{`a [17/May/2015:11:05:06 +0200`, `a [17/May/2015:11:05:06 +0200`},
	} {
		if got := string(restamp(nil, []byte(c.in), at)); got != c.want {
			t.Errorf("restamp(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

func TestBuildInputCyclesTheSourceLines(t *testing.T) {
	dir := t.TempDir()
	src := "1.1.1.1 - - [17/May/2015:11:05:06 +0200] \"GET /a HTTP/1.1\" 200 1 \"-\" \"ua\"\n\n2.2.2.2 - - [17/May/2015:11:05:07 +0200] \"GET /b HTTP/1.1\" 200 1 \"-\" \"ua\"\r\n"
	if err := os.WriteFile(filepath.Join(dir, "x.log"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	base := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	st, err := buildInput(filepath.Join(dir, "*.log"), 5, base, 5*time.Second, out, 0)
	if err != nil {
		t.Fatal(err)
	}
	if distinct := st.Distinct; distinct != 2 {
		t.Errorf("distinct = %d, want 2", distinct)
	}
	lines, err := readLines(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 5 {
		t.Fatalf("%d lines, want 5", len(lines))
	}
	for i, l := range lines {
		wantIP := []string{"1.1.1.1", "2.2.2.2"}[i%2]
		wantT := base.Add(time.Duration(i) * time.Second).Format(stampLayout)
		if !strings.HasPrefix(string(l), wantIP) || !strings.Contains(string(l), "["+wantT+"]") {
			t.Errorf("line %d = %q, want client %s at %s", i, l, wantIP, wantT)
		}
	}
}
