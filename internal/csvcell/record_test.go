package csvcell

import (
	"bytes"
	"encoding/csv"
	"math/rand/v2"
	"strings"
	"testing"
)

// writerBytes is what encoding/csv writes for fields made Safe.
func writerBytes(t testing.TB, records [][]string) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	for _, rec := range records {
		safe := make([]string, len(rec))
		for i, f := range rec {
			safe[i] = Safe(f)
		}
		if err := w.Write(safe); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	return b.Bytes()
}

func recordBytes(records [][]string) []byte {
	var r Record
	for _, rec := range records {
		for i, f := range rec {
			if i%2 == 0 {
				r.Field(f)
			} else {
				r.Bytes([]byte(f))
			}
		}
		r.End()
	}
	return r.B
}

// TestRecordWritesWhatEncodingCSVWrites: an export's bytes (and so its
// SHA-256) do not depend on which of the two wrote it.
func TestRecordWritesWhatEncodingCSVWrites(t *testing.T) {
	fixed := [][]string{
		{""},
		{"", ""},
		{`\.`, `\.x`, `x\.`, `'\.`},
		{" lead", "\tlead", "\u00a0nbsp", "\u2003em", "\u0085nel", "trail "},
		{`say "hi"`, `"`, `""`, `a,b`, "cr\rlf\n", "crlf\r\n"},
		{"=1", "+1", "-1", "@a", "'a", "\t=1", "\r=1", "=a,b", `="x"`, "-\u00a0"},
		{"\xff\xfe", "é", "\u00a0", "日本"},
		{"Mozilla/5.0 (X11; Linux x86_64)", "203.0.113.7", "2026-12-07T22:00:00.000Z", "443"},
	}
	if got, want := recordBytes(fixed), writerBytes(t, fixed); !bytes.Equal(got, want) {
		t.Fatalf("Record wrote\n%q\nencoding/csv\n%q", got, want)
	}
	alphabet := []string{"a", "Z", "0", ",", `"`, "\r", "\n", " ", "\t", "=", "+", "-", "@", "'", `\`, ".", "\u00a0", "\u2028", "é", "\xff"}
	rng := rand.New(rand.NewPCG(7, 8))
	for range 2000 {
		rec := make([]string, 1+rng.IntN(6))
		for i := range rec {
			var sb strings.Builder
			for range rng.IntN(6) {
				sb.WriteString(alphabet[rng.IntN(len(alphabet))])
			}
			rec[i] = sb.String()
		}
		one := [][]string{rec}
		if got, want := recordBytes(one), writerBytes(t, one); !bytes.Equal(got, want) {
			t.Fatalf("record %q: Record wrote %q, encoding/csv %q", rec, got, want)
		}
	}
}

func FuzzRecord(f *testing.F) {
	f.Add("a", `\.`, " b")
	f.Add(`="x"`, "\r\n", "'")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		rec := [][]string{{a, b, c}, {c}}
		if got, want := recordBytes(rec), writerBytes(t, rec); !bytes.Equal(got, want) {
			t.Fatalf("record %q: Record wrote %q, encoding/csv %q", rec, got, want)
		}
	})
}
