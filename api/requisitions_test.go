package api

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/audit"
	"github.com/connlog/connlog/store/integrity"
	"github.com/connlog/connlog/store/legal"
	"github.com/connlog/connlog/store/legal/export"
)

// The real store serves requisitions and holds.
var (
	_ RequisitionStore = (*store.Store)(nil)
	_ HoldStore        = (*store.Store)(nil)
)

// reqEnv is a Server over the real store (embedded engine) with
// requisitions and holds, and one token per role of interest.
type reqEnv struct {
	srv                       *Server
	st                        *store.Store
	signer                    *integrity.Signer
	officer, analyst, scoped  string
	base                      time.Time
	suspect                   netip.Addr
	suspectPort, otherPort    uint16
	suspectRows, neighborRows int
}

func newReqEnv(tb testing.TB) *reqEnv {
	tb.Helper()
	st := openRealStore(tb)
	signer, _, err := integrity.LoadOrCreate(filepath.Join(tb.TempDir(), "instance.key"))
	if err != nil {
		tb.Fatal(err)
	}
	e := &reqEnv{st: st, signer: signer, suspect: netip.MustParseAddr("198.51.100.4"), suspectPort: 51234, otherPort: 40000}
	var cfg Config
	add := func(dst *string, name, role string, sites ...string) {
		tok, hash, err := NewToken()
		if err != nil {
			tb.Fatal(err)
		}
		*dst = tok
		cfg.Tokens = append(cfg.Tokens, Token{Name: name, Role: role, SHA256: hash, Sites: sites})
	}
	add(&e.officer, "olivia", RoleOfficer)
	add(&e.analyst, "alice", RoleAnalyst)
	add(&e.scoped, "sam", RoleOfficer, "b.example")
	e.srv, err = New(cfg, st, prometheus.NewRegistry(), nil, slog.New(slog.DiscardHandler),
		WithRequisitions(st, signer, "connlog test"), WithHolds(st))
	if err != nil {
		tb.Fatal(err)
	}

	// Two days ago: well inside the 12 months of the connection records.
	e.base = time.Now().UTC().Truncate(time.Hour).Add(-48 * time.Hour)
	var hits []store.Hit
	add1 := func(ip netip.Addr, port uint16, t time.Time, method, path string) {
		hits = append(hits, store.Hit{
			Source:    store.Source{Topic: "nginx", Partition: 0, Offset: int64(len(hits))},
			EventTime: t, Ingested: t.Add(time.Second),
			ClientIP: ip, ClientPort: port, PeerIP: ip, ServerAddr: netip.MustParseAddr("192.0.2.10"), ServerPort: 443,
			Site: "a.example", Method: method, Path: path, Protocol: "HTTP/1.1", Status: 200, TLSProtocol: "TLSv1.3",
		})
	}
	for i := range 3 {
		add1(e.suspect, e.suspectPort, e.base.Add(time.Duration(i)*time.Second), "POST", "/comments/new")
	}
	e.suspectRows = 3
	add1(e.suspect, e.otherPort, e.base.Add(time.Minute), "GET", "/")
	add1(netip.MustParseAddr("198.51.100.5"), e.suspectPort, e.base.Add(time.Minute), "GET", "/")
	e.neighborRows = 2
	if err := st.Write(tb.Context(), store.Batch{Hits: hits}); err != nil {
		tb.Fatal(err)
	}
	return e
}

// do sends a request with a token, a purpose and a JSON body (if not nil)
// and returns the status, the headers and the body.
func (e *reqEnv) do(tb testing.TB, method, target, token string, body any) (int, http.Header, []byte) {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			tb.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req := httptest.NewRequestWithContext(tb.Context(), method, target, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Purpose", "PV 2026/123 OPJ Martin")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, req)
	return rec.Code, rec.Header(), rec.Body.Bytes()
}

func (e *reqEnv) requisitionBody(port uint16) map[string]any {
	return map[string]any{
		"authority":           "Tribunal judiciaire de Paris",
		"officer_name":        "OPJ Martin",
		"officer_service":     "OCLCTIC",
		"article":             "77-1-1",
		"procedure_reference": "PV 2026/123",
		"date_received":       e.base.Format(time.DateOnly),
		"selectors": []map[string]any{{
			"ip": e.suspect.String(), "port": port,
			"from": e.base.Add(-time.Hour).Format(time.RFC3339), "to": e.base.Add(time.Hour).Format(time.RFC3339),
		}},
	}
}

// auditRows returns the audit rows of endpoint, oldest first.
func (e *reqEnv) auditRows(tb testing.TB, endpoint string) []audit.Entry {
	tb.Helper()
	rows, err := e.st.Conn().Query(tb.Context(), "SELECT actor, role, method, status, rows, outcome, filters FROM "+
		e.st.Databases().Ops+".audit WHERE endpoint = '"+endpoint+"' ORDER BY time")
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var out []audit.Entry
	for rows.Next() {
		var a audit.Entry
		var status uint16
		var n uint64
		if err := rows.Scan(&a.Actor, &a.Role, &a.Method, &status, &n, &a.Outcome, &a.Filters); err != nil {
			tb.Fatal(err)
		}
		a.Status, a.Rows = int(status), int(n)
		out = append(out, a)
	}
	return out
}

// TestRequisitionCreateRunDownloadVerify is the acceptance "requisition
// test": create → run → download; the package verifies offline with the
// instance key and is rejected after any single-byte change in any file.
func TestRequisitionCreateRunDownloadVerify(t *testing.T) {
	e := newReqEnv(t)

	status, _, body := e.do(t, http.MethodPost, "/v1/requisitions", e.officer, e.requisitionBody(e.suspectPort))
	if status != http.StatusOK {
		t.Fatalf("create: %d %s", status, body)
	}
	var req legal.Requisition
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatal(err)
	}
	if req.ID == "" || req.CreatedBy != "olivia" || req.Article != "77-1-1" || len(req.Selectors) != 1 {
		t.Fatalf("created %+v", req)
	}

	status, _, body = e.do(t, http.MethodPost, "/v1/requisitions/"+req.ID+"/run", e.officer, nil)
	if status != http.StatusOK {
		t.Fatalf("run: %d %s", status, body)
	}
	var run runResult
	if err := json.Unmarshal(body, &run); err != nil {
		t.Fatal(err)
	}
	if run.Rows != e.suspectRows || run.KeyID != integrity.KeyID(e.signer.Public()) {
		t.Fatalf("run %+v, want %d rows", run, e.suspectRows)
	}

	status, hdr, pkg := e.do(t, http.MethodGet, run.Download, e.officer, nil)
	if status != http.StatusOK || hdr.Get("Content-Type") != "application/zip" {
		t.Fatalf("download: %d %s", status, hdr.Get("Content-Type"))
	}
	sum := sha256.Sum256(pkg)
	if got := hex.EncodeToString(sum[:]); got != run.ExportSHA256 || hdr.Get("X-Export-SHA256") != got {
		t.Fatalf("downloaded package hashes to %s, run said %s, header %s", got, run.ExportSHA256, hdr.Get("X-Export-SHA256"))
	}
	r, err := export.Verify(pkg, e.signer.Public())
	if err != nil || !r.OK() {
		t.Fatalf("verify: %v %v", err, r.Problems)
	}
	m := r.Manifest
	if m.Records != e.suspectRows || len(m.Queries) != 1 || !strings.Contains(m.Queries[0].Text, "connection_records") ||
		m.Queries[0].Parameters["port"] != "51234" || m.Software != "connlog test" {
		t.Errorf("manifest %+v", m)
	}
	// The manifest's query, run again with its parameters, gives the same records.
	qctx := clickhouse.Context(t.Context(), clickhouse.WithParameters(clickhouse.Parameters(m.Queries[0].Parameters)))
	again, err := e.st.Conn().Query(qctx, m.Queries[0].Text)
	if err != nil {
		t.Fatalf("manifest query: %v", err)
	}
	n := 0
	for again.Next() {
		n++
	}
	again.Close()
	if n != m.Records {
		t.Errorf("manifest query gives %d records, manifest says %d", n, m.Records)
	}
	var inManifest legal.Requisition
	if err := json.Unmarshal(m.Requisition, &inManifest); err != nil || inManifest.ProcedureRef != "PV 2026/123" || inManifest.ID != req.ID {
		t.Errorf("manifest requisition %s (%v)", m.Requisition, err)
	}
	// Any single changed byte in any file is caught.
	changed := 0
	for _, name := range []string{export.RecordsCSV, export.RecordsNDJSON, export.ManifestJSON, export.ManifestSig} {
		bad := changeByte(t, pkg, name)
		if r, err := export.Verify(bad, e.signer.Public()); err == nil || r.OK() {
			t.Errorf("%s with one byte changed: accepted", name)
		}
		changed++
	}
	if changed != 4 {
		t.Errorf("changed %d files", changed)
	}
	// The package's records are the suspect's, on the port asked for.
	if !bytes.Contains(unzipFile(t, pkg, export.RecordsNDJSON), []byte(`"client_ip":"198.51.100.4","client_port":51234`)) {
		t.Errorf("ndjson:\n%s", unzipFile(t, pkg, export.RecordsNDJSON))
	}

	// A second download gives the very same bytes.
	if _, _, again := e.do(t, http.MethodGet, run.Download, e.officer, nil); !bytes.Equal(again, pkg) {
		t.Error("a second download differs")
	}

	// Answered: recorded once, with the package sent.
	sent := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	status, _, body = e.do(t, http.MethodPost, "/v1/requisitions/"+req.ID+"/answered", e.officer,
		map[string]string{"sent_at": sent.Format(time.RFC3339), "how": "PNIJ platform"})
	if status != http.StatusOK {
		t.Fatalf("answered: %d %s", status, body)
	}
	status, _, _ = e.do(t, http.MethodPost, "/v1/requisitions/"+req.ID+"/answered", e.officer,
		map[string]string{"sent_at": sent.Format(time.RFC3339), "how": "again"})
	if status != http.StatusBadRequest {
		t.Errorf("answered twice: %d", status)
	}

	// The register shows it all.
	status, _, body = e.do(t, http.MethodGet, "/v1/requisitions/"+req.ID, e.officer, nil)
	var shown legal.Requisition
	if err := json.Unmarshal(body, &shown); status != 200 || err != nil {
		t.Fatalf("show: %d %s", status, body)
	}
	if len(shown.Runs) != 1 || shown.Runs[0].ExportSHA256 != run.ExportSHA256 || shown.Runs[0].Rows != uint64(e.suspectRows) ||
		shown.Answer == nil || !shown.Answer.SentAt.Equal(sent) || shown.Answer.How != "PNIJ platform" || shown.Answer.ExportSHA256 != run.ExportSHA256 {
		t.Errorf("register entry %+v", shown)
	}
	status, _, body = e.do(t, http.MethodGet, "/v1/requisitions", e.officer, nil)
	var list requisitionList
	if err := json.Unmarshal(body, &list); status != 200 || err != nil || list.Count != 1 || list.Requisitions[0].ID != req.ID {
		t.Errorf("list: %d %s", status, body)
	}

	// Every step left an audit row; the run and the download name the package.
	for _, ep := range []string{"/v1/requisitions/{id}/run", "/v1/requisitions/{id}/export"} {
		rows := e.auditRows(t, ep)
		if len(rows) == 0 || !strings.Contains(rows[0].Filters, run.ExportSHA256) || rows[0].Actor != "olivia" || rows[0].Rows != e.suspectRows {
			t.Errorf("audit of %s: %+v", ep, rows)
		}
	}
	if rows := e.auditRows(t, "/v1/requisitions"); len(rows) != 2 || rows[0].Method != "POST" || rows[1].Method != "GET" {
		t.Errorf("audit of /v1/requisitions: %+v", rows)
	}
}

func changeByte(tb testing.TB, pkg []byte, name string) []byte {
	tb.Helper()
	var names []string
	files := map[string][]byte{}
	zr := mustZip(tb, pkg)
	for _, f := range zr.File {
		names = append(names, f.Name)
		files[f.Name] = unzipFile(tb, pkg, f.Name)
	}
	files[name][len(files[name])/2] ^= 0x01
	return rezipFiles(tb, names, files)
}

func TestRequisitionRefusals(t *testing.T) {
	e := newReqEnv(t)
	valid := e.requisitionBody(0)
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for k2, v2 := range valid {
			m[k2] = v2
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name   string
		token  string
		method string
		target string
		body   any
		want   int
	}{
		{"analyst may not create", e.analyst, http.MethodPost, "/v1/requisitions", valid, 403},
		{"analyst may not list", e.analyst, http.MethodGet, "/v1/requisitions", nil, 403},
		{"missing authority", e.officer, http.MethodPost, "/v1/requisitions", with("authority", nil), 400},
		{"unknown article", e.officer, http.MethodPost, "/v1/requisitions", with("article", "12-3"), 400},
		{"other article without text", e.officer, http.MethodPost, "/v1/requisitions", with("article", "other"), 400},
		{"unknown field", e.officer, http.MethodPost, "/v1/requisitions", with("color", "red"), 400},
		{"no selector", e.officer, http.MethodPost, "/v1/requisitions", with("selectors", []any{}), 400},
		{"selector with SQL in the ip", e.officer, http.MethodPost, "/v1/requisitions",
			with("selectors", []map[string]any{{"ip": "1.2.3.4' OR 1=1 --", "from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}}), 400},
		{"selector of another site for a scoped officer", e.scoped, http.MethodPost, "/v1/requisitions",
			with("selectors", []map[string]any{{"ip": "198.51.100.4", "site": "a.example", "from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}}), 403},
		{"unknown requisition", e.officer, http.MethodGet, "/v1/requisitions/req-0000", nil, 404},
		{"run of an unknown requisition", e.officer, http.MethodPost, "/v1/requisitions/nope/run", nil, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := e.do(t, tt.method, tt.target, tt.token, tt.body)
			if status != tt.want {
				t.Errorf("status %d, want %d: %s", status, tt.want, body)
			}
		})
	}
	if n, err := e.st.Requisitions(t.Context()); err != nil || len(n) != 0 {
		t.Errorf("refused requests left %d requisitions (%v)", len(n), err)
	}
	// A scoped officer does not see requisitions outside its sites.
	status, _, body := e.do(t, http.MethodPost, "/v1/requisitions", e.officer, valid)
	var req legal.Requisition
	if err := json.Unmarshal(body, &req); status != 200 || err != nil {
		t.Fatalf("create: %d %s", status, body)
	}
	if status, _, _ := e.do(t, http.MethodGet, "/v1/requisitions/"+req.ID, e.scoped, nil); status != 404 {
		t.Errorf("scoped officer sees another site's requisition: %d", status)
	}
	if status, _, _ := e.do(t, http.MethodGet, "/v1/requisitions/"+req.ID+"/export", e.officer, nil); status != 404 {
		t.Errorf("download before any run: %d", status)
	}
	if status, _, _ := e.do(t, http.MethodPost, "/v1/requisitions/"+req.ID+"/answered", e.officer,
		map[string]string{"sent_at": time.Now().UTC().Format(time.RFC3339), "how": "mail"}); status != 400 {
		t.Errorf("answered before any run: %d", status)
	}
}

// TestHoldKeepsRecordsPastTheirTTLUntilReleased is the acceptance "hold
// test": a held record survives its TTL and disappears after release.
func TestHoldKeepsRecordsPastTheirTTLUntilReleased(t *testing.T) {
	e := newReqEnv(t)
	status, _, body := e.do(t, http.MethodPost, "/v1/requisitions", e.officer, e.requisitionBody(e.suspectPort))
	var req legal.Requisition
	if err := json.Unmarshal(body, &req); status != 200 || err != nil {
		t.Fatalf("create: %d %s", status, body)
	}
	expires := time.Now().UTC().Add(30 * 24 * time.Hour).Format(time.RFC3339)
	status, _, body = e.do(t, http.MethodPost, "/v1/holds", e.officer, map[string]any{"requisition_id": req.ID, "expires": expires})
	if status != http.StatusOK {
		t.Fatalf("hold: %d %s", status, body)
	}
	var created holdList
	if err := json.Unmarshal(body, &created); err != nil || created.Count != 1 || created.Holds[0].Rows != uint64(e.suspectRows) ||
		created.Holds[0].Reference != "PV 2026/123" || !created.Holds[0].Active {
		t.Fatalf("hold created %s", body)
	}
	holdID := created.Holds[0].ID

	// The connection records' TTL passes: the table's lifetime becomes one
	// day and the parts older than that are dropped, as the retention
	// engine does every day.
	db := e.st.Databases().Connections
	conn := e.st.Conn()
	if err := conn.Exec(t.Context(), "ALTER TABLE "+db+".connection_records MODIFY TTL toDateTime(event_time) + INTERVAL 1 DAY DELETE"); err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(t.Context(), "OPTIMIZE TABLE "+db+".connection_records FINAL"); err != nil {
		t.Fatal(err)
	}
	var live uint64
	if err := conn.QueryRow(t.Context(), "SELECT count() FROM "+db+".connection_records").Scan(&live); err != nil || live != 0 {
		t.Fatalf("%d connection records left after their TTL (%v)", live, err)
	}

	run := func() runResult {
		t.Helper()
		status, _, body := e.do(t, http.MethodPost, "/v1/requisitions/"+req.ID+"/run", e.officer, nil)
		var r runResult
		if err := json.Unmarshal(body, &r); status != 200 || err != nil {
			t.Fatalf("run: %d %s", status, body)
		}
		return r
	}
	if r := run(); r.Rows != e.suspectRows {
		t.Fatalf("after the TTL, a run finds %d held records, want %d", r.Rows, e.suspectRows)
	}

	status, _, body = e.do(t, http.MethodGet, "/v1/holds", e.officer, nil)
	var list holdList
	if err := json.Unmarshal(body, &list); status != 200 || err != nil || list.Count != 1 || list.Holds[0].ID != holdID {
		t.Fatalf("list holds: %d %s", status, body)
	}

	if status, _, body = e.do(t, http.MethodDelete, "/v1/holds/"+holdID, e.analyst, nil); status != 403 {
		t.Errorf("analyst released a hold: %d %s", status, body)
	}
	if status, _, body = e.do(t, http.MethodDelete, "/v1/holds/"+holdID, e.officer, nil); status != 200 {
		t.Fatalf("release: %d %s", status, body)
	}
	if r := run(); r.Rows != 0 {
		t.Errorf("after release, a run finds %d records, want 0", r.Rows)
	}
	if status, _, _ = e.do(t, http.MethodDelete, "/v1/holds/"+holdID, e.officer, nil); status != 400 {
		t.Errorf("second release: %d", status)
	}
	if status, _, _ = e.do(t, http.MethodDelete, "/v1/holds/h-unknown", e.officer, nil); status != 404 {
		t.Errorf("release of an unknown hold: %d", status)
	}
	status, _, body = e.do(t, http.MethodGet, "/v1/holds", e.officer, nil)
	if err := json.Unmarshal(body, &list); status != 200 || err != nil || list.Holds[0].Active || list.Holds[0].ReleasedBy != "olivia" {
		t.Errorf("hold after release: %s", body)
	}
	// Create, list, release (and the refused attempts) are audited.
	if n := len(e.auditRows(t, "/v1/holds")); n != 3 {
		t.Errorf("%d audit rows for /v1/holds, want 3", n)
	}
	if n := len(e.auditRows(t, "/v1/holds/{id}")); n != 4 {
		t.Errorf("%d audit rows for /v1/holds/{id}, want 4", n)
	}
}

func TestHoldFromSelector(t *testing.T) {
	e := newReqEnv(t)
	sel := map[string]any{"ip": "198.51.100.0/24", "from": e.base.Add(-time.Hour).Format(time.RFC3339), "to": e.base.Add(time.Hour).Format(time.RFC3339)}
	expires := time.Now().UTC().Add(24 * time.Hour).Format(time.RFC3339)
	status, _, body := e.do(t, http.MethodPost, "/v1/holds", e.officer, map[string]any{"reference": "GEL-1", "expires": expires, "selector": sel})
	var created holdList
	if err := json.Unmarshal(body, &created); status != 200 || err != nil || created.Holds[0].Rows != uint64(e.suspectRows+e.neighborRows) {
		t.Fatalf("hold: %d %s", status, body)
	}
	for _, bad := range []map[string]any{
		{"reference": "GEL-2", "expires": "2020-01-01T00:00:00Z", "selector": sel},
		{"reference": "", "expires": expires, "selector": sel},
		{"reference": "GEL-3", "expires": expires},
		{"reference": "GEL-4", "expires": expires, "selector": sel, "requisition_id": "req-1"},
	} {
		if status, _, body := e.do(t, http.MethodPost, "/v1/holds", e.officer, bad); status != 400 {
			t.Errorf("%v: %d %s", bad, status, body)
		}
	}
	if status, _, _ := e.do(t, http.MethodPost, "/v1/holds", e.scoped, map[string]any{"reference": "GEL-5", "expires": expires, "selector": sel}); status != 403 {
		t.Errorf("scoped officer held all sites: %d", status)
	}
	hs, err := e.st.ListHolds(t.Context())
	if err != nil || len(hs) != 1 {
		t.Errorf("%d holds after refusals (%v)", len(hs), err)
	}
}

func mustZip(tb testing.TB, pkg []byte) *zip.Reader {
	tb.Helper()
	zr, err := zip.NewReader(bytes.NewReader(pkg), int64(len(pkg)))
	if err != nil {
		tb.Fatal(err)
	}
	return zr
}

func unzipFile(tb testing.TB, pkg []byte, name string) []byte {
	tb.Helper()
	rc, err := mustZip(tb, pkg).Open(name)
	if err != nil {
		tb.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func rezipFiles(tb testing.TB, names []string, files map[string][]byte) []byte {
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
