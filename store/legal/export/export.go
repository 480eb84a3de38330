// Package export builds and checks requisition export packages: the zip
// file connlog hands to an authority in answer to a requisition.
//
// A [Packager] runs a requisition of the register (package legal): it
// selects the connection records of each selector through the store
// (store.Store.RequisitionRecords), builds the package, keeps it with the
// run in the register and hands a kept package back unchanged. The API
// only parses the officer's request, authorises, audits and sends what the
// Packager produced. [Build] and [Verify] are the package format itself;
// `connlog export verify` checks a package offline with Verify.
//
// A package holds exactly four files:
//
//	records.csv     the records, one per line after a header line; a
//	                cell that would begin with = + - @ tab CR or ' has
//	                one ' in front, so that a spreadsheet shows it as
//	                text and never runs it as a formula (strip one
//	                leading ' for the value; package internal/csvcell)
//	records.ndjson  the same records, one JSON object per line, values
//	                exactly as stored
//	manifest.json   the requisition, the exact queries and parameters, the
//	                counts, the time range, the generation time, the
//	                software version, the SHA-256 of each data file and the
//	                ID and public key of the signing key
//	manifest.sig    the raw 64-byte Ed25519 signature of manifest.json made
//	                with the instance key (store/integrity)
//
// Because manifest.json carries the SHA-256 of the data files and is signed,
// changing any byte of any file makes [Verify] fail. The signature can also
// be checked without connlog:
//
//	openssl pkeyutl -verify -pubin -inkey public.pem -rawin -in manifest.json -sigfile manifest.sig
//
// [Build] is deterministic: the same input gives the same bytes, so a
// package's SHA-256 identifies it.
package export

import (
	"archive/zip"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/connlog/connlog/internal/csvcell"
	"github.com/connlog/connlog/store/integrity"
)

// Names of the files in a package.
const (
	RecordsCSV    = "records.csv"
	RecordsNDJSON = "records.ndjson"
	ManifestJSON  = "manifest.json"
	ManifestSig   = "manifest.sig"
)

// Format identifies the package layout in [Manifest.Format].
const Format = "connlog-requisition-export/1"

// maxFileSize bounds each file read from a package, so a hostile zip
// cannot exhaust memory (1 GiB).
const maxFileSize = 1 << 30

// Query is one query run to produce the records: its SQL text with
// {name:Type} placeholders and the values bound to them.
type Query struct {
	Text       string            `json:"text"`
	Parameters map[string]string `json:"parameters"`
}

// FileEntry describes one data file of a package in the manifest.
type FileEntry struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// Rows is the number of records in the file (header line excluded).
	Rows int `json:"rows"`
}

// TimeRange is the half-open interval [From, To) the records were selected
// from, and the times of the first and last record found.
type TimeRange struct {
	From  time.Time  `json:"from"`
	To    time.Time  `json:"to"`
	First *time.Time `json:"first_record,omitempty"`
	Last  *time.Time `json:"last_record,omitempty"`
}

// Manifest is the content of manifest.json.
type Manifest struct {
	Format string `json:"format"`
	// Requisition is the requisition as recorded in the register.
	Requisition json.RawMessage `json:"requisition"`
	Queries     []Query         `json:"queries"`
	Columns     []string        `json:"columns"`
	Records     int             `json:"records"`
	TimeRange   TimeRange       `json:"time_range"`
	GeneratedAt time.Time       `json:"generated_at"`
	Software    string          `json:"software"`
	Files       []FileEntry     `json:"files"`
	// KeyID names the signing key (integrity.KeyID of PublicKey).
	KeyID string `json:"key_id"`
	// PublicKey is the signing public key, PEM. It lets a verifier read the
	// package alone, but proves nothing by itself: trust comes from a key
	// obtained apart from the package (see [Verify]).
	PublicKey string `json:"public_key"`
}

// Input is what [Build] packages.
type Input struct {
	// Requisition is encoded as JSON into the manifest.
	Requisition any
	Queries     []Query
	// Columns name the fields of each record, in order.
	Columns []string
	// Rows are the records; each value is a string, a bool, an integer, a
	// float or a time.Time (written in RFC 3339 with milliseconds, UTC).
	Rows      [][]any
	From, To  time.Time
	Generated time.Time
	// Software is the connlog version that built the package.
	Software string
}

// Signer signs manifests; *integrity.Signer satisfies it.
type Signer interface {
	Sign(msg []byte) []byte
	Public() ed25519.PublicKey
	PublicPEM() []byte
}

// timeFormat renders record times.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

// Build writes the package of in, signed by s, and returns its bytes and
// their hex SHA-256.
func Build(in Input, s Signer, keyID string) (pkg []byte, sum string, err error) {
	csvData, err := encodeCSV(in.Columns, in.Rows)
	if err != nil {
		return nil, "", fmt.Errorf("encode records as csv: %w", err)
	}
	ndjson, err := encodeNDJSON(in.Columns, in.Rows)
	if err != nil {
		return nil, "", fmt.Errorf("encode records as ndjson: %w", err)
	}
	req, err := json.Marshal(in.Requisition)
	if err != nil {
		return nil, "", fmt.Errorf("encode requisition: %w", err)
	}
	m := Manifest{
		Format:      Format,
		Requisition: req,
		Queries:     in.Queries,
		Columns:     in.Columns,
		Records:     len(in.Rows),
		TimeRange:   TimeRange{From: in.From.UTC(), To: in.To.UTC()},
		GeneratedAt: in.Generated.UTC(),
		Software:    in.Software,
		Files: []FileEntry{
			fileEntry(RecordsCSV, csvData, len(in.Rows)),
			fileEntry(RecordsNDJSON, ndjson, len(in.Rows)),
		},
		KeyID:     keyID,
		PublicKey: string(s.PublicPEM()),
	}
	if m.Queries == nil {
		m.Queries = []Query{}
	}
	first, last := timeBounds(in.Rows)
	m.TimeRange.First, m.TimeRange.Last = first, last
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, "", fmt.Errorf("encode manifest: %w", err)
	}
	manifest = append(manifest, '\n')
	sig := s.Sign(manifest)

	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range []struct {
		name string
		data []byte
	}{{RecordsCSV, csvData}, {RecordsNDJSON, ndjson}, {ManifestJSON, manifest}, {ManifestSig, sig}} {
		w, err := zw.CreateHeader(&zip.FileHeader{
			Name:     f.name,
			Method:   zip.Deflate,
			Modified: in.Generated.UTC().Truncate(time.Second),
		})
		if err != nil {
			return nil, "", fmt.Errorf("write %s: %w", f.name, err)
		}
		if _, err := w.Write(f.data); err != nil {
			return nil, "", fmt.Errorf("write %s: %w", f.name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, "", fmt.Errorf("close package: %w", err)
	}
	h := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), hex.EncodeToString(h[:]), nil
}

func fileEntry(name string, data []byte, rows int) FileEntry {
	h := sha256.Sum256(data)
	return FileEntry{Name: name, SHA256: hex.EncodeToString(h[:]), Size: int64(len(data)), Rows: rows}
}

// timeBounds returns the earliest and latest time.Time among the first
// column of rows, if that column holds times.
func timeBounds(rows [][]any) (first, last *time.Time) {
	for _, r := range rows {
		if len(r) == 0 {
			continue
		}
		t, ok := r[0].(time.Time)
		if !ok {
			return nil, nil
		}
		t = t.UTC()
		if first == nil || t.Before(*first) {
			first = &t
		}
		if last == nil || t.After(*last) {
			tt := t
			last = &tt
		}
	}
	return first, last
}

// text renders a record value for the CSV file.
func text(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case int:
		return strconv.Itoa(x), nil
	case int32:
		return strconv.FormatInt(int64(x), 10), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint16:
		return strconv.FormatUint(uint64(x), 10), nil
	case uint32:
		return strconv.FormatUint(uint64(x), 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case time.Time:
		return x.UTC().Format(timeFormat), nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("unsupported value of type %T", v)
}

func encodeCSV(cols []string, rows [][]any) ([]byte, error) {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.Write(cols); err != nil {
		return nil, err
	}
	rec := make([]string, len(cols))
	for i, r := range rows {
		if len(r) != len(cols) {
			return nil, fmt.Errorf("record %d: %d values for %d columns", i, len(r), len(cols))
		}
		for j, v := range r {
			s, err := text(v)
			if err != nil {
				return nil, fmt.Errorf("record %d column %s: %w", i, cols[j], err)
			}
			if _, fromLog := v.(string); fromLog {
				s = csvcell.Safe(s) // never a formula in a spreadsheet
			}
			rec[j] = s
		}
		if err := w.Write(rec); err != nil {
			return nil, err
		}
	}
	w.Flush()
	return buf.Bytes(), w.Error()
}

func encodeNDJSON(cols []string, rows [][]any) ([]byte, error) {
	var buf bytes.Buffer
	for i, r := range rows {
		if len(r) != len(cols) {
			return nil, fmt.Errorf("record %d: %d values for %d columns", i, len(r), len(cols))
		}
		buf.WriteByte('{')
		for j, v := range r {
			if j > 0 {
				buf.WriteByte(',')
			}
			k, _ := json.Marshal(cols[j])
			buf.Write(k)
			buf.WriteByte(':')
			if t, ok := v.(time.Time); ok {
				v = t.UTC().Format(timeFormat)
			}
			b, err := json.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("record %d column %s: %w", i, cols[j], err)
			}
			buf.Write(b)
		}
		buf.WriteString("}\n")
	}
	return buf.Bytes(), nil
}

// Report is what [Verify] found out about a package.
type Report struct {
	// Manifest is the decoded manifest.json, nil if it could not be read.
	Manifest *Manifest
	// KeyID is the ID of the key that signed the package, as named by the
	// manifest.
	KeyID string
	// TrustedKeyID is the ID of the key the caller supplied, "" if none.
	TrustedKeyID string
	// Checks are the checks that passed, in order, for a person to read.
	Checks []string
	// Problems are the checks that failed; empty means the package is
	// intact.
	Problems []string
}

// OK reports whether the package is intact and signed by the trusted key:
// no problem was found and a trusted key was supplied.
func (r *Report) OK() bool { return len(r.Problems) == 0 && r.TrustedKeyID != "" }

// ErrNoTrustedKey is reported by [Verify] when no trusted key was given: the
// package may be internally consistent, but anyone could have made it.
var ErrNoTrustedKey = errors.New("no trusted public key given: the package's origin is not established")

func (r *Report) fail(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

func (r *Report) pass(format string, args ...any) {
	r.Checks = append(r.Checks, fmt.Sprintf(format, args...))
}

// Verify checks the package pkg offline: the layout, the manifest's
// signature, each data file's size and SHA-256, and the record counts.
//
// trusted is the instance's public key obtained apart from the package
// (from the operator, over a channel the verifier trusts). If nil, the
// signature is checked with the key embedded in the manifest, which only
// shows that the package is self-consistent — whoever altered it could
// have re-signed it with a key of their own — and Verify returns
// ErrNoTrustedKey along with the report. Verify returns an error when the
// package is not intact; the report lists every problem found.
func Verify(pkg []byte, trusted ed25519.PublicKey) (*Report, error) {
	r := &Report{}
	if trusted != nil {
		r.TrustedKeyID = integrity.KeyID(trusted)
	}
	files, err := readZip(pkg)
	if err != nil {
		r.fail("%v", err)
		return r, errors.New("package is not intact: " + r.Problems[0])
	}
	r.pass("package layout: %s, %s, %s, %s", RecordsCSV, RecordsNDJSON, ManifestJSON, ManifestSig)

	manifest, sig := files[ManifestJSON], files[ManifestSig]
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(manifest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		r.fail("manifest.json cannot be read: %v", err)
	} else {
		r.Manifest = &m
		r.KeyID = m.KeyID
		if m.Format != Format {
			r.fail("manifest format %q, want %q", m.Format, Format)
		}
	}

	// The signature.
	var embedded ed25519.PublicKey
	if r.Manifest != nil {
		if pub, err := integrity.ParsePublicPEM([]byte(m.PublicKey)); err != nil {
			r.fail("manifest public key cannot be read: %v", err)
		} else {
			embedded = pub
			if id := integrity.KeyID(pub); id != m.KeyID {
				r.fail("manifest key_id %s does not name its public key (%s)", m.KeyID, id)
			}
		}
	}
	switch {
	case trusted != nil:
		if r.Manifest != nil && r.TrustedKeyID != m.KeyID {
			r.fail("package signed by key %s, not by the trusted key %s", m.KeyID, r.TrustedKeyID)
		}
		if len(sig) != ed25519.SignatureSize || !ed25519.Verify(trusted, manifest, sig) {
			r.fail("manifest.sig is not a valid signature of manifest.json by the trusted key %s", r.TrustedKeyID)
		} else {
			r.pass("manifest.sig: valid Ed25519 signature of manifest.json by the trusted key %s", r.TrustedKeyID)
		}
	case embedded != nil:
		if len(sig) != ed25519.SignatureSize || !ed25519.Verify(embedded, manifest, sig) {
			r.fail("manifest.sig is not a valid signature of manifest.json by the key in the manifest")
		} else {
			r.pass("manifest.sig: valid signature by the key embedded in the manifest (%s), which proves nothing about who made the package", m.KeyID)
		}
	}

	// The data files.
	if r.Manifest != nil {
		want := map[string]bool{RecordsCSV: true, RecordsNDJSON: true}
		for _, fe := range m.Files {
			data, ok := files[fe.Name]
			if !ok || !want[fe.Name] {
				r.fail("manifest lists %q, which is not a data file of the package", fe.Name)
				continue
			}
			delete(want, fe.Name)
			h := sha256.Sum256(data)
			if got := hex.EncodeToString(h[:]); got != fe.SHA256 || int64(len(data)) != fe.Size {
				r.fail("%s: SHA-256 %s, %d bytes; manifest says %s, %d bytes", fe.Name, got, len(data), fe.SHA256, fe.Size)
			} else {
				r.pass("%s: SHA-256 %s, %d bytes, as in the manifest", fe.Name, got, len(data))
			}
			if fe.Rows != m.Records {
				r.fail("%s: manifest gives %d rows, but %d records in total", fe.Name, fe.Rows, m.Records)
			}
		}
		for name := range want {
			r.fail("manifest does not list %s", name)
		}
		// The counts, read from the files themselves.
		if n, err := countCSV(files[RecordsCSV], len(m.Columns)); err != nil {
			r.fail("%s: %v", RecordsCSV, err)
		} else if n != m.Records {
			r.fail("%s: %d records, manifest says %d", RecordsCSV, n, m.Records)
		} else {
			r.pass("%s: %d records, as in the manifest", RecordsCSV, n)
		}
		if n, err := countNDJSON(files[RecordsNDJSON]); err != nil {
			r.fail("%s: %v", RecordsNDJSON, err)
		} else if n != m.Records {
			r.fail("%s: %d records, manifest says %d", RecordsNDJSON, n, m.Records)
		} else {
			r.pass("%s: %d records, as in the manifest", RecordsNDJSON, n)
		}
	}

	switch {
	case len(r.Problems) > 0:
		return r, fmt.Errorf("package is not intact: %d problem(s), first: %s", len(r.Problems), r.Problems[0])
	case trusted == nil:
		return r, ErrNoTrustedKey
	}
	return r, nil
}

// readZip reads the four files of a package, refusing anything else.
func readZip(pkg []byte) (map[string][]byte, error) {
	zr, err := zip.NewReader(bytes.NewReader(pkg), int64(len(pkg)))
	if err != nil {
		return nil, fmt.Errorf("not a zip file: %w", err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		switch f.Name {
		case RecordsCSV, RecordsNDJSON, ManifestJSON, ManifestSig:
		default:
			return nil, fmt.Errorf("unexpected file %q in the package", f.Name)
		}
		if _, dup := files[f.Name]; dup {
			return nil, fmt.Errorf("%s appears twice in the package", f.Name)
		}
		if f.UncompressedSize64 > maxFileSize {
			return nil, fmt.Errorf("%s: too large (%d bytes)", f.Name, f.UncompressedSize64)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", f.Name, err)
		}
		// Reading to the end checks the zip's CRC-32 too.
		data, err := io.ReadAll(io.LimitReader(rc, maxFileSize+1))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f.Name, err)
		}
		files[f.Name] = data
	}
	for _, name := range []string{RecordsCSV, RecordsNDJSON, ManifestJSON, ManifestSig} {
		if _, ok := files[name]; !ok {
			return nil, fmt.Errorf("%s is missing from the package", name)
		}
	}
	return files, nil
}

func countCSV(data []byte, cols int) (int, error) {
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = cols
	n := -1 // the header line
	for {
		_, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
		n++
	}
	if n < 0 {
		return 0, errors.New("no header line")
	}
	return n, nil
}

func countNDJSON(data []byte) (int, error) {
	n := 0
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		var v map[string]json.RawMessage
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return 0, fmt.Errorf("record %d: %w", n+1, err)
		}
		n++
	}
}
