package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/audit"
	"github.com/connlog/connlog/store/integrity"
)

// socketpair returns both ends of a connected unix socket pair.
func socketpair(t *testing.T) (a, b *net.UnixConn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

// The test cannot connect as another uid without a second account, so the
// refusal is tested in two halves: the kernel's credentials as read by
// peerCred, and checkPeer (and the server, below) refusing any uid but the
// one admitted.
func TestPeerCredIsTheKernelsAndOtherUIDsAreRefused(t *testing.T) {
	a, _ := socketpair(t)
	p, err := peerCred(a)
	if err != nil {
		t.Fatal(err)
	}
	if p.uid != os.Geteuid() || p.pid != os.Getpid() {
		t.Fatalf("peer %+v, want uid %d pid %d", p, os.Geteuid(), os.Getpid())
	}
	if err := checkPeer(p, os.Geteuid()); err != nil {
		t.Errorf("own uid refused: %v", err)
	}
	for _, other := range []int{os.Geteuid() + 1, 0, 65534} {
		if other == os.Geteuid() {
			continue
		}
		if err := checkPeer(p, other); err == nil {
			t.Errorf("uid %d admitted where only %d may", p.uid, other)
		}
	}
}

// auditRows returns the operator rows of the audit trail, oldest first.
func auditRows(t *testing.T, st *store.Store) []audit.Record {
	t.Helper()
	recs, err := st.SearchAudit(t.Context(), audit.Query{From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Hour), Role: "operator", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// adminFixture serves the admin socket in process on the retention
// fixture's store, auditing into it (or into audit), admitting uid.
func adminFixture(t *testing.T, audit auditor, uid int) (*adminServer, *store.Store, *integrity.Signer, string) {
	t.Helper()
	st, cfgPath, sg := retentionFixture(t)
	if audit == nil {
		audit = st
	}
	s, err := listenAdmin(filepath.Dir(cfgPath), opEnv{store: st, signer: sg}, audit, slog.New(slog.DiscardHandler))
	if err != nil || s == nil {
		t.Fatalf("listen: %v", err)
	}
	s.uid = uid
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	fi, err := os.Stat(s.path)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("admin socket %v %v, want a socket of mode 0600", fi.Mode(), err)
	}
	return s, st, sg, cfgPath
}

func TestAdminSocketRunsEachCommandAndAuditsIt(t *testing.T) {
	s, st, sg, cfgPath := adminFixture(t, nil, os.Geteuid())
	cmds := []struct {
		args []string
		run  func(context.Context, []string, *bytes.Buffer) error
		want string
	}{
		{[]string{"-json", "-purpose", "RET-1 yearly review"}, func(ctx context.Context, a []string, o *bytes.Buffer) error { return cmdRetention(ctx, a, o) }, `"entries"`},
		{[]string{"-purpose", "VER-1 integrity check"}, func(ctx context.Context, a []string, o *bytes.Buffer) error { return cmdVerify(ctx, a, o) }, "OK: no gap"},
		{nil, func(ctx context.Context, a []string, o *bytes.Buffer) error { return cmdKey(ctx, a, o) }, "key id: " + integrity.KeyID(sg.Public())},
		{[]string{"create", "-name", "alice", "-role", "analyst", "-sites", "www.example.org"}, func(ctx context.Context, a []string, o *bytes.Buffer) error { return cmdToken(ctx, a, o) }, `- {name: "alice", role: "analyst", sha256: "`},
	}
	for _, c := range cmds {
		var out bytes.Buffer
		args := append(c.args, "-config", cfgPath)
		if c.args != nil && c.args[0] == "create" {
			args = append([]string{"create", "-config", cfgPath}, c.args[1:]...)
		}
		if err := c.run(t.Context(), args, &out); err != nil || !strings.Contains(out.String(), c.want) {
			t.Fatalf("%v: %v\n%s", c.args, err, out.String())
		}
	}
	rows := auditRows(t, st)
	want := []struct{ endpoint, purpose, filters string }{
		{"connlog retention", "RET-1 yearly review", `{"enforce":false,"json":true}`},
		{"connlog verify", "VER-1 integrity check", `{"json":false,"trusted_keys":[]}`},
		{"connlog key", defaultOpPurpose, `{}`},
		{"connlog token create", defaultOpPurpose, `{"name":"alice","role":"analyst","sites":["www.example.org"]}`},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d operator audit rows, want %d: %+v", len(rows), len(want), rows)
	}
	for i, w := range want {
		r := rows[i]
		if r.Endpoint != w.endpoint || r.Purpose != w.purpose || r.Filters != w.filters || r.Status != 200 || r.Outcome != "ok" ||
			r.Actor != "local-admin uid="+strconv.Itoa(os.Geteuid()) || !strings.HasPrefix(r.Source, "unix admin.sock pid=") {
			t.Errorf("row %d: %+v, want %+v", i, r, w)
		}
	}
	// The socket is removed when serve stops; a client then runs the
	// command itself.
	s.Close()
	if _, err := os.Stat(s.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
}

func TestAdminSocketRefusesAnotherUIDAndAuditsTheRefusal(t *testing.T) {
	s, st, _, _ := adminFixture(t, nil, os.Geteuid()+1) // as if connlog ran as another user than this test
	var out bytes.Buffer
	served, err := viaAdminSocket(t.Context(), s.path, opRequest{Command: opTokenCreate, Purpose: "x-uid test", Name: "mallory", Role: "admin"}, &out)
	if !served || err == nil || !strings.Contains(err.Error(), "may not use the admin socket") || out.Len() != 0 {
		t.Fatalf("served %v, err %v, output %q", served, err, out.String())
	}
	rows := auditRows(t, st)
	if len(rows) != 1 || rows[0].Outcome != "denied" || rows[0].Status != 403 || !strings.Contains(rows[0].Reason, "uid") {
		t.Fatalf("audit rows %+v", rows)
	}
}

// A refused peer whose request is larger than the socket's buffer cannot
// finish writing it: the server answers and closes without reading. The
// refusal must still be what the operator reads, not "broken pipe" (the
// race seen in CI, made certain here by the size).
func TestAdminSocketRefusalIsReadEvenWhenTheSendFails(t *testing.T) {
	s, _, _, _ := adminFixture(t, nil, os.Geteuid()+1)
	big := strings.Repeat("x", 8<<20)
	var out bytes.Buffer
	served, err := viaAdminSocket(t.Context(), s.path, opRequest{Command: opTokenCreate, Purpose: big, Name: "mallory", Role: "admin"}, &out)
	if !served || err == nil || !strings.Contains(err.Error(), "may not use the admin socket") {
		t.Fatalf("served %v, err %v", served, err)
	}
}

// failingAuditor stands for an audit trail that cannot be written.
type failingAuditor struct{}

func (failingAuditor) Audit(context.Context, audit.Entry) error {
	return errors.New("disk full")
}

func TestAdminSocketWithholdsTheAnswerWhenTheAuditFails(t *testing.T) {
	s, _, _, _ := adminFixture(t, failingAuditor{}, os.Geteuid())
	var out bytes.Buffer
	_, err := viaAdminSocket(t.Context(), s.path, opRequest{Command: opTokenCreate, Purpose: "audit down", Name: "bob", Role: "analyst"}, &out)
	if err == nil || !strings.Contains(err.Error(), "audit trail cannot be written") || out.Len() != 0 {
		t.Fatalf("err %v, output %q: the token must not be sent", err, out.String())
	}
}

func TestAdminSocketRefusesBadRequests(t *testing.T) {
	s, st, _, _ := adminFixture(t, nil, os.Geteuid())
	for _, r := range []opRequest{
		{Command: "migrate", Purpose: "not an operator command"},
		{Command: opRetention, Purpose: "x"},
		{Command: opTokenCreate, Purpose: "bad role", Name: "eve", Role: "root"},
	} {
		var out bytes.Buffer
		if _, err := viaAdminSocket(t.Context(), s.path, r, &out); err == nil {
			t.Errorf("%+v accepted:\n%s", r, out.String())
		}
	}
	rows := auditRows(t, st)
	if len(rows) != 3 {
		t.Fatalf("audit rows %+v", rows)
	}
	for _, r := range rows {
		if r.Outcome != "invalid" || r.Status != 400 || r.Reason == "" {
			t.Errorf("row %+v", r)
		}
	}
}

func TestNoInstanceServingTheCommandRunsItself(t *testing.T) {
	dir := privateDir(t)
	// A socket left by an instance that died: nothing answers on it.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: adminSocketPath(dir), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	served, err := viaAdminSocket(t.Context(), adminSocketPath(dir), opRequest{Command: opKey, Purpose: defaultOpPurpose}, &bytes.Buffer{})
	if served || err != nil {
		t.Fatalf("stale socket: served %v, err %v", served, err)
	}
	// serve replaces it.
	s, err := listenAdmin(dir, opEnv{}, failingAuditor{}, slog.New(slog.DiscardHandler))
	if err != nil || s == nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	defer s.Close()
	// and a second instance is refused.
	if _, err := listenAdmin(dir, opEnv{}, failingAuditor{}, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "another connlog serve") {
		t.Errorf("second listener: %v", err)
	}
}
