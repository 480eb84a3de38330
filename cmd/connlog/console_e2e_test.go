package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connlog/connlog/api"
	"github.com/connlog/connlog/api/oidctest"
	"github.com/connlog/connlog/ingest/kafkaclient"
)

// TestConsoleInABrowser runs the web console's browser tests
// (console/test/*.test.mjs: node's test runner driving Debian's chromium
// with playwright-core) against the real binary on embedded defaults, with
// real lines published to its Kafka listener, among them lines whose user
// agent, path and referer carry HTML and script.
//
// UPDATE_CONSOLE_SCREENSHOTS=1 also writes docs/console-*.png.
func TestConsoleInABrowser(t *testing.T) {
	chromium := os.Getenv("CONNLOG_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	consoleDir, _ := filepath.Abs("../../console")
	missing := ""
	if _, err := exec.LookPath("node"); err != nil {
		missing = "node"
	} else if _, err := os.Stat(chromium); err != nil {
		missing = chromium
	} else if _, err := os.Stat(filepath.Join(consoleDir, "node_modules", "playwright-core")); err != nil {
		missing = "console/node_modules/playwright-core (npm ci in console/)"
	}
	if missing != "" {
		if os.Getenv("CONNLOG_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s missing: run scripts/install-test-deps.sh", missing)
		}
		t.Skipf("SKIPPED: %s missing: run scripts/install-test-deps.sh (make test does)", missing)
	}

	// Two people: an admin, and an analyst who may search the access log only.
	adminTok, adminSum, err := api.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	analystTok, analystSum, err := api.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	// And a third, who signs in with the organisation's identity provider
	// (a loopback stand-in, api/oidctest) as a member of the SOC group: an
	// analyst. The console is a confidential client, its secret in a file.
	dir := t.TempDir()
	listen := freePort(t)
	idp := oidctest.New(t, "connlog-console", "console-secret", "http://"+listen+"/ui/oidc/callback")
	idp.SetClaims(map[string]any{"sub": "u-42", "email": "olivia@example.org", "groups": []string{"staff", "soc"}})
	secretFile := filepath.Join(dir, "oidc-client.secret")
	if err := os.WriteFile(secretFile, []byte("console-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "connlog.yaml")
	cfg := fmt.Sprintf(`api:
  tokens:
    - {name: alice-admin, role: admin, sha256: %q}
    - {name: bob-analyst, role: analyst, sha256: %q}
  oidc:
    issuer: %q
    audience: connlog-console
    redirect_url: %q
    client_secret_file: %q
    display_name: Example SSO
    role_claim: groups
    roles: [{claim: soc, role: analyst}]
`, adminSum, analystSum, idp.URL, "http://"+listen+"/ui/oidc/callback", secretFile)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	in := startConnlog(t, "", "CONNLOG_CONFIG="+cfgFile, "CONNLOG_API_LISTEN="+listen)

	const site, xssIP = "www.example.org", "198.51.100.66"
	base := time.Now().UTC().Add(-30 * time.Minute).Truncate(time.Second)
	var lines []string
	ipv4 := 0
	for i, l := range genLines(50, base) {
		l.t = l.t.Add(time.Duration(i*i%17) * 90 * time.Second) // spread over 25 minutes, unevenly
		lines = append(lines, site+":443 "+l.combined())
		if !strings.Contains(l.ip, ":") {
			ipv4++
		}
	}
	// Payloads as an attacker sends them: no double quote (nginx would
	// escape it) and no space in the request target.
	for i, p := range []struct{ path, referer, ua string }{
		{"/<script>window.__xss=1;alert(1)</script>", "-", "<img src=x onerror=window.__xss=2;alert(2)>"},
		{"/search?q=<img/src=x/onerror=alert(3)>", "javascript:alert(4)//<svg/onload=alert(5)>", "<script>alert(6)</script>"},
		{"/a'><iframe/src=javascript:alert(7)>", "<a href=javascript:alert(8)>x</a>", "Mozilla/5.0 <b onmouseover=alert(9)>"},
	} {
		tm := base.Add(time.Duration(i) * time.Second).Format("02/Jan/2006:15:04:05 -0700")
		lines = append(lines, fmt.Sprintf(`%s:443 %s - - [%s] "GET %s HTTP/1.1" 200 10 "%s" "%s"`, site, xssIP, tm, p.path, p.referer, p.ua))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if n, err := kafkaclient.Publish(ctx, kafkaclient.PublishConfig{Brokers: []string{in.kafka}, Topic: "nginx", SASL: in.shipper()}, strings.NewReader(strings.Join(lines, "\n")+"\n")); err != nil || n != len(lines) {
		t.Fatalf("published %d of %d lines: %v", n, len(lines), err)
	}
	if n := in.waitRows("connlog_access.access_log", len(lines), 60*time.Second); n != len(lines) {
		t.Fatalf("access log holds %d rows, want %d", n, len(lines))
	}
	if n := in.sql("SELECT count() FROM connlog_access.access_log WHERE user_agent LIKE '%<script>%'"); n != "1" {
		t.Fatalf("%s rows carry the <script> user agent, want 1", n)
	}

	cmd := exec.CommandContext(t.Context(), "node", "--test", "--test-reporter=spec", "test/")
	cmd.Dir = consoleDir
	cmd.Env = append(os.Environ(),
		"CONNLOG_URL=http://"+in.api,
		"CONNLOG_ADMIN_TOKEN="+adminTok,
		"CONNLOG_ANALYST_TOKEN="+analystTok,
		fmt.Sprintf("CONNLOG_ROWS=%d", ipv4),
		"CONNLOG_XSS_IP="+xssIP,
		"CONNLOG_SITE="+site,
		"CONNLOG_CHROMIUM="+chromium,
		"CONNLOG_OIDC_ISSUER="+idp.URL,
	)
	if os.Getenv("UPDATE_CONSOLE_SCREENSHOTS") == "1" {
		docs, _ := filepath.Abs("../../docs")
		cmd.Env = append(cmd.Env, "CONNLOG_SCREENSHOTS="+docs)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("node --test:\n%s", tail(out.String(), 12000))
	if err != nil {
		t.Fatalf("browser tests failed: %v", err)
	}
	// The searches the browser made are in the audit trail as the admin's.
	if n := in.sql("SELECT count() FROM connlog_ops.audit WHERE actor = 'alice-admin' AND endpoint = '/v1/access' AND purpose = 'INC-4242 console e2e'"); n == "0" {
		t.Error("no audit row of the console's searches")
	}
	// The provider sign-in, its search and its sign out are the person's.
	for what, q := range map[string]string{
		"sign-in":  "endpoint = '/v1/session/oidc/callback' AND status = 200 AND role = 'analyst'",
		"search":   "endpoint = '/v1/access' AND purpose = 'INC-5151 console oidc e2e'",
		"sign out": "endpoint = '/v1/session' AND method = 'DELETE' AND status = 200",
	} {
		if n := in.sql("SELECT count() FROM connlog_ops.audit WHERE actor = 'olivia@example.org' AND " + q); n == "0" {
			t.Errorf("no audit row of the OIDC %s", what)
		}
	}
	if auths, exchanges, refused := idp.Stats(); auths == 0 || exchanges == 0 || len(refused) != 0 {
		t.Errorf("identity provider: %d authorizations, %d exchanges, refused %q", auths, exchanges, refused)
	}
}
