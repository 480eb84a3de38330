package logline

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/connlog/connlog/store"
)

// FuzzParseCombined checks that the parser never panics, never modifies its
// input, and that an accepted line keeps its fields intact: every string is
// a substring of the line, the JSON rendering is valid, and parsing is
// deterministic. Seeds: every line of testdata/*.log and the corpus in
// testdata/fuzz/FuzzParseCombined.
//
//	go test -run '^$' -fuzz FuzzParseCombined -fuzztime 1m ./ingest/logline
func FuzzParseCombined(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.log")
	files = append(files, "testdata/lnav_logfile_bad_access_log.0")
	for _, file := range files {
		for _, line := range readLines(f, file) {
			f.Add(line)
		}
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		orig := bytes.Clone(line)
		var h store.Hit
		err := ParseCombined(line, &h)
		if !bytes.Equal(line, orig) {
			t.Fatal("input modified")
		}
		if err != nil {
			if pe, ok := err.(*ParseError); !ok || pe.Reason == "" || pe.Pos < 0 || pe.Pos > len(line) {
				t.Fatalf("error %#v is not a ParseError with a reason and a position in the line", err)
			}
			return
		}
		checkHit(t, line, &h)
		var h2 store.Hit
		if err := ParseCombined(line, &h2); err != nil || h2 != h {
			t.Fatalf("second parse differs: %v %+v", err, h2)
		}
		var obj map[string]any
		if err := json.Unmarshal(AppendJSON(nil, &h), &obj); err != nil {
			t.Fatal(err)
		}
		for k, v := range obj {
			if v == "" && !(k == "referer" && h.Has&store.HasReferer != 0) && !(k == "user_agent" && h.Has&store.HasUserAgent != 0) {
				t.Errorf("empty string for %s", k)
			}
		}
	})
}

// quotedByteByByte is the obvious implementation of quoted, kept as the
// reference that FuzzQuoted compares the fast one with.
func quotedByteByByte(line []byte, i int) (start, end, next int, ok bool) {
	if i >= len(line) || line[i] != '"' {
		return 0, 0, 0, false
	}
	for j := i + 1; j < len(line); j++ {
		switch line[j] {
		case '\\':
			j++
		case '"':
			return i + 1, j, j + 1, true
		}
	}
	return 0, 0, 0, false
}

func FuzzQuoted(f *testing.F) {
	for _, s := range []string{`"a"`, `"a\"b"`, `"a\\"b"`, `"\\\"x"`, `"\`, `""`, `"abc\x22" x"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s1, e1, n1, ok1 := quoted(b, 0)
		s2, e2, n2, ok2 := quotedByteByByte(b, 0)
		if s1 != s2 || e1 != e2 || n1 != n2 || ok1 != ok2 {
			t.Fatalf("quoted(%q) = %d %d %d %v, reference %d %d %d %v", b, s1, e1, n1, ok1, s2, e2, n2, ok2)
		}
	})
}
