package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connlog/connlog/store/audit"
	"github.com/connlog/connlog/store/integrity"
	"github.com/connlog/connlog/store/retention"
)

// runBinary runs the connlog binary with in's environment (its data
// directory) and returns its exit code, stdout and stderr.
func (in *instance) runBinary(cred *syscall.Credential, bin string, args ...string) (int, string, string) {
	in.tb.Helper()
	cmd := exec.CommandContext(in.tb.Context(), bin, args...)
	cmd.Env = in.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		in.tb.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// operatorAudit returns the audit rows of operator commands, oldest first,
// read through the API as an auditor would.
func (in *instance) operatorAudit() []audit.Record {
	in.tb.Helper()
	q := url.Values{"from": {time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}, "to": {time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, "role": {"operator"}}
	code, body := in.get("/v1/audit?"+q.Encode(), map[string]string{"Authorization": "Bearer " + in.token(), "X-Purpose": "AUD-1 operator commands"})
	if code != 200 {
		in.tb.Fatalf("GET /v1/audit: %d %s", code, body)
	}
	var resp struct {
		Rows []audit.Record `json:"rows"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		in.tb.Fatal(err)
	}
	return resp.Rows
}

// waitStored waits until connlog reports n lines stored: their rows and
// manifests are written.
func (in *instance) waitStored(n int) {
	in.tb.Helper()
	want := fmt.Sprintf(`connlog_ingest_lines_total{result="stored",topic="nginx"} %d`, n)
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if _, m := in.get("/metrics", nil); bytes.Contains(m, []byte(want)) {
			return
		}
	}
	in.tb.Fatalf("not stored after 60s: %s", want)
}

func TestOperatorCommandsWhileServing(t *testing.T) {
	in := startConnlog(t, "")
	bin := connlogBinary(t)
	publish(t, in.kafka, in.shipper(), "nginx", genLines(50, time.Now().UTC().Add(-time.Hour)))
	in.waitStored(50)

	sg, _, err := integrity.LoadOrCreate(filepath.Join(in.dataDir, "instance.key"))
	if err != nil {
		t.Fatal(err)
	}
	cmds := []struct {
		args []string
		want string
	}{
		{[]string{"retention", "-json", "-purpose", "RET-7 review"}, `"entries"`},
		{[]string{"verify"}, "OK: no gap, alteration or deletion outside the lifetimes"},
		{[]string{"key"}, "key id: " + integrity.KeyID(sg.Public())},
		{[]string{"token", "create", "-name", "carol", "-role", "auditor"}, `- {name: "carol", role: "auditor", sha256: "`},
	}
	for _, c := range cmds {
		code, stdout, stderr := in.runBinary(nil, bin, c.args...)
		if code != 0 || !strings.Contains(stdout, c.want) {
			t.Fatalf("connlog %s: exit %d\n%s\n%s", strings.Join(c.args, " "), code, stdout, stderr)
		}
	}
	var rep retention.Report
	if _, stdout, _ := in.runBinary(nil, bin, "retention", "-json"); json.Unmarshal([]byte(stdout), &rep) != nil || len(rep.Entries) == 0 {
		t.Errorf("retention -json is not the report:\n%s", stdout)
	}

	want := []struct{ endpoint, purpose string }{
		{"connlog retention", "RET-7 review"},
		{"connlog verify", defaultOpPurpose},
		{"connlog key", defaultOpPurpose},
		{"connlog token create", defaultOpPurpose},
		{"connlog retention", defaultOpPurpose},
	}
	var rows []audit.Record
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if rows = in.operatorAudit(); len(rows) >= len(want) {
			break
		}
	}
	if len(rows) != len(want) {
		t.Fatalf("%d operator audit rows, want %d: %+v", len(rows), len(want), rows)
	}
	for i, w := range want {
		r := rows[i]
		if r.Endpoint != w.endpoint || r.Purpose != w.purpose || r.Outcome != "ok" || r.Actor != "local-admin uid="+strconv.Itoa(os.Geteuid()) {
			t.Errorf("audit row %d: %+v, want %+v", i, r, w)
		}
	}

	t.Run("another uid is refused", func(t *testing.T) {
		nobody, err := user.Lookup("nobody")
		if os.Geteuid() != 0 || err != nil {
			t.Skip("SKIPPED: connecting as another uid needs root and a nobody account; TestAdminSocketRefusesAnotherUIDAndAuditsTheRefusal covers the check")
		}
		uid, _ := strconv.Atoi(nobody.Uid)
		gid, _ := strconv.Atoi(nobody.Gid)
		cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		// A copy of the binary nobody may run.
		dir, err := os.MkdirTemp("", "connlog-nobody")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		os.Chmod(dir, 0o755)
		nbin := filepath.Join(dir, "connlog")
		copyFile(t, bin, nbin, 0o755)
		// t.TempDir's parent is 0700 too: open it, so that what keeps
		// nobody out is the data directory's own mode.
		parent := filepath.Dir(in.dataDir)
		if err := os.Chmod(parent, 0o711); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(parent, 0o700)
		// The data directory (0700) keeps it away from the socket.
		code, _, stderr := in.runBinary(cred, nbin, "key")
		if code == 0 || !strings.Contains(stderr, "permission denied") {
			t.Errorf("nobody through the 0700 data directory: exit %d\n%s", code, stderr)
		}
		// Opened up by mistake, the socket still refuses it (SO_PEERCRED).
		sock := adminSocketPath(in.dataDir)
		if err := os.Chmod(in.dataDir, 0o711); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(sock, 0o666); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(sock, 0o600)
		defer os.Chmod(in.dataDir, 0o700)
		code, stdout, stderr := in.runBinary(cred, nbin, "token", "create", "-name", "mallory", "-role", "admin")
		if code == 0 || !strings.Contains(stderr, "uid "+nobody.Uid+" may not use the admin socket") || strings.Contains(stdout, "cl_") {
			t.Errorf("nobody on an open socket: exit %d\n%s\n%s", code, stdout, stderr)
		}
		var last audit.Record
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if rows := in.operatorAudit(); len(rows) > len(want) {
				last = rows[len(rows)-1]
				break
			}
		}
		if last.Actor != "local-admin uid="+nobody.Uid || last.Outcome != "denied" || last.Status != 403 {
			t.Errorf("refusal audit row: %+v", last)
		}
	})
}

func copyFile(tb testing.TB, from, to string, mode os.FileMode) {
	tb.Helper()
	src, err := os.Open(from)
	if err != nil {
		tb.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, mode)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		tb.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		tb.Fatal(err)
	}
}
