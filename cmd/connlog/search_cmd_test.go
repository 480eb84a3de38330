package main

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connlog/connlog/api"
	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/storetest"
)

// searchAPI serves the query API over a real store on the embedded engine
// with 12 requests of 203.0.113.7 in the last hours, and returns its URL
// and an analyst's and an officer's token.
func searchAPI(t *testing.T) (base, analyst, officer string) {
	t.Helper()
	st := storetest.New(t)
	now := time.Now().UTC()
	var hits []store.Hit
	for i := range 12 {
		method := "GET"
		if i%3 == 0 {
			method = "POST"
		}
		hits = append(hits, store.Hit{
			Source:    store.Source{Topic: "nginx", Offset: int64(i)},
			EventTime: now.Add(-time.Duration(i+1) * time.Hour), Ingested: now,
			ClientIP: netip.MustParseAddr("203.0.113.7"), ClientPort: uint16(40000 + i), Site: "www.example.org",
			Method: method, Path: fmt.Sprintf("/p/%d", i), Status: 200, UserAgent: "curl/8.5.0\tx",
		})
	}
	if err := st.Write(t.Context(), store.Batch{Hits: hits}); err != nil {
		t.Fatal(err)
	}
	var acfg api.Config
	tokens := map[string]string{}
	for _, role := range []string{api.RoleAnalyst, api.RoleOfficer} {
		tok, sum, err := api.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		tokens[role] = tok
		acfg.Tokens = append(acfg.Tokens, api.Token{Name: role + "-1", Role: role, SHA256: sum})
	}
	srv, err := api.New(acfg, st, prometheus.NewRegistry(), nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return hs.URL, tokens[api.RoleAnalyst], tokens[api.RoleOfficer]
}

func TestSearchCommand(t *testing.T) {
	base, analyst, officer := searchAPI(t)
	t.Setenv("CONNLOG_API", base)
	t.Setenv("CONNLOG_TOKEN", analyst)
	run := func(args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		err := cmdSearch(t.Context(), args, &out, &errOut)
		return out.String(), errOut.String(), err
	}

	out, info, err := run("-ip", "203.0.113.7", "-since", "24h", "-purpose", "INC-1234")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 13 || !strings.HasPrefix(lines[0], "TIME") || !strings.Contains(lines[1], "203.0.113.7") || strings.Contains(out, "\tx") {
		t.Errorf("table:\n%s", out)
	}
	if !strings.HasPrefix(info, "12 rows") {
		t.Errorf("stderr %q", info)
	}

	out, _, err = run("-ip", "203.0.113.0/24", "-since", "5h30m", "-method", "POST", "-purpose", "INC-1234", "-csv")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(recs) != 3 || recs[0][0] != "time" { // header, offsets 0 and 3
		t.Errorf("CSV %q: %v", out, err)
	}

	out, _, err = run("-ip", "203.0.113.7", "-purpose", "INC-1234", "-json", "-limit", "0")
	if err != nil || strings.Count(out, "\n") != 12 || !strings.HasPrefix(out, `{"time":`) {
		t.Errorf("NDJSON %q: %v", out, err)
	}

	// The officer's search of the connection records, token from a file.
	tf := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tf, []byte(officer+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err = run("-ip", "203.0.113.7", "-purpose", "REQ-9", "-connections", "-operation", "create", "-token-file", tf)
	if err != nil || strings.Count(out, "create") != 4 {
		t.Errorf("connections:\n%s\n%v", out, err)
	}

	// Refusals say why, and never print the token.
	_, _, err = run("-ip", "203.0.113.7", "-purpose", "REQ-9", "-connections")
	if err == nil || !strings.Contains(err.Error(), "forbidden") || strings.Contains(err.Error(), analyst) {
		t.Errorf("analyst on connection records: %v", err)
	}
	t.Setenv("CONNLOG_TOKEN", "cl_wrong")
	if _, _, err = run("-ip", "203.0.113.7", "-purpose", "INC-1"); err == nil || !strings.Contains(err.Error(), "unauthenticated") || strings.Contains(err.Error(), "cl_wrong") {
		t.Errorf("bad token: %v", err)
	}
	for _, args := range [][]string{{"-purpose", "INC-1"}, {"-ip", "203.0.113.7"}, {"-ip", "x", "-purpose", "INC-1", "-json", "-csv"}, {"-ip", "x", "-purpose", "INC-1", "-operation", "read"}} {
		if _, _, err := run(args...); err == nil {
			t.Errorf("%q: accepted", args)
		}
	}
	t.Setenv("CONNLOG_API", "ftp://nowhere")
	if _, _, err := run("-ip", "203.0.113.7", "-purpose", "INC-1"); err == nil || !strings.Contains(err.Error(), "http") {
		t.Errorf("bad API address: %v", err)
	}
}

func TestSearchClientConfigFile(t *testing.T) {
	dir := t.TempDir()
	tf := filepath.Join(dir, "tok")
	if err := os.WriteFile(tf, []byte("cl_fromfile\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cf := filepath.Join(dir, "search.yaml")
	if err := os.WriteFile(cf, []byte("api: https://connlog.example.org:8443\ntoken_file: "+tf+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONNLOG_API", "")
	t.Setenv("CONNLOG_TOKEN", "")
	base, tok, err := searchClientSettings("", "", cf)
	if err != nil || base != "https://connlog.example.org:8443" || tok != "cl_fromfile" {
		t.Errorf("from the file: %q %q %v", base, tok, err)
	}
	t.Setenv("CONNLOG_API", "http://10.0.0.1:8080")
	t.Setenv("CONNLOG_TOKEN", "cl_fromenv")
	base, tok, err = searchClientSettings("", "", cf)
	if err != nil || base != "http://10.0.0.1:8080" || tok != "cl_fromenv" {
		t.Errorf("the environment over the file: %q %q %v", base, tok, err)
	}
	if err := os.WriteFile(cf, []byte("api: x\ntokn_file: y\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := searchClientSettings("", "", cf); err == nil {
		t.Error("a misspelt key is accepted")
	}
}
