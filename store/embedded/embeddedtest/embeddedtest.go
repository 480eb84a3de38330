// Package embeddedtest starts the embedded ClickHouse engine for tests of
// other packages: one engine per test process, serving ClickHouse's HTTP
// interface on a loopback port, reached with clickhouse-go and
// Protocol: clickhouse.HTTP.
//
// chDB allows one engine per process for the whole process lifetime, so the
// engine is shared by every test of the process and never closed; tests
// isolate themselves with their own database (see Database). Its data lives
// in a temporary directory that the next test process removes.
package embeddedtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/connlog/connlog/store/embedded"
)

// RequireEnv is the environment variable that turns a missing library into a
// test failure instead of a skip; the Makefile sets it to 1.
const RequireEnv = "CONNLOG_REQUIRE_ENGINE"

const dirPrefix = "connlog-embeddedtest-"

// shared is the process's engine. A package variable because the engine
// itself is process-wide.
var shared struct {
	once   sync.Once
	engine *embedded.Engine
	addr   string
	err    error
}

// Start returns the host:port of the process's embedded ClickHouse, starting
// it on first use (about half a second). Later calls are cheap. When the
// library is missing, Start skips the test, or fails it if
// CONNLOG_REQUIRE_ENGINE=1.
func Start(tb testing.TB) (addr string) {
	tb.Helper()
	_, addr = StartEngine(tb)
	return addr
}

// StartEngine is Start that also returns the Engine, e.g. for
// Engine.SetInsertFault. The engine is shared by all tests of the process: a
// test that installs a fault must remove it in t.Cleanup and must not run in
// parallel with tests that insert.
func StartEngine(tb testing.TB) (*embedded.Engine, string) {
	tb.Helper()
	lib := embedded.DefaultLibraryPath()
	if _, err := os.Stat(lib); err != nil {
		unavailable(tb, fmt.Sprintf("embedded ClickHouse library missing (%v): run scripts/fetch-chdb.sh, or set CONNLOG_CHDB_LIBRARY to libchdb.so", err))
	}
	shared.once.Do(func() { shared.engine, shared.addr, shared.err = start(lib) })
	if errors.Is(shared.err, embedded.ErrNeedsCgo) {
		unavailable(tb, shared.err.Error())
	}
	if shared.err != nil {
		tb.Fatalf("start embedded ClickHouse: %v", shared.err)
	}
	return shared.engine, shared.addr
}

// unavailable skips the test, loudly, or fails it under CONNLOG_REQUIRE_ENGINE=1.
func unavailable(tb testing.TB, msg string) {
	tb.Helper()
	if os.Getenv(RequireEnv) == "1" {
		tb.Fatal(msg)
	}
	tb.Skip("SKIPPED, NOT TESTED: " + msg + " (set " + RequireEnv + "=1 to fail instead)")
}

func start(lib string) (*embedded.Engine, string, error) {
	removeStaleDirs()
	dir, err := os.MkdirTemp("", dirPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return nil, "", err
	}
	e, err := embedded.Open(embedded.Config{Library: lib, Dir: dir}, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	go func() { _ = e.Serve(context.Background(), ln) }()
	return e, ln.Addr().String(), nil
}

// removeStaleDirs deletes data directories of earlier test processes that
// have exited.
func removeStaleDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		pid, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(d), dirPrefix), "-")
		if _, err := os.Stat("/proc/" + pid); err == nil {
			continue
		}
		_ = os.RemoveAll(d)
	}
}

// Database creates a fresh database for the test, dropped in t.Cleanup, and
// returns the engine's address and the database name.
func Database(tb testing.TB) (addr, database string) {
	tb.Helper()
	addr = Start(tb)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	database = "test_" + hex.EncodeToString(b)
	if err := Exec(addr, "CREATE DATABASE "+database); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := Exec(addr, "DROP DATABASE IF EXISTS "+database+" SYNC"); err != nil {
			tb.Error(err)
		}
	})
	return addr, database
}

// Exec runs one statement over plain HTTP, without clickhouse-go.
func Exec(addr, sql string) error {
	resp, err := http.Post("http://"+addr+"/?"+url.Values{"query": {sql}}.Encode(), "text/plain", nil)
	if err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("exec: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// Main runs the tests of a package that uses the engine and closes the
// engine before the process exits. Use it from TestMain:
//
//	func TestMain(m *testing.M) { embeddedtest.Main(m) }
//
// chDB's exit-time destructors crash when the engine is still open while
// the race detector finalises the process (racefini → exit → atexit), so a
// race-enabled test binary must close the engine first.
func Main(m *testing.M) {
	code := m.Run()
	if shared.engine != nil {
		_ = shared.engine.Close()
	}
	os.Exit(code)
}
