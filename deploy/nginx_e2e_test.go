package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The two topics of TestNginxRsyslogConnlog: the same requests logged by
// nginx in the recommended JSON format and in its built-in "combined".
const (
	e2eTopicJSON     = "nginx"
	e2eTopicCombined = "nginx-combined"
)

// e2eRedacted are connlog's default secret query parameters
// (logline.DefaultRedactParams), written out again so that the test does not
// take its expectations from the code under test.
var e2eRedacted = []string{"password", "passwd", "token", "access_token", "session", "sessionid", "code", "secret", "key", "email"}

// e2eUserAgent has double quotes, backslashes (one pair already looking
// like an escape) and non-ASCII: nginx escapes it differently in each format.
const e2eUserAgent = `Mozilla/5.0 (X11; Linux) "quoted" back\slash \"pre-escaped\" caf` + "\u00e9"

// nginxRequest is one curl invocation against the private nginx.
type nginxRequest struct {
	v6     bool
	method string // -X, when neither GET, HEAD nor POST
	target string // path and query exactly as sent (curl --path-as-is)
	header []string
	data   string // a POST body
	head   bool
	http10 bool
}

func nginxRequests() []nginxRequest {
	reqs := []nginxRequest{
		{target: "/"},
		{v6: true, target: "/"},
		{target: "/a%20b/%C3%A9t%C3%A9?x=1&token=s3cr3t&y=2"},
		{v6: true, target: "/caf\u00e9/\u65e5\u672c?q=\u00fc&access_token=abc"},
		{target: "/long/" + strings.Repeat("a", 4000) + "?p=" + strings.Repeat("b", 1000) + "&secret=zz"},
		{target: "/a/../b/./c/..%2F..%2Fetc/passwd"},
		{target: "/../../etc/passwd"}, // above the root: nginx answers 400 and still logs it
		{v6: true, target: `/q"uote'd/back\slash?s="x"&t='y'`},
		{target: "/ua", header: []string{"User-Agent: " + e2eUserAgent, "Referer: https://ref.example/p?q=1&session=abc#frag"}},
		{v6: true, target: "/ua", header: []string{"User-Agent: " + e2eUserAgent}},
		// X-Forwarded-For from the trusted proxy 127.0.0.1: the client is the
		// header's address; from ::1 (untrusted): the client stays the peer.
		{target: "/xff", header: []string{"X-Forwarded-For: 198.51.100.7"}},
		{v6: true, target: "/xff", header: []string{"X-Forwarded-For: 198.51.100.7"}},
		// a chain through a second trusted hop, walked right to left
		{target: "/xff-chain", header: []string{"X-Forwarded-For: 203.0.113.9, 198.51.100.7, 127.0.0.1"}},
		{target: "/api/items?email=someone%40example.org", data: `{"name":"x"}`},
		{v6: true, method: "PUT", target: "/api/items/1"},
		{method: "DELETE", target: "/api/items/1?Password=hunter2&keep=1"},
		{target: "/missing"},
		{target: "/teapot", http10: true},
		{target: "/site", header: []string{"Host: WWW.Example.ORG"}},
		{v6: true, head: true, target: "/?a=1&&b=2&code"},
	}
	for i := range 30 {
		reqs = append(reqs, nginxRequest{v6: i%2 == 1, target: fmt.Sprintf("/n/%d?i=%d", i, i)})
	}
	return reqs
}

func (r nginxRequest) curl(t *testing.T, curl string, port int) {
	t.Helper()
	host := "127.0.0.1"
	if r.v6 {
		host = "[::1]"
	}
	args := []string{"-sS", "-o", "/dev/null", "--path-as-is", "-g", "--max-time", "10", "--noproxy", "*"}
	for _, h := range r.header {
		args = append(args, "-H", h)
	}
	switch {
	case r.head:
		args = append(args, "-I")
	case r.data != "":
		args = append(args, "--data-binary", r.data, "-H", "Content-Type: application/json")
	case r.method != "":
		args = append(args, "-X", r.method)
	}
	if r.http10 {
		args = append(args, "--http1.0")
	}
	args = append(args, "http://"+host+":"+strconv.Itoa(port)+r.target)
	run(t, 15*time.Second, curl, args...)
}

// TestNginxRsyslogConnlog is the end-to-end proof with a real shipper:
// a private nginx (configured from deploy/nginx's log format) writes the
// same requests in the JSON and the combined format; two rsyslog instances
// (deploy/shippers/rsyslog.conf, placeholders substituted) tail the files
// into a Kafka-protocol broker; `connlog serve` (embedded ClickHouse) reads
// both topics with auto-detection. Requests are sent with curl over IPv4 and
// IPv6, with odd paths, quotes in the user agent, secrets in the query and
// X-Forwarded-For from a trusted and an untrusted peer. Then the stored
// rows must equal nginx's access log line for line, once each.
func TestNginxRsyslogConnlog(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nginx, rsyslog and connlog")
	}
	nginx := tool(t, "nginx")
	curl := tool(t, "curl")
	rsyslog := rsyslogShipper()
	lib := chdbLibrary(t)
	root := repoRoot(t)
	dir := t.TempDir()
	bin := buildConnlog(t)

	// connlog's embedded broker, with SASL, in the test process.
	b := startBroker(t, e2eTopicJSON, e2eTopicCombined) // registered first: closed after every daemon stopped
	broker := b.Addrs()[0]
	consumer := b.Consumer()

	// connlog first: its engine starts while the rest is set up.
	apiPort, chPort, kafkaPort := freePort(t), freePort(t), freePort(t)
	api := "127.0.0.1:" + strconv.Itoa(apiPort)
	ch := "127.0.0.1:" + strconv.Itoa(chPort)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONNLOG_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"CONNLOG_DATA_DIR="+filepath.Join(dir, "connlog"),
		"CONNLOG_API_LISTEN="+api,
		"CONNLOG_EMBEDDED_CLICKHOUSE_LISTEN="+ch,
		"CONNLOG_EMBEDDED_KAFKA_ADDR=127.0.0.1:"+strconv.Itoa(kafkaPort), // unused: brokers are given
		"CONNLOG_CHDB_LIBRARY="+lib,
		"CONNLOG_KAFKA_BROKERS="+broker,
		"CONNLOG_KAFKA_SASL_MECHANISM="+consumer.Mechanism,
		"CONNLOG_KAFKA_SASL_USERNAME="+consumer.Username,
		"CONNLOG_KAFKA_SASL_PASSWORD="+string(consumer.Password),
		"CONNLOG_KAFKA_TOPICS="+e2eTopicJSON+","+e2eTopicCombined,
		"CONNLOG_KAFKA_PARSE_TRUSTED_PROXIES=127.0.0.1/32",
		"CONNLOG_KAFKA_FLUSH_INTERVAL=200ms",
	)
	daemon(t, "connlog.log", env, bin, "serve")

	// nginx, from the test's config and deploy/nginx's log format.
	ngDir := filepath.Join(dir, "nginx")
	if err := os.MkdirAll(filepath.Join(ngDir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	conf := filepath.Join(ngDir, "nginx.conf")
	substitute(t, filepath.Join(root, "deploy", "testdata", "nginx-e2e", "nginx.conf"), conf, map[string]string{
		"DIR": ngDir, "PORT": strconv.Itoa(port),
		"FORMAT": filepath.Join(root, "deploy", "nginx", "connlog-log-format.conf"),
	})
	ngArgs := []string{"-p", ngDir + "/", "-c", conf, "-e", filepath.Join(ngDir, "error.log")}
	run(t, 30*time.Second, nginx, append(ngArgs, "-t", "-q")...)
	daemon(t, "nginx.log", os.Environ(), nginx, ngArgs...)
	t.Cleanup(func() {
		if t.Failed() {
			raw, _ := os.ReadFile(filepath.Join(ngDir, "error.log"))
			t.Logf("nginx error.log:\n%s", raw)
		}
	})
	jsonLog, combinedLog := filepath.Join(ngDir, "access.json.log"), filepath.Join(ngDir, "access.log")
	if !waitFor(30*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(ngDir, "nginx.pid"))
		return err == nil
	}) {
		t.Fatal("nginx did not start within 30s")
	}

	// One rsyslog per file and topic, each on deploy/shippers/rsyslog.conf.
	for _, s := range []struct{ name, log, topic string }{
		{"rsyslog-json", jsonLog, e2eTopicJSON},
		{"rsyslog-combined", combinedLog, e2eTopicCombined},
	} {
		state := filepath.Join(dir, s.name)
		if err := os.MkdirAll(state, 0o755); err != nil {
			t.Fatal(err)
		}
		rconf := filepath.Join(state, "rsyslog.conf")
		substitute(t, filepath.Join(root, "deploy", "shippers", "rsyslog.conf"), rconf,
			shipperVars(b, map[string]string{"LOG": s.log, "KAFKA": broker, "TOPIC": s.topic, "STATE": state}))
		cmd := rsyslog.command(t, rconf, state)
		daemon(t, s.name+".log", os.Environ(), cmd.Path, cmd.Args[1:]...)
		t.Cleanup(func() {
			if t.Failed() {
				raw, _ := os.ReadFile(filepath.Join(state, "rsyslogd-internal.log"))
				t.Logf("%s internal log:\n%s", s.name, raw)
			}
		})
	}

	reqs := nginxRequests()
	for _, r := range reqs {
		r.curl(t, curl, port)
	}

	// nginx writes the line after the response: wait for every line.
	var jsonLines, combinedLines []string
	if !waitFor(10*time.Second, func() bool {
		jsonLines, combinedLines = readLines(t, jsonLog), readLines(t, combinedLog)
		return len(jsonLines) == len(reqs) && len(combinedLines) == len(reqs)
	}) {
		t.Fatalf("nginx logged %d JSON and %d combined lines for %d requests", len(jsonLines), len(combinedLines), len(reqs))
	}

	if !waitFor(90*time.Second, func() bool {
		resp, err := http.Get("http://" + api + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) {
		t.Fatal("connlog serve did not become ready within 90s")
	}
	// The engine's operator listener wants its password: chSQL sends it as
	// the URL's user info.
	pw, err := os.ReadFile(filepath.Join(dir, "connlog", "clickhouse.password"))
	if err != nil {
		t.Fatal(err)
	}
	ch = "default:" + strings.TrimSpace(string(pw)) + "@" + ch

	count := func(table, topic string) int {
		n, err := strconv.Atoi(strings.TrimSpace(chSQL(t, ch, "SELECT count() FROM "+table+" WHERE kafka_topic = '"+topic+"'")))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	counts := func() [4]int {
		return [4]int{
			count("connlog_access.access_log", e2eTopicJSON), count("connlog_access.access_log", e2eTopicCombined),
			count("connlog_connections.connection_records", e2eTopicJSON), count("connlog_connections.connection_records", e2eTopicCombined),
		}
	}
	want := [4]int{len(reqs), len(reqs), len(reqs), len(reqs)}
	var got [4]int
	if !waitFor(60*time.Second, func() bool { got = counts(); return got == want }) {
		t.Fatalf("rows (access json, access combined, connections json, connections combined) = %v, want %v", got, want)
	}
	// Anything sent twice would arrive within the flush interval: settle and recount.
	time.Sleep(2 * time.Second)
	if got = counts(); got != want {
		t.Fatalf("after settling, rows = %v, want %v (duplicates)", got, want)
	}
	if q := strings.TrimSpace(chSQL(t, ch, "SELECT count() FROM connlog_ops.quarantine")); q != "0" {
		t.Errorf("quarantine holds %s rows, want 0:\n%s", q, chSQL(t, ch, "SELECT kafka_topic, reason, raw FROM connlog_ops.quarantine FORMAT TSV"))
	}

	checkJSONRows(t, ch, jsonLines)
	checkCombinedRows(t, ch, combinedLines)
	t.Logf("%d curl requests (%d over IPv6); nginx logged %d JSON and %d combined lines; rsyslog shipped them; connlog stored %d + %d access rows and %d + %d connection records, equal line for line, none quarantined",
		len(reqs), countV6(reqs), len(jsonLines), len(combinedLines), got[0], got[1], got[2], got[3])
}

func countV6(reqs []nginxRequest) int {
	n := 0
	for _, r := range reqs {
		if r.v6 {
			n++
		}
	}
	return n
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	s := strings.TrimSuffix(string(raw), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// chSQL runs a statement on the embedded engine's HTTP interface.
func chSQL(t *testing.T, ch, query string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+ch+"/", strings.NewReader(query))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %v %s", query, resp.StatusCode, err, body)
	}
	return string(body)
}

// chRows runs a SELECT whose columns are all strings and returns its rows.
func chRows(t *testing.T, ch, query string) []map[string]string {
	t.Helper()
	var rows []map[string]string
	for _, l := range strings.Split(strings.TrimSpace(chSQL(t, ch, query+" FORMAT JSONEachRow")), "\n") {
		if l == "" {
			continue
		}
		var m map[string]string
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("row %q: %v", l, err)
		}
		rows = append(rows, m)
	}
	return rows
}

// accessColumns are the access_log columns compared, as strings, with the
// addresses unmapped by normIP.
const accessColumns = `toString(client_ip) AS client_ip, toString(client_port) AS client_port, toString(peer_ip) AS peer_ip,
	forwarded_for, toString(server_addr) AS server_addr, toString(server_port) AS server_port, site, method, path, query,
	protocol, toString(status) AS status, toString(bytes_sent) AS bytes, referer, user_agent, request_id, user,
	tls_protocol, toString(operation) AS operation, toString(toUnixTimestamp64Milli(event_time)) AS time_ms`

var accessFields = []string{"client_ip", "client_port", "peer_ip", "forwarded_for", "server_addr", "server_port", "site",
	"method", "path", "query", "protocol", "status", "bytes", "referer", "user_agent", "request_id", "user",
	"tls_protocol", "operation", "time_ms"}

// normIP writes an address as the test's expectations do: IPv4 unmapped.
func normIP(s string) string {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return s
	}
	return a.Unmap().String()
}

// redactQuery is the documented minimisation: the value of each secret
// parameter (case-insensitive name, with a value) becomes REDACTED.
func redactQuery(q string) string {
	if q == "" {
		return q
	}
	parts := strings.Split(q, "&")
	for i, p := range parts {
		if name, _, ok := strings.Cut(p, "="); ok && slices.ContainsFunc(e2eRedacted, func(s string) bool { return strings.EqualFold(s, name) }) {
			parts[i] = name + "=REDACTED"
		}
	}
	return strings.Join(parts, "&")
}

func redactReferer(r string) string {
	i := strings.IndexByte(r, '?')
	if i < 0 {
		return r
	}
	q, frag := r[i+1:], ""
	if j := strings.IndexByte(q, '#'); j >= 0 {
		q, frag = q[:j], q[j:]
	}
	return r[:i+1] + redactQuery(q) + frag
}

// splitRequestLine splits "$request" into method, path, query, protocol.
func splitRequestLine(req string) (method, path, query, proto string) {
	method, uri, _ := strings.Cut(req, " ")
	if i := strings.LastIndexByte(uri, ' '); i >= 0 && strings.HasPrefix(uri[i+1:], "HTTP/") {
		uri, proto = uri[:i], uri[i+1:]
	}
	path, query, _ = strings.Cut(uri, "?")
	return method, path, redactQuery(query), proto
}

func operationOf(method string) string {
	switch method {
	case "POST":
		return "create"
	case "PUT", "PATCH":
		return "modify"
	case "DELETE":
		return "delete"
	}
	return "read"
}

// e2eClient is the client the trusted-proxy rule (127.0.0.1/32) gives:
// the peer, unless it is trusted and X-Forwarded-For names someone; then
// the chain walked right to left to the first untrusted address, without
// a port.
func e2eClient(peer, port, xff string) (string, string) {
	if peer != "127.0.0.1" || strings.TrimSpace(xff) == "" {
		return peer, port
	}
	entries := strings.Split(xff, ",")
	client := peer
	for i := len(entries) - 1; i >= 0; i-- {
		e := strings.TrimSpace(entries[i])
		if e == "" {
			continue
		}
		client = normIP(e)
		if client != "127.0.0.1" {
			break
		}
	}
	return client, "0"
}

// msecToMillis turns nginx's $msec ("1763812345.678") into milliseconds.
func msecToMillis(t *testing.T, msec string) string {
	s, frac, _ := strings.Cut(msec, ".")
	ms, err := strconv.ParseInt(s+(frac + "000")[:3], 10, 64)
	if err != nil {
		t.Fatalf("$msec %q: %v", msec, err)
	}
	return strconv.FormatInt(ms, 10)
}

// checkJSONRows compares each line of nginx's JSON log with the access_log
// row of the same $request_id, field by field, and with its connection
// record (path only for create, modify and delete).
func checkJSONRows(t *testing.T, ch string, lines []string) {
	t.Helper()
	rows := map[string]map[string]string{}
	for _, r := range chRows(t, ch, "SELECT "+accessColumns+" FROM connlog_access.access_log WHERE kafka_topic = '"+e2eTopicJSON+"'") {
		for _, f := range []string{"client_ip", "peer_ip", "server_addr"} {
			r[f] = normIP(r[f])
		}
		if _, dup := rows[r["request_id"]]; dup {
			t.Errorf("request id %s stored twice", r["request_id"])
		}
		rows[r["request_id"]] = r
	}
	conns := map[string]map[string]string{}
	for _, r := range chRows(t, ch, `SELECT a.request_id AS request_id, toString(c.client_ip) AS client_ip,
		toString(c.client_port) AS client_port, toString(toUnixTimestamp64Milli(c.event_time)) AS time_ms,
		toString(c.operation) AS operation, c.path AS path, c.user AS user, toString(c.status) AS status, c.site AS site,
		c.protocol AS protocol, toString(c.server_addr) AS server_addr, toString(c.server_port) AS server_port
		FROM connlog_connections.connection_records AS c
		INNER JOIN connlog_access.access_log AS a
		ON a.kafka_topic = c.kafka_topic AND a.kafka_partition = c.kafka_partition AND a.kafka_offset = c.kafka_offset
		WHERE c.kafka_topic = '`+e2eTopicJSON+"'") {
		r["client_ip"], r["server_addr"] = normIP(r["client_ip"]), normIP(r["server_addr"])
		conns[r["request_id"]] = r
	}
	redacted, trustedXFF, untrustedXFF := 0, 0, 0
	for n, line := range lines {
		var v map[string]string
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("nginx JSON line %d: %v\n%s", n+1, err, line)
		}
		method, path, query, proto := splitRequestLine(v["request"])
		client, port := e2eClient(v["remote_addr"], v["remote_port"], v["http_x_forwarded_for"])
		want := map[string]string{
			"client_ip": client, "client_port": port, "peer_ip": v["remote_addr"],
			"forwarded_for": v["http_x_forwarded_for"], "server_addr": v["server_addr"], "server_port": v["server_port"],
			"site": v["host"], "method": method, "path": path, "query": query, "protocol": v["server_protocol"],
			"status": v["status"], "bytes": v["body_bytes_sent"], "referer": redactReferer(v["http_referer"]),
			"user_agent": v["http_user_agent"], "request_id": v["request_id"], "user": v["remote_user"],
			"tls_protocol": v["ssl_protocol"], "operation": operationOf(method), "time_ms": msecToMillis(t, v["msec"]),
		}
		if proto != v["server_protocol"] {
			t.Errorf("line %d: $request protocol %q, $server_protocol %q", n+1, proto, v["server_protocol"])
		}
		if strings.Contains(query, "REDACTED") || strings.Contains(want["referer"], "REDACTED") {
			redacted++
		}
		if v["http_x_forwarded_for"] != "" {
			if client == v["remote_addr"] {
				untrustedXFF++
			} else {
				trustedXFF++
			}
		}
		got, ok := rows[v["request_id"]]
		if !ok {
			t.Errorf("line %d (request id %s) not stored:\n%.300s", n+1, v["request_id"], line)
			continue
		}
		for _, f := range accessFields {
			if got[f] != want[f] {
				t.Errorf("line %d %s: stored %q, nginx logged %q\n%.300s", n+1, f, trunc(got[f]), trunc(want[f]), line)
			}
		}
		c, ok := conns[v["request_id"]]
		if !ok {
			t.Errorf("line %d (request id %s): no connection record", n+1, v["request_id"])
			continue
		}
		wantPath := ""
		if want["operation"] != "read" {
			wantPath = path
		}
		for f, w := range map[string]string{
			"client_ip": client, "client_port": port, "time_ms": want["time_ms"], "operation": want["operation"],
			"path": wantPath, "user": "", "status": want["status"], "site": want["site"], "protocol": want["protocol"],
			"server_addr": want["server_addr"], "server_port": want["server_port"],
		} {
			if c[f] != w {
				t.Errorf("line %d connection record %s: stored %q, want %q", n+1, f, trunc(c[f]), trunc(w))
			}
		}
	}
	if len(rows) != len(lines) {
		t.Errorf("%d distinct request ids stored for %d JSON lines", len(rows), len(lines))
	}
	if redacted == 0 || trustedXFF == 0 || untrustedXFF == 0 {
		t.Errorf("the requests did not exercise redaction (%d), trusted (%d) and untrusted (%d) X-Forwarded-For", redacted, trustedXFF, untrustedXFF)
	}
	t.Logf("JSON topic: %d lines equal to their rows field by field (%d with a redacted secret, %d trusted and %d untrusted X-Forwarded-For)",
		len(lines), redacted, trustedXFF, untrustedXFF)
}

// combinedRE reads nginx's "combined" line; nginx escapes '"', '\' and
// bytes outside printable ASCII as \xHH, which connlog stores unchanged.
var combinedRE = regexp.MustCompile(`^(\S+) - (\S+) \[([^\]]+)\] "([^"]*)" (\d{3}) (\d+) "([^"]*)" "([^"]*)"$`)

// checkCombinedRows compares the combined log with the rows of its topic as
// multisets: the format carries no request id to pair them by.
func checkCombinedRows(t *testing.T, ch string, lines []string) {
	t.Helper()
	dash := func(s string) string {
		if s == "-" {
			return ""
		}
		return s
	}
	fields := []string{"client_ip", "client_port", "peer_ip", "forwarded_for", "method", "path", "query", "protocol",
		"status", "bytes", "referer", "user_agent", "user", "operation", "time_ms"}
	key := func(m map[string]string) string {
		var b strings.Builder
		for _, f := range fields {
			b.WriteString(f + "=" + m[f] + "\x00")
		}
		return b.String()
	}
	want := map[string]int{}
	for n, line := range lines {
		m := combinedRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("combined line %d does not match nginx's combined format:\n%.300s", n+1, line)
		}
		ts, err := time.Parse("02/Jan/2006:15:04:05 -0700", m[3])
		if err != nil {
			t.Fatalf("combined line %d: %v", n+1, err)
		}
		method, path, query, proto := splitRequestLine(m[4])
		want[key(map[string]string{
			"client_ip": m[1], "client_port": "0", "peer_ip": m[1], "forwarded_for": "", "method": method, "path": path,
			"query": query, "protocol": proto, "status": m[5], "bytes": m[6], "referer": redactReferer(dash(m[7])),
			"user_agent": dash(m[8]), "user": dash(m[2]), "operation": operationOf(method),
			"time_ms": strconv.FormatInt(ts.UnixMilli(), 10),
		})]++
	}
	got := map[string]int{}
	for _, r := range chRows(t, ch, "SELECT "+accessColumns+" FROM connlog_access.access_log WHERE kafka_topic = '"+e2eTopicCombined+"'") {
		r["client_ip"], r["peer_ip"] = normIP(r["client_ip"]), normIP(r["peer_ip"])
		got[key(r)]++
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("combined line stored %d times, logged %d times:\n%s", got[k], n, trunc(strings.ReplaceAll(k, "\x00", " | ")))
		}
	}
	for k, n := range got {
		if want[k] == 0 {
			t.Errorf("combined row stored %d times that nginx never logged:\n%s", n, trunc(strings.ReplaceAll(k, "\x00", " | ")))
		}
	}
	t.Logf("combined topic: %d lines equal to the stored rows as a multiset", len(lines))
}

func trunc(s string) string {
	if len(s) > 400 {
		return s[:400] + "…"
	}
	return s
}
