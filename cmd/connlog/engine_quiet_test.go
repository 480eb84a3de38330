package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/connlog/connlog/api"
)

// openPTY returns the two ends of a new pseudo-terminal. The engine logs
// to the console only when stderr is a terminal (that is where `make run`
// showed its <Fatal> lines), so the quiet-engine test gives connlog one.
func openPTY(tb testing.TB) (master, slave *os.File) {
	tb.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		tb.Skipf("SKIPPED: no pseudo-terminal: %v", err)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		m.Close()
		tb.Skipf("SKIPPED: unlock pseudo-terminal: %v", e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		m.Close()
		tb.Skipf("SKIPPED: pseudo-terminal number: %v", e)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		tb.Skipf("SKIPPED: open pseudo-terminal: %v", err)
	}
	return m, s
}

// ptyRun runs connlog with args and env, stderr on a fresh terminal, and
// collects what it writes there.
type ptyRun struct {
	cmd  *exec.Cmd
	out  syncBuffer
	done chan struct{} // closed when the terminal's output is read
}

func startOnPTY(tb testing.TB, env []string, args ...string) *ptyRun {
	tb.Helper()
	master, slave := openPTY(tb)
	r := &ptyRun{cmd: exec.Command(connlogBinary(tb), args...), done: make(chan struct{})}
	r.cmd.Env = env
	r.cmd.Stderr = slave
	if err := r.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	slave.Close()
	go func() {
		defer close(r.done)
		defer master.Close()
		_, _ = io.Copy(&r.out, master) // ends with EIO once the process is gone
	}()
	tb.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			_ = r.cmd.Process.Kill()
			_ = r.cmd.Wait()
		}
	})
	return r
}

func (r *ptyRun) wait(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	exited := make(chan error, 1)
	go func() { exited <- r.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			tb.Errorf("%v: %v\n%s", r.cmd.Args, err, r.out.String())
		}
	case <-time.After(timeout):
		_ = r.cmd.Process.Kill()
		tb.Fatalf("%v did not end within %s", r.cmd.Args, timeout)
	}
	<-r.done
}

// checkQuietEngine fails on any stderr line that is not connlog's JSON, on
// any <Fatal> or <Error> text, and on any engine record at Error level.
// It returns the number of lines.
func checkQuietEngine(tb testing.TB, name, out string) int {
	tb.Helper()
	n := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			continue
		}
		n++
		if strings.Contains(line, "<Fatal>") || strings.Contains(line, "<Error>") || strings.Contains(line, "<Critical>") {
			tb.Errorf("%s: engine error line: %s", name, line)
		}
		var rec struct {
			Level       string `json:"level"`
			Component   string `json:"component"`
			EngineLevel string `json:"engine_level"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			tb.Errorf("%s: stderr line is not connlog's JSON: %q", name, line)
			continue
		}
		if rec.Component == "embedded-engine" && (rec.Level == "ERROR" || rec.EngineLevel == "Fatal" || rec.EngineLevel == "Error") {
			tb.Errorf("%s: engine error record: %s", name, line)
		}
	}
	return n
}

// TestEngineIsQuiet runs the real binary on embedded defaults with stderr on
// a terminal through ingest, searches (API and `connlog search`),
// scheduled enforcement passes and a SIGTERM shutdown, then `connlog
// retention -enforce` on the same data: not one <Fatal> or <Error> engine
// line, and every stderr line is connlog's JSON.
func TestEngineIsQuiet(t *testing.T) {
	connlogBinary(t)
	dataDir := privateDir(t)
	// An admin token made beforehand: the first-start token banner is not a
	// log line and is not what this test is about.
	tok, _, err := api.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "admin.token"), []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	apiAddr, kafka := freePort(t), freePort(t)
	env := append(os.Environ(),
		"CONNLOG_DATA_DIR="+dataDir,
		"CONNLOG_API_LISTEN="+apiAddr,
		"CONNLOG_EMBEDDED_KAFKA_ADDR="+kafka,
		"CONNLOG_EMBEDDED_CLICKHOUSE_LISTEN=",
		"CONNLOG_KAFKA_FLUSH_INTERVAL=200ms",
		"CONNLOG_RETENTION_ENFORCE_INTERVAL=1s",
		"CONNLOG_SHUTDOWN_TIMEOUT=20s",
	)
	serve := startOnPTY(t, env, "serve")
	in := &instance{tb: t, cmd: serve.cmd, dataDir: dataDir, api: apiAddr, kafka: kafka}
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get("http://" + apiAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 90s:\n%s", serve.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	for round := 0; round < 3; round++ {
		publish(t, kafka, in.shipper(), "nginx", genLines(500, time.Now().UTC().Add(-time.Hour)))
	}
	waitAPIRows(t, in, 1350) // 3 × 450 IPv4 lines
	search := exec.Command(connlogBinary(t), "search", "-api", "http://"+apiAddr, "-ip", "10.0.0.0/8", "-purpose", "quiet engine test", "-since", "2h", "-limit", "5")
	search.Env = append(os.Environ(), "CONNLOG_TOKEN="+tok)
	if out, err := search.CombinedOutput(); err != nil {
		t.Fatalf("connlog search: %v\n%s", err, out)
	}
	// Let several scheduled enforcement passes run.
	for deadline := time.Now().Add(30 * time.Second); strings.Count(serve.out.String(), `"msg":"retention enforcement pass"`) < 3; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than 3 enforcement passes in 30s:\n%s", tail(serve.out.String(), 4000))
		}
	}
	_ = serve.cmd.Process.Signal(syscall.SIGTERM)
	serve.wait(t, 40*time.Second)
	if !strings.Contains(serve.out.String(), "stopped cleanly") {
		t.Errorf("serve did not stop cleanly:\n%s", tail(serve.out.String(), 3000))
	}
	n := checkQuietEngine(t, "serve", serve.out.String())

	retention := startOnPTY(t, env, "retention", "-enforce")
	retention.wait(t, 90*time.Second)
	// retention prints its report on stdout; stderr holds only log lines.
	m := checkQuietEngine(t, "retention -enforce", retention.out.String())
	t.Logf("serve wrote %d log lines, retention %d", n, m)
	if bytes.Contains([]byte(serve.out.String()), []byte(`"component":"embedded-engine"`)) {
		t.Logf("engine records: %s", grepLines(serve.out.String(), `"component":"embedded-engine"`))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
