package embedded_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/connlog/connlog/store/embedded"
	"github.com/connlog/connlog/store/embedded/embeddedtest"
)

// TestEngineRefusesFilesAndNetwork goes past the adapter's guard: the
// engine's own grants refuse sources and foreign table engines, and its
// profile refuses lifting the time limit.
func TestEngineRefusesFilesAndNetwork(t *testing.T) {
	addr := embeddedtest.Start(t)
	dir := t.TempDir()
	for _, q := range []string{
		"SELECT * FROM fileCluster('c', '/etc/passwd', 'LineAsString')", // not in the guard's list
		"SELECT * FROM urlCluster('c', 'http://127.0.0.1:1/', 'LineAsString')",
		"CREATE TABLE default.u (s String) ENGINE = URL('http://127.0.0.1:1/', 'LineAsString')",
		"CREATE TABLE default.f (s String) ENGINE = File(LineAsString, '" + filepath.Join(dir, "f") + "')",
		"CREATE TABLE default.d (s String) ENGINE = Distributed('c', 'db', 't')",
		"CREATE DICTIONARY default.dict (a String) PRIMARY KEY a SOURCE(HTTP(url 'http://127.0.0.1:1/' format 'CSV')) LAYOUT(FLAT()) LIFETIME(0)",
		"BACKUP DATABASE default TO File('" + filepath.Join(dir, "b") + "')",
		"SELECT count() FROM numbers(10) SETTINGS max_execution_time = 0",
		"SELECT count() FROM numbers(10) SETTINGS max_execution_time = 100000",
		"SELECT 1 FORMAT Template SETTINGS format_template_resultset = '/etc/passwd'",
		"SELECT 1 FORMAT Template SETTINGS format_template_row = '/etc/passwd'",
		"SELECT 1 FORMAT Protobuf SETTINGS format_schema = '/etc/passwd:Message'",
	} {
		if err := embeddedtest.Exec(addr, q); err == nil {
			t.Errorf("%q was allowed", q)
		} else if !strings.Contains(err.Error(), "ACCESS_DENIED") && !strings.Contains(err.Error(), "SETTING_CONSTRAINT_VIOLATION") {
			t.Errorf("%q: %v; want ACCESS_DENIED or SETTING_CONSTRAINT_VIOLATION", q, err)
		}
	}
	// URL values that ask for no limit get the engine's.
	resp, err := http.Post("http://"+addr+"/?max_execution_time=0", "text/plain", strings.NewReader("SELECT getSetting('max_execution_time')"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := strings.TrimSpace(string(body)); got != "60" {
		t.Errorf("max_execution_time with a request for 0: %q, want the engine's 60", got)
	}
}

// TestOperatorHandlerNeedsPassword checks the operator listener's
// credentials in every form ClickHouse clients send them.
func TestOperatorHandlerNeedsPassword(t *testing.T) {
	e, _ := embeddedtest.StartEngine(t)
	pwFile := filepath.Join(t.TempDir(), "clickhouse.password")
	pw, created, err := embedded.LoadOrCreatePassword(pwFile)
	if err != nil || !created {
		t.Fatal(created, err)
	}
	if fi, _ := os.Stat(pwFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("password file mode %s", fi.Mode().Perm())
	}
	if again, created, err := embedded.LoadOrCreatePassword(pwFile); err != nil || created || again != pw {
		t.Errorf("second load: %v %v", created, err)
	}
	ln := httptest.NewUnstartedServer(nil).Listener
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.ServeOperator(ctx, ln, pw) }()
	t.Cleanup(func() { cancel(); <-done })
	base := "http://" + ln.Addr().String()
	try := func(target string, set func(*http.Request)) int {
		req, _ := http.NewRequest(http.MethodPost, base+target, strings.NewReader("SELECT 1"))
		if set != nil {
			set(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for name, c := range map[string]struct {
		target string
		set    func(*http.Request)
		want   int
	}{
		"none":             {"/", nil, 401},
		"basic wrong":      {"/", func(r *http.Request) { r.SetBasicAuth("default", "x") }, 401},
		"basic other user": {"/", func(r *http.Request) { r.SetBasicAuth("root", pw) }, 401},
		"basic":            {"/", func(r *http.Request) { r.SetBasicAuth("default", pw) }, 200},
		"headers": {"/", func(r *http.Request) {
			r.Header.Set("X-ClickHouse-User", "default")
			r.Header.Set("X-ClickHouse-Key", pw)
		}, 200},
		"headers wrong":      {"/", func(r *http.Request) { r.Header.Set("X-ClickHouse-Key", "nope") }, 401},
		"url parameters":     {"/?" + url.Values{"user": {"default"}, "password": {pw}}.Encode(), nil, 200},
		"url password wrong": {"/?password=nope", nil, 401},
	} {
		if got := try(c.target, c.set); got != c.want {
			t.Errorf("%s: %d, want %d", name, got, c.want)
		}
	}
	if err := os.Chmod(pwFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := embedded.LoadOrCreatePassword(pwFile); err == nil {
		t.Error("a password file readable by others was accepted")
	}
}

// TestInProcessListener connects clickhouse-go through Listener.Dial: no
// socket, same protocol.
func TestInProcessListener(t *testing.T) {
	e, _ := embeddedtest.StartEngine(t)
	ln := embedded.NewListener()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	conn, err := clickhouse.Open(&clickhouse.Options{Protocol: clickhouse.HTTP, Addr: []string{ln.Addr().String()}, DialContext: ln.Dial})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n uint64
	if err := conn.QueryRow(t.Context(), "SELECT sum(number) FROM numbers(1000)").Scan(&n); err != nil || n != 499500 {
		t.Fatalf("through the in-process listener: %d, %v", n, err)
	}
	ln.Close()
	dctx, dcancel := context.WithTimeout(t.Context(), time.Second)
	defer dcancel()
	if _, err := ln.Dial(dctx, ""); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Dial after Close: %v", err)
	}
}
