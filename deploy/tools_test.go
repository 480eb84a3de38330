package deploy

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// repoRoot is the module root: the deploy package lives one level below.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// missing skips (or, with CONNLOG_REQUIRE_TOOLS=1, fails) the test because
// something it needs is not installed.
func missing(t testing.TB, what string) {
	t.Helper()
	msg := "*** SKIPPED: " + what + " — run scripts/install-test-deps.sh (set CONNLOG_REQUIRE_TOOLS=1 to make this a failure) ***"
	if os.Getenv("CONNLOG_REQUIRE_TOOLS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// tool returns the path of an executable, or skips the test.
func tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		// Debian puts daemons in /usr/sbin, which a non-root PATH may lack.
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				return filepath.Join(dir, name)
			}
		}
		missing(t, name+" not found in PATH")
	}
	return p
}

// run runs a command with a deadline and fails the test with its output.
func run(t testing.TB, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// substitute replaces @NAME@ placeholders in a config file and writes the
// result into dir, failing if any placeholder is left.
func substitute(t testing.TB, src, dst string, vars map[string]string) {
	t.Helper()
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	for k, v := range vars {
		s = strings.ReplaceAll(s, "@"+k+"@", v)
	}
	if i := strings.Index(s, "@"); i >= 0 {
		for _, k := range []string{"@LOG@", "@KAFKA@", "@TOPIC@", "@STATE@", "@KAFKA_MECHANISM@", "@KAFKA_USER@", "@KAFKA_PASSWORD@"} {
			if strings.Contains(s, k) {
				t.Fatalf("%s: placeholder %s not substituted", src, k)
			}
		}
	}
	if err := os.WriteFile(dst, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it is true or the timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return cond()
}
