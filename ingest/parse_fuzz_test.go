package ingest

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
//	go test -run '^$' -fuzz FuzzParseCombined -fuzztime 1m ./ingest
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
			if v == "" {
				t.Errorf("empty string for %s", k)
			}
		}
	})
}
