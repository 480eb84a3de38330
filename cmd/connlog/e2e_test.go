package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/connlog/connlog/ingest/broker"
	"github.com/connlog/connlog/ingest/kafkaclient"
	"github.com/connlog/connlog/store/embedded"
)

// These tests run the real binary in embedded mode: chDB as ClickHouse, and
// a Kafka-protocol broker (the binary's own, or kfake in the test process
// when the broker must outlive a crash of connlog).

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func connlogBinary(tb testing.TB) string {
	tb.Helper()
	lib := embedded.DefaultLibraryPath()
	if _, err := os.Stat(lib); err != nil {
		if os.Getenv("CONNLOG_REQUIRE_ENGINE") == "1" {
			tb.Fatalf("embedded ClickHouse library %s missing: run scripts/fetch-chdb.sh", lib)
		}
		tb.Skipf("SKIPPED: embedded ClickHouse library %s missing: run scripts/fetch-chdb.sh (make test does)", lib)
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "connlog-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "connlog")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binPath
}

func freePort(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// instance is one running connlog serve process.
type instance struct {
	tb      testing.TB
	cmd     *exec.Cmd
	dataDir string
	api     string
	ch      string
	kafka   string
	stderr  *syncBuffer
	env     []string
	exited  chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startConnlog starts `connlog serve` with a fresh data dir (or the given
// one) and waits until /readyz answers 200. extraEnv overrides settings.
func startConnlog(tb testing.TB, dataDir string, extraEnv ...string) *instance {
	tb.Helper()
	connlogBinary(tb) // build (or skip) before picking ports
	if dataDir == "" {
		dataDir = privateDir(tb)
	}
	in := &instance{tb: tb, dataDir: dataDir, api: freePort(tb), ch: freePort(tb), kafka: freePort(tb), stderr: &syncBuffer{}, exited: make(chan struct{})}
	for _, kv := range extraEnv {
		// A test that must know the API's address before the start (e.g.
		// for a redirect URL in the configuration) picks it.
		if addr, ok := strings.CutPrefix(kv, "CONNLOG_API_LISTEN="); ok {
			in.api = addr
		}
	}
	in.env = append(os.Environ(),
		"CONNLOG_DATA_DIR="+dataDir,
		"CONNLOG_API_LISTEN="+in.api,
		"CONNLOG_EMBEDDED_CLICKHOUSE_LISTEN="+in.ch,
		"CONNLOG_EMBEDDED_KAFKA_ADDR="+in.kafka,
		"CONNLOG_KAFKA_FLUSH_INTERVAL=200ms",
		"CONNLOG_SHUTDOWN_TIMEOUT=20s",
	)
	in.env = append(in.env, extraEnv...)
	tb.Cleanup(func() {
		select {
		case <-in.exited:
		default:
			in.cmd.Process.Kill()
			<-in.exited
		}
		if tb.Failed() {
			tb.Logf("connlog stderr:\n%s", tail(in.stderr.String(), 8000))
		}
	})
	in.start()
	return in
}

func (in *instance) start() {
	tb := in.tb
	in.cmd = exec.Command(connlogBinary(tb), "serve")
	in.cmd.Env = in.env
	in.cmd.Stderr = in.stderr
	in.cmd.Stdout = in.stderr // both streams, as a log collector takes them: not a terminal
	in.exited = make(chan struct{})
	if err := in.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := in.exited
	go func() { _ = in.cmd.Wait(); close(exited) }() // the exit status is read from ProcessState
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-in.exited:
			tb.Fatalf("connlog exited during start-up: %v\n%s", in.cmd.ProcessState, in.stderr.String())
		default:
		}
		resp, err := http.Get("http://" + in.api + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.Fatalf("connlog not ready after 90s:\n%s", in.stderr.String())
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func (in *instance) token() string {
	raw, err := os.ReadFile(filepath.Join(in.dataDir, "admin.token"))
	if err != nil {
		in.tb.Fatal(err)
	}
	return strings.TrimSpace(string(raw))
}

// sql runs a query on the embedded engine's operator listener, with its
// password.
func (in *instance) sql(query string) string {
	in.tb.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+in.ch+"/", strings.NewReader(query))
	req.SetBasicAuth("default", in.enginePassword())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		in.tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		in.tb.Fatalf("%s: %d %s", query, resp.StatusCode, body)
	}
	return strings.TrimSpace(string(body))
}

func (in *instance) enginePassword() string {
	in.tb.Helper()
	raw, err := os.ReadFile(filepath.Join(in.dataDir, "clickhouse.password"))
	if err != nil {
		in.tb.Fatal(err)
	}
	return strings.TrimSpace(string(raw))
}

func (in *instance) get(path string, header map[string]string) (int, []byte) {
	in.tb.Helper()
	req, _ := http.NewRequest("GET", "http://"+in.api+path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		in.tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// line is one generated request, with what the access log must hold.
type line struct {
	ip, method, path, query, proto, referer, ua, user string
	status                                            int
	bytes                                             uint64
	t                                                 time.Time
}

func (l line) combined() string {
	req := l.method + " " + l.path
	if l.query != "" {
		req += "?" + l.query
	}
	user := l.user
	if user == "" {
		user = "-"
	}
	return fmt.Sprintf(`%s - %s [%s] "%s %s" %d %d "%s" "%s"`, l.ip, user, l.t.Format("02/Jan/2006:15:04:05 -0700"), req, l.proto, l.status, l.bytes, l.referer, l.ua)
}

// genLines makes n distinct requests within the last hour: IPv4 clients in
// 10.0.0.0/8 and every tenth one IPv6 in 2001:db8::/32.
func genLines(n int, base time.Time) []line {
	methods := []string{"GET", "POST", "PUT", "DELETE", "HEAD"}
	out := make([]line, n)
	for i := range out {
		ip := fmt.Sprintf("10.%d.%d.%d", i/65536%256, i/256%256, i%256)
		if i%10 == 9 {
			ip = fmt.Sprintf("2001:db8::%x", i)
		}
		loc := time.FixedZone("", 3600*(i%3-1))
		l := line{
			ip: ip, method: methods[i%len(methods)], path: fmt.Sprintf("/p/%d/item", i), proto: "HTTP/1.1",
			referer: "-", ua: fmt.Sprintf("Mozilla/5.0 (test %d)", i), status: 200 + i%5, bytes: uint64(i * 7),
			t: base.Add(time.Duration(i) * 100 * time.Millisecond).Truncate(time.Second).In(loc),
		}
		if i%4 == 0 {
			l.query = fmt.Sprintf("a=%d&b=x", i)
		}
		if i%6 == 0 {
			l.referer = "https://ref.example.org/" + strconv.Itoa(i)
		}
		if i%8 == 0 {
			l.user = "user" + strconv.Itoa(i)
		}
		out[i] = l
	}
	return out
}

// shipper returns the embedded broker's produce-only identity, which serve
// keeps in its data directory.
func (in *instance) shipper() kafkaclient.SASL {
	in.tb.Helper()
	s, err := kafkaclient.ReadSASLFile(filepath.Join(in.dataDir, broker.ShipperCredentialsFile))
	if err != nil {
		in.tb.Fatal(err)
	}
	return s
}

// brokerEnv points connlog serve at a broker started by the test, with the
// broker's consumer identity.
func brokerEnv(b *broker.Broker) []string {
	c := b.Consumer()
	return []string{"CONNLOG_KAFKA_BROKERS=" + b.Addrs()[0], "CONNLOG_KAFKA_SASL_MECHANISM=" + c.Mechanism,
		"CONNLOG_KAFKA_SASL_USERNAME=" + c.Username, "CONNLOG_KAFKA_SASL_PASSWORD=" + string(c.Password)}
}

func publish(tb testing.TB, brokers string, id kafkaclient.SASL, topic string, lines []line) {
	tb.Helper()
	if err := publishLines(tb.Context(), brokers, id, topic, lines); err != nil {
		tb.Fatal(err)
	}
}

func publishLines(ctx context.Context, brokers string, id kafkaclient.SASL, topic string, lines []line) error {
	var buf bytes.Buffer
	for _, l := range lines {
		buf.WriteString(l.combined())
		buf.WriteByte('\n')
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	n, err := kafkaclient.Publish(ctx, kafkaclient.PublishConfig{Brokers: []string{brokers}, Topic: topic, SASL: id}, &buf)
	if err != nil || n != len(lines) {
		return fmt.Errorf("published %d of %d lines: %v", n, len(lines), err)
	}
	return nil
}

// apiRow is the subset of a /v1/access row the test checks.
type apiRow struct {
	Time      string `json:"time"`
	ClientIP  string `json:"client_ip"`
	Method    string `json:"method"`
	Path      string `json:"path"`
	Query     string `json:"query"`
	Protocol  string `json:"protocol"`
	Status    int    `json:"status"`
	Bytes     uint64 `json:"bytes"`
	Referer   string `json:"referer"`
	UserAgent string `json:"user_agent"`
	User      string `json:"user"`
	Topic     string `json:"topic"`
}

func (in *instance) access(network string, from, to time.Time, limit int) []apiRow {
	in.tb.Helper()
	q := url.Values{"ip": {network}, "from": {from.UTC().Format(time.RFC3339)}, "to": {to.UTC().Format(time.RFC3339)}, "limit": {strconv.Itoa(limit)}}
	code, body := in.get("/v1/access?"+q.Encode(), map[string]string{"Authorization": "Bearer " + in.token(), "X-Purpose": "e2e test"})
	if code != 200 {
		in.tb.Fatalf("GET /v1/access: %d %s", code, body)
	}
	var resp struct {
		Rows []apiRow `json:"rows"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		in.tb.Fatal(err)
	}
	return resp.Rows
}

func (in *instance) waitRows(table string, want int, timeout time.Duration) int {
	in.tb.Helper()
	deadline := time.Now().Add(timeout)
	var n int
	for time.Now().Before(deadline) {
		n, _ = strconv.Atoi(in.sql("SELECT count() FROM " + table))
		if n >= want {
			return n
		}
		time.Sleep(200 * time.Millisecond)
	}
	return n
}

func TestEndToEndTenThousandLinesComeBackFieldByField(t *testing.T) {
	in := startConnlog(t, "")
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	lines := genLines(10000, base)
	publish(t, in.kafka, in.shipper(), "nginx", lines)
	if n := in.waitRows("connlog_access.access_log", len(lines), 60*time.Second); n != len(lines) {
		t.Fatalf("access log holds %d rows, want %d", n, len(lines))
	}
	if n := in.waitRows("connlog_connections.connection_records", len(lines), 10*time.Second); n != len(lines) {
		t.Fatalf("connection records hold %d rows, want %d", n, len(lines))
	}

	want := map[string]line{}
	for _, l := range lines {
		want[l.ip] = l
	}
	got := in.access("10.0.0.0/8", base.Add(-time.Minute), base.Add(time.Hour), 10000)
	got = append(got, in.access("2001:db8::/32", base.Add(-time.Minute), base.Add(time.Hour), 10000)...)
	if len(got) != len(lines) {
		t.Fatalf("API returned %d rows, want %d", len(got), len(lines))
	}
	seen := map[string]bool{}
	for _, r := range got {
		l, ok := want[r.ClientIP]
		if !ok || seen[r.ClientIP] {
			t.Fatalf("unexpected or repeated row %+v", r)
		}
		seen[r.ClientIP] = true
		referer := l.referer
		if referer == "-" {
			referer = ""
		}
		exp := apiRow{
			Time: l.t.UTC().Format("2006-01-02T15:04:05.000Z07:00"), ClientIP: l.ip, Method: l.method, Path: l.path, Query: l.query,
			Protocol: l.proto, Status: l.status, Bytes: l.bytes, Referer: referer, UserAgent: l.ua, User: l.user, Topic: "nginx",
		}
		if r != exp {
			t.Fatalf("row differs from the published line\n got %+v\nwant %+v\nline %s", r, exp, l.combined())
		}
	}
}

func TestAPIRefusalsAreAudited(t *testing.T) {
	// Refusals of bad credentials are counted per source and window: a
	// short window, so that their rows arrive within the test.
	in := startConnlog(t, "", "CONNLOG_API_BAD_CREDENTIALS_AUDIT_WINDOW=1s")
	q := "/v1/access?ip=203.0.113.7&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z"
	firstRefusal := time.Now()
	// Audit times have millisecond precision and the trail is read in
	// time order: two requests within one millisecond would leave their
	// order to the engine (CI saw the 400 before the 401 once).
	apart := func() { time.Sleep(3 * time.Millisecond) }
	if code, body := in.get(q, nil); code != 401 {
		t.Errorf("no token: %d %s, want 401", code, body)
	}
	apart()
	if code, body := in.get(q, map[string]string{"Authorization": "Bearer " + in.token()}); code != 400 {
		t.Errorf("no purpose: %d %s, want 400", code, body)
	}
	apart()
	if code, body := in.get(q, map[string]string{"Authorization": "Bearer " + in.token(), "X-Purpose": "INC-42"}); code != 200 {
		t.Errorf("token and purpose: %d %s, want 200", code, body)
	}
	// When the answer arrived, its audit row was already on disk in the
	// journal (or already shipped to ClickHouse).
	journal, _ := filepath.Glob(filepath.Join(in.dataDir, "audit-journal", "*.jsonl"))
	var journaled []byte
	for _, f := range journal {
		b, _ := os.ReadFile(f)
		journaled = append(journaled, b...)
	}
	shipped := in.sql("SELECT count() FROM connlog_ops.audit WHERE purpose = 'INC-42'")
	if !bytes.Contains(journaled, []byte(`"purpose":"INC-42"`)) && shipped != "1" {
		t.Errorf("the answer came before its audit row was durable (journal %q, ClickHouse %s rows)", journaled, shipped)
	}
	// The journal stores its rows in ClickHouse within its interval.
	want := "401\tdenied\t\t\n400\tinvalid\tadmin\t\n200\tok\tadmin\tINC-42"
	var got string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got = in.sql("SELECT status, outcome, actor, purpose FROM connlog_ops.audit ORDER BY time FORMAT TSV"); got == want {
			break
		}
	}
	if got != want {
		t.Errorf("audit trail:\n%s\nwant\n%s", got, want)
	}
	// A flood of bad tokens: 429 past the source's burst (10, one taken
	// by the request without a token), and a few counted rows, not one each.
	codes := map[int]int{}
	for range 50 {
		code, _ := in.get(q, map[string]string{"Authorization": "Bearer cl_guess", "X-Purpose": "INC-42"})
		codes[code]++
	}
	// The bucket refills one token a second: on a loaded machine the
	// flood may outlast a refill or two.
	refills := int(time.Since(firstRefusal) / time.Second)
	if codes[401] < 9 || codes[401] > 9+refills || codes[401]+codes[429] != 50 {
		t.Errorf("bad-token flood answered %v, want 9 × 401 (+%d refilled) then 429", codes, refills)
	}
	want = fmt.Sprintf("401\t%d\n429\t%d", codes[401]+1, codes[429])
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got = in.sql("SELECT status, sum(requests) FROM connlog_ops.audit WHERE actor = '' GROUP BY status ORDER BY status FORMAT TSV"); got == want {
			break
		}
	}
	if got != want {
		t.Errorf("counted refusals:\n%s\nwant\n%s", got, want)
	}
	// At most 2 statuses × 2 reasons, over the 1 s windows the flood spans.
	if n, _ := strconv.Atoi(in.sql("SELECT count() FROM connlog_ops.audit WHERE actor = ''")); n > 12 {
		t.Errorf("%d audit rows for 51 refused requests, want a few", n)
	}
	for _, p := range []string{"/healthz", "/metrics"} {
		if code, _ := in.get(p, nil); code != 200 {
			t.Errorf("%s: %d", p, code)
		}
	}
	publish(t, in.kafka, in.shipper(), "nginx", genLines(3, time.Now().UTC().Add(-time.Minute)))
	in.waitRows("connlog_access.access_log", 3, 30*time.Second)
	// the counters move right after ClickHouse acknowledged the rows
	deadline := time.Now().Add(10 * time.Second)
	var metrics []byte
	for time.Now().Before(deadline) {
		_, metrics = in.get("/metrics", nil)
		if bytes.Contains(metrics, []byte(`connlog_ingest_lines_total{result="stored",topic="nginx"} 3`)) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, want := range []string{`connlog_ingest_lines_total{result="stored",topic="nginx"} 3`, `connlog_api_requests_total{code="401",endpoint="/v1/access"} 1`} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// A first start with stdout not a terminal (a service manager, a log
// collector): the admin token it creates appears nowhere in the output, from
// start to stop, nor in the metrics; the log says where the file is.
func TestFirstStartKeepsTheTokenOutOfTheLogs(t *testing.T) {
	in := startConnlog(t, "")
	tok := in.token()
	if code, body := in.get("/v1/retention", map[string]string{"Authorization": "Bearer " + tok, "X-Purpose": "INC-42"}); code != 200 {
		t.Fatalf("the token from the file: %d %s", code, body)
	}
	if _, metrics := in.get("/metrics", nil); bytes.Contains(metrics, []byte(tok[len(tok)-16:])) {
		t.Error("the admin token appears in /metrics")
	}
	in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("connlog did not stop within 30s of SIGTERM")
	}
	out := in.stderr.String()
	if strings.Contains(out, tok) || strings.Contains(out, tok[len(tok)-16:]) {
		t.Error("the admin token appears in connlog's output")
	}
	// Every other secret of a first start: the broker's two SASL
	// passwords and the operator listener's password.
	secrets := map[string]string{}
	for _, f := range []string{broker.ShipperCredentialsFile, broker.ConsumerCredentialsFile} {
		id, err := kafkaclient.ReadSASLFile(filepath.Join(in.dataDir, f))
		if err != nil {
			t.Fatal(err)
		}
		secrets[f] = string(id.Password)
	}
	raw, err := os.ReadFile(filepath.Join(in.dataDir, "clickhouse.password"))
	if err != nil {
		t.Fatal(err)
	}
	secrets["clickhouse.password"] = strings.TrimSpace(string(raw))
	for f, secret := range secrets {
		if len(secret) < 16 {
			t.Fatalf("%s: secret %q too short to look for", f, secret)
		}
		if strings.Contains(out, secret) || strings.Contains(out, secret[len(secret)-12:]) {
			t.Errorf("the secret of %s appears in connlog's output", f)
		}
		// Those meant for people are named by their path; connlog's own
		// consumer identity need not be.
		if f != broker.ConsumerCredentialsFile && !strings.Contains(out, filepath.Join(in.dataDir, f)) {
			t.Errorf("the path of %s is not logged", f)
		}
	}
	if !strings.Contains(out, `"path":"`+filepath.Join(in.dataDir, "admin.token")+`"`) {
		t.Errorf("the token file's path is not logged:\n%s", tail(out, 3000))
	}
}

func TestSIGTERMStopsCleanlyAndCommits(t *testing.T) {
	in := startConnlog(t, "")
	lines := genLines(2000, time.Now().UTC().Add(-time.Hour))
	publish(t, in.kafka, in.shipper(), "nginx", lines)
	in.waitRows("connlog_access.access_log", len(lines), 60*time.Second)
	start := time.Now()
	in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("connlog did not stop within 30s of SIGTERM")
	}
	if code := in.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0\n%s", code, tail(in.stderr.String(), 3000))
	}
	if !strings.Contains(in.stderr.String(), "stopped cleanly") {
		t.Errorf("no clean-stop log line")
	}
	t.Logf("stopped %s after SIGTERM", time.Since(start).Round(time.Millisecond))
}

// TestKillNineLosesNothing uses a broker that outlives connlog (kfake in the
// test process): the embedded one keeps messages in memory and dies with the
// process, as the README says. Each kill comes once the new instance has
// joined the group and stored something: kfake, unlike Kafka, never expires
// a member that died between JoinGroup and its first heartbeat, which would
// leave its partitions assigned to a ghost.
func TestKillNineLosesNothing(t *testing.T) {
	broker, err := broker.Start(t.Context(), broker.Config{Addr: "127.0.0.1:0", Topics: []string{"nginx"}, Partitions: 4}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	addr := broker.Addrs()[0]
	in := startConnlog(t, "", append(brokerEnv(broker), "CONNLOG_KAFKA_BATCH_ROWS=500", "CONNLOG_KAFKA_SESSION_TIMEOUT=6s")...)
	lines := genLines(20000, time.Now().UTC().Add(-time.Hour))
	published := make(chan error, 1)
	go func() { published <- publishLines(t.Context(), addr, broker.Shipper(), "nginx", lines) }()
	const distinct = "(SELECT DISTINCT kafka_partition, kafka_offset FROM connlog_access.access_log)"
	stored := 0
	for kill := 1; kill <= 3; kill++ {
		stored = in.waitRows(distinct, stored+1, 60*time.Second)
		in.cmd.Process.Kill()
		<-in.exited
		t.Logf("kill -9 #%d with %d lines stored", kill, stored)
		in.start()
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	if n := in.waitRows(distinct, len(lines), 90*time.Second); n != len(lines) {
		t.Fatalf("after 3 kill -9: %d distinct lines stored, want %d", n, len(lines))
	}
}
