package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The attack suite, engine part: what a local process (or an SSRF that
// reaches loopback) can do to a running `connlog serve` on embedded
// defaults. The Kafka part is in its own file.

// procSockets lists the sockets process pid has open: the TCP ones as
// "tcp LISTEN 127.0.0.1:8080" or "tcp ESTABLISHED 127.0.0.1:5000->127.0.0.1:9092",
// UDP ones as "udp 127.0.0.1:53", unix ones as "unix <path>" ("unix" alone
// for an unnamed one). It reads /proc: the process's socket inodes from its
// fd table, their addresses from the tables of its network namespace.
func procSockets(tb testing.TB, pid int) []string {
	tb.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		tb.Skipf("SKIPPED: cannot read the process's descriptors: %v", err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(target, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] = true
		}
	}
	found := map[string]bool{}
	var out []string
	for _, table := range []string{"tcp", "tcp6", "udp", "udp6"} {
		for _, f := range procTable(tb, pid, table) {
			// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
			if len(f) < 10 || !inodes[f[9]] {
				continue
			}
			found[f[9]] = true
			local, remote := procAddr(f[1]), procAddr(f[2])
			proto := strings.TrimSuffix(table, "6")
			switch {
			case proto == "udp":
				out = append(out, "udp "+local)
			case f[3] == "0A":
				out = append(out, "tcp LISTEN "+local)
			default:
				out = append(out, "tcp "+tcpState(f[3])+" "+local+"->"+remote)
			}
		}
	}
	for _, f := range procTable(tb, pid, "unix") {
		// Num RefCount Protocol Flags Type St Inode [Path]
		if len(f) < 7 || !inodes[f[6]] {
			continue
		}
		found[f[6]] = true
		if len(f) >= 8 {
			out = append(out, "unix "+f[7])
		} else {
			out = append(out, "unix")
		}
	}
	for ino := range inodes {
		if !found[ino] {
			out = append(out, "other socket "+ino) // netlink and the like
		}
	}
	sort.Strings(out)
	return out
}

func procTable(tb testing.TB, pid int, name string) [][]string {
	tb.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, name))
	if err != nil {
		return nil // no IPv6, say
	}
	defer f.Close()
	var rows [][]string
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		rows = append(rows, strings.Fields(sc.Text()))
	}
	return rows
}

// procAddr turns /proc/net/tcp's "0100007F:1F90" into "127.0.0.1:8080".
func procAddr(s string) string {
	hexIP, hexPort, _ := strings.Cut(s, ":")
	port, _ := strconv.ParseUint(hexPort, 16, 16)
	raw := make(net.IP, len(hexIP)/2)
	for i := range raw {
		b, _ := strconv.ParseUint(hexIP[2*i:2*i+2], 16, 8)
		raw[i] = byte(b)
	}
	// The kernel prints each 32-bit word in host (little-endian) order.
	for w := 0; w+4 <= len(raw); w += 4 {
		raw[w], raw[w+1], raw[w+2], raw[w+3] = raw[w+3], raw[w+2], raw[w+1], raw[w]
	}
	return net.JoinHostPort(raw.String(), strconv.FormatUint(port, 10))
}

func tcpState(hex string) string {
	switch hex {
	case "01":
		return "ESTABLISHED"
	case "06":
		return "TIME_WAIT"
	case "08":
		return "CLOSE_WAIT"
	}
	return "state-" + hex
}

// portOf returns the port of a host:port.
func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// TestEmbeddedDefaultsOpenNoEnginePort: on embedded defaults the process
// listens on the API and the embedded Kafka broker only, and every TCP
// connection it has is to one of those; no UDP, no named unix socket. The
// engine is reached in-process.
func TestEmbeddedDefaultsOpenNoEnginePort(t *testing.T) {
	in := startConnlog(t, "", "CONNLOG_EMBEDDED_CLICKHOUSE_LISTEN=")
	publish(t, in.kafka, in.shipper(), "nginx", genLines(20, time.Now().UTC().Add(-time.Minute)))
	waitAPIRows(t, in, 18) // the IPv4 ones

	socks := procSockets(t, in.cmd.Process.Pid)
	var listening []string
	for _, s := range socks {
		f := strings.Fields(s)
		switch {
		case f[0] == "tcp" && f[1] == "LISTEN":
			listening = append(listening, portOf(f[2]))
		case f[0] == "tcp":
			local, remote, _ := strings.Cut(f[2], "->")
			if lp, rp := portOf(local), portOf(remote); lp != portOf(in.api) && lp != portOf(in.kafka) && rp != portOf(in.kafka) && rp != portOf(in.api) {
				t.Errorf("connection to neither the API nor the broker: %s", s)
			}
		case f[0] == "udp":
			t.Errorf("UDP socket: %s", s)
		case f[0] == "unix" && len(f) > 1 && f[1] == filepath.Join(in.dataDir, "admin.sock"):
			// The operator commands' socket: only connlog's own uid is
			// answered (SO_PEERCRED), and the file is 0600 in a 0700
			// directory.
			if fi, err := os.Stat(f[1]); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("admin socket %s: %v %v, want mode 0600", f[1], fi.Mode(), err)
			}
			if fi, err := os.Stat(in.dataDir); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("data dir: %v %v, want 0700", fi.Mode(), err)
			}
		case f[0] == "unix" && len(f) > 1:
			t.Errorf("named unix socket: %s", s)
		}
	}
	sort.Strings(listening)
	want := []string{portOf(in.api), portOf(in.kafka)}
	sort.Strings(want)
	if strings.Join(listening, ",") != strings.Join(want, ",") {
		t.Errorf("listening on ports %v, want the API and the broker %v (all sockets: %v)", listening, want, socks)
	}
	if _, err := os.Stat(filepath.Join(in.dataDir, "clickhouse.password")); err == nil {
		t.Error("an engine password was created although no operator listener is configured")
	}
	// Nothing answers ClickHouse's protocol on the old default port or the
	// one the test set aside.
	for _, addr := range []string{"127.0.0.1:8123", in.ch} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			if resp, err := http.Get("http://" + addr + "/?query=SELECT%201"); err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if strings.TrimSpace(string(body)) == "1" {
					t.Errorf("%s answers ClickHouse queries", addr)
				}
			}
		}
	}
	t.Logf("sockets: %v", socks)
}

// TestOperatorListenerRefusesWithoutPasswordAndFilesAndNetwork: the opt-in
// operator listener refuses queries without the password (POST and GET
// ?query=), and with it still refuses file(), url(), remote() and their
// kin; nothing is stored, changed, read or written meanwhile.
func TestOperatorListenerRefusesWithoutPasswordAndFilesAndNetwork(t *testing.T) {
	in := startConnlog(t, "") // startConnlog opens the operator listener on in.ch
	publish(t, in.kafka, in.shipper(), "nginx", genLines(5, time.Now().UTC().Add(-time.Minute)))
	waitAPIRows(t, in, 5)
	in.waitRows("connlog_connections.connection_records", 5, 30*time.Second)
	time.Sleep(time.Second) // the audit journal stores the searches' rows
	pwFile := filepath.Join(in.dataDir, "clickhouse.password")
	fi, err := os.Stat(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %s, want 0600", pwFile, fi.Mode().Perm())
	}
	if !strings.Contains(in.stderr.String(), "full administrative access") {
		t.Error("no warning at start that the operator listener is full administrative access")
	}
	// The listener is on loopback only.
	for _, s := range procSockets(t, in.cmd.Process.Pid) {
		if f := strings.Fields(s); f[0] == "tcp" && f[1] == "LISTEN" && portOf(f[2]) == portOf(in.ch) && !strings.HasPrefix(f[2], "127.0.0.1:") {
			t.Errorf("operator listener not on loopback: %s", s)
		}
	}

	// A target the engine must never reach, and files it must never read
	// or write.
	var hits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, "1\n")
	}))
	defer target.Close()
	outDir := t.TempDir()
	secret := filepath.Join(in.dataDir, "instance.key")
	snapshot := func() string {
		return in.sql("SELECT (SELECT count() FROM connlog_ops.audit), (SELECT count() FROM connlog_access.access_log), (SELECT count() FROM connlog_connections.connection_records), (SELECT count() FROM system.tables WHERE database NOT IN ('system', 'INFORMATION_SCHEMA', 'information_schema'))")
	}
	before := snapshot()

	send := func(method, query, user, password string) (int, string) {
		t.Helper()
		var req *http.Request
		if method == http.MethodGet {
			req, _ = http.NewRequest(method, "http://"+in.ch+"/?"+url.Values{"query": {query}}.Encode(), nil)
		} else {
			req, _ = http.NewRequest(method, "http://"+in.ch+"/", strings.NewReader(query))
		}
		if user != "" || password != "" {
			req.SetBasicAuth(user, password)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(body))
	}

	pw := in.enginePassword()
	destructive := []string{
		"SELECT count() FROM connlog_access.access_log",
		"ALTER TABLE connlog_ops.audit DELETE WHERE 1 SETTINGS mutations_sync = 2",
		"TRUNCATE TABLE connlog_access.access_log",
		"INSERT INTO connlog_ops.audit (time, actor, purpose) VALUES (now64(3), 'forger', 'forged')",
	}
	for _, q := range destructive {
		for _, method := range []string{http.MethodPost, http.MethodGet} {
			for _, cred := range []struct{ user, pw string }{{"", ""}, {"default", "wrong-password-xxxxxxxx"}, {"admin", pw}} {
				code, body := send(method, q, cred.user, cred.pw)
				if code != http.StatusUnauthorized || !strings.Contains(body, "AUTHENTICATION_FAILED") {
					t.Errorf("%s %q as %q: %d %s; want 401 AUTHENTICATION_FAILED", method, q, cred.user, code, body)
				}
			}
		}
		// The other ways ClickHouse clients send credentials, wrong.
		req, _ := http.NewRequest(http.MethodPost, "http://"+in.ch+"/?user=default&password=nope", strings.NewReader(q))
		req.Header.Set("X-ClickHouse-User", "default")
		req.Header.Set("X-ClickHouse-Key", "nope")
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("headers and URL parameters with a wrong password: %v %v", resp, err)
		} else {
			resp.Body.Close()
		}
	}

	// With the password: full access to the tables (that is what it is),
	// but no file, no network.
	refused := []string{
		"SELECT * FROM file('/etc/passwd', 'LineAsString', 'line String')",
		"SELECT * FROM file('" + secret + "', 'RawBLOB')",
		"SELECT file('" + secret + "')",
		"SELECT `file`('/etc/passwd')",
		"SELECT * FROM url('" + target.URL + "/x', 'LineAsString', 'line String')",
		"SELECT * FROM url('http://" + in.api + "/readyz', 'LineAsString', 'line String')",
		"SELECT * FROM remote('" + in.kafka + "', system.one)",
		"SELECT * FROM remoteSecure('" + target.Listener.Addr().String() + "', system.one)",
		"SELECT * FROM s3('" + target.URL + "/b/k.csv', 'CSV')",
		"SELECT * FROM mysql('" + target.Listener.Addr().String() + "', 'd', 't', 'u', 'p')",
		"SELECT * FROM postgresql('" + target.Listener.Addr().String() + "', 'd', 't', 'u', 'p')",
		"SELECT * FROM executable('id', 'LineAsString', 'line String')",
		"INSERT INTO FUNCTION file('" + filepath.Join(outDir, "w.csv") + "', 'CSV', 'a UInt8') SELECT 1",
		"INSERT INTO FUNCTION url('" + target.URL + "/w', 'CSV', 'a UInt8') SELECT 1",
		"SELECT 1 INTO OUTFILE '" + filepath.Join(outDir, "out.txt") + "'",
		"CREATE TABLE default.evil (line String) ENGINE = URL('" + target.URL + "/e', 'LineAsString')",
		"CREATE TABLE default.evil2 (line String) ENGINE = File('LineAsString', '/etc/passwd')",
		"CREATE DICTIONARY default.evil3 (a String) PRIMARY KEY a SOURCE(HTTP(url '" + target.URL + "/d' format 'CSV')) LAYOUT(FLAT()) LIFETIME(0)",
		"BACKUP TABLE connlog_ops.audit TO File('" + filepath.Join(outDir, "b") + "')",
		"SELECT count() FROM numbers(10) SETTINGS max_execution_time = 0",
	}
	for _, q := range refused {
		for _, method := range []string{http.MethodPost, http.MethodGet} {
			code, body := send(method, q, "default", pw)
			if code == http.StatusOK {
				t.Errorf("%s %q with the password: 200 %s; want a refusal", method, q, body)
			}
		}
	}
	// The grants, not only the adapter, refuse: a spelling the adapter's
	// check does not know still fails in the engine.
	if code, body := send(http.MethodPost, "SELECT * FROM fileCluster('x', '/etc/passwd')", "default", pw); code == http.StatusOK {
		t.Errorf("fileCluster: 200 %s", body)
	}
	if code, body := send(http.MethodPost, "SELECT 1", "default", pw); code != http.StatusOK || body != "1" {
		t.Errorf("SELECT 1 with the password: %d %s", code, body)
	}

	if n := hits.Load(); n != 0 {
		t.Errorf("the engine sent %d requests to the target", n)
	}
	for _, f := range []string{"w.csv", "out.txt", "b"} {
		if _, err := os.Stat(filepath.Join(outDir, f)); err == nil {
			t.Errorf("the engine wrote %s", f)
		}
	}
	if after := snapshot(); after != before {
		t.Errorf("tables changed: before %q, after %q", before, after)
	}
}

// waitAPIRows waits until the API's access-log search of 10.0.0.0/8
// returns n rows of the last hours.
func waitAPIRows(tb testing.TB, in *instance, n int) {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if rows := in.access("10.0.0.0/8", time.Now().Add(-2*time.Hour), time.Now().Add(time.Minute), 10000); len(rows) >= n {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	tb.Fatalf("the API did not return %d rows within 60s", n)
}

// TestSlowStatementKeepsIngestAndReadiness: statements that run as long as
// the engine allows (max_query_time, here 3s; a request asking for no limit
// gets that one) hold the single-statement engine for at most that long:
// /readyz answers 200 throughout, and ingest goes on between them.
func TestSlowStatementKeepsIngestAndReadiness(t *testing.T) {
	in := startConnlog(t, "", "CONNLOG_EMBEDDED_CLICKHOUSE_MAX_QUERY_TIME=3s")
	pw := in.enginePassword()
	slow := func() (time.Duration, int, string) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+in.ch+"/?max_execution_time=0", strings.NewReader("SELECT count() FROM numbers(1e13)"))
		req.SetBasicAuth("default", pw)
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return time.Since(start), 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return time.Since(start), resp.StatusCode, string(body)
	}

	stop := make(chan struct{})
	var notReady, probes atomic.Int64
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			probes.Add(1)
			resp, err := http.Get("http://" + in.api + "/readyz")
			if err != nil || resp.StatusCode != http.StatusOK {
				notReady.Add(1)
			}
			if err == nil {
				resp.Body.Close()
			}
		}
	}()

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 3; i++ {
			d, code, body := slow()
			if code == http.StatusOK || !strings.Contains(body, "TIMEOUT_EXCEEDED") {
				t.Errorf("slow statement %d: %d %.200s; want TIMEOUT_EXCEEDED", i, code, body)
			}
			if d > 3*time.Second+statementSlack {
				t.Errorf("slow statement %d ran %s, past its 3s limit", i, d)
			}
		}
	}()
	// Ingest while the slow statements run back to back: every batch is
	// stored within the limit of the one statement ahead of it, plus slack.
	base := time.Now().UTC().Add(-time.Hour)
	published := 0
	for i := 0; i < 4; i++ {
		time.Sleep(1500 * time.Millisecond)
		lines := genLines(50, base)
		for j := range lines {
			lines[j].ip = fmt.Sprintf("10.200.%d.%d", i, j)
		}
		start := time.Now()
		publish(t, in.kafka, in.shipper(), "nginx", lines)
		published += len(lines)
		// Counted through the API: its statements are connlog's own and
		// go before the operator listener's (the test's slow ones).
		n := 0
		for deadline := time.Now().Add(3*time.Second + statementSlack); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if n = len(in.access("10.200.0.0/16", base.Add(-time.Hour), time.Now().Add(time.Minute), 1000)); n >= published {
				break
			}
		}
		if n < published {
			t.Errorf("batch %d: %d of %d rows stored after %s", i, n, published, time.Since(start))
		} else {
			t.Logf("batch %d stored %s after publishing", i, time.Since(start).Round(time.Millisecond))
		}
	}
	<-done
	close(stop)
	<-probed
	if t.Failed() {
		select {
		case <-in.exited:
			t.Logf("connlog exited: %v", in.cmd.ProcessState)
		default:
		}
		if raw, err := os.ReadFile(filepath.Join(in.dataDir, "clickhouse", "connlog-engine.log")); err == nil {
			t.Logf("engine log:\n%s", tail(string(raw), 6000))
		}
	}
	if n := notReady.Load(); n > 0 {
		t.Errorf("/readyz was not 200 for %d of %d probes during slow statements", n, probes.Load())
	}
}

// statementSlack covers the engine's check interval, queueing for the
// statement slot and the pipeline's flush interval on a loaded machine.
const statementSlack = 4 * time.Second
