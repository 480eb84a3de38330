package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/connlog/connlog/internal/textcut"
	"github.com/connlog/connlog/store/audit"
)

// The admin socket: a unix socket in the data directory on which `connlog
// serve` answers the operator commands (operator.go). While serve runs, the
// embedded engine's directory is locked by it, so a second process cannot
// open the store; the running instance answers instead, with its own store
// and key. Only connlog's own user may use it: the socket is 0600 in the
// 0700 data directory, and the peer's uid (SO_PEERCRED) is checked on every
// connection. Every command, and every refused connection, leaves an audit
// row like an API request.
//
// The protocol is one JSON opRequest from the client, one JSON opResponse
// back, then the connection is closed.

// adminSocketName is the socket's file name in the data directory.
const adminSocketName = "admin.sock"

// maxSocketPath is the longest path a unix socket address holds on Linux
// (sun_path, 108 bytes with the terminating NUL).
const maxSocketPath = 107

// Bounds of one admin request.
const (
	adminReadTimeout = 10 * time.Second
	maxAdminRequest  = 1 << 20 // trusted keys are a few hundred bytes each
)

// adminSocketPath is the admin socket of the instance serving dataDir.
func adminSocketPath(dataDir string) string {
	return filepath.Join(dataDir, adminSocketName)
}

// opResponse is the admin socket's answer: what the command printed, and
// its error if it failed.
type opResponse struct {
	Output string `json:"output"`
	Error  string `json:"error,omitempty"`
}

// auditor records one audit row durably; serve's API store (the audit
// journal, or the store itself) satisfies it.
type auditor interface {
	Audit(ctx context.Context, e audit.Entry) error
}

// peer is the process at the other end of a unix socket connection.
type peer struct {
	uid, pid int
}

// checkPeer admits only connlog's own user: root is refused too (it can run
// the command as connlog's user), so every row names that one account.
func checkPeer(p peer, uid int) error {
	if p.uid != uid {
		return fmt.Errorf("uid %d may not use the admin socket: only connlog's user (uid %d) may", p.uid, uid)
	}
	return nil
}

// adminServer answers operator commands on the admin socket. Commands run
// one at a time.
type adminServer struct {
	ln     *net.UnixListener
	path   string
	env    opEnv
	audit  auditor
	uid    int // the only uid admitted
	logger *slog.Logger

	mu sync.Mutex // one command at a time
	wg sync.WaitGroup
}

// listenAdmin creates the admin socket of dataDir (0600). It returns nil,
// with a warning logged, when the socket's path is too long for a unix
// socket address: serve then runs without it, and the operator commands
// cannot run while it does. It fails when another instance already answers
// on the socket; a socket left by an instance that died is replaced.
func listenAdmin(dataDir string, env opEnv, audit auditor, logger *slog.Logger) (*adminServer, error) {
	path, err := filepath.Abs(adminSocketPath(dataDir))
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if len(path) > maxSocketPath {
		logger.Warn("admin socket disabled: its path is longer than a unix socket address allows; operator commands (retention, verify, key, token create) cannot run while serve does", "path", path, "max", maxSocketPath)
		return nil, nil
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		_ = c.Close()
		return nil, fmt.Errorf("admin socket %s: another connlog serve answers on it", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("admin socket: remove stale %s: %w", path, err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	// The data directory (0700) already keeps others out; the mode keeps
	// them out should it ever be opened up.
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return &adminServer{ln: ln, path: path, env: env, audit: audit, uid: os.Geteuid(), logger: logger.With("component", "admin")}, nil
}

// Serve answers connections until ctx ends, then closes the socket, waits
// for the command running, if any (its ctx is cancelled), and returns nil.
func (s *adminServer) Serve(ctx context.Context) error {
	s.logger.Info("admin socket for operator commands", "path", s.path)
	stop := context.AfterFunc(ctx, func() { _ = s.ln.Close() })
	defer stop()
	defer s.wg.Wait()
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			s.logger.Warn("admin socket accept", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { _ = conn.Close() }()
			s.handle(ctx, conn)
		}()
	}
}

// Close closes the socket, which removes its file.
func (s *adminServer) Close() error {
	err := s.ln.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// handle answers one connection: check the peer, read the request, run it,
// write the audit row, and only then send the answer, as the API does.
func (s *adminServer) handle(ctx context.Context, conn *net.UnixConn) {
	entry := audit.Entry{Actor: "local-admin", Role: "operator", Source: "unix " + adminSocketName, Method: "LOCAL", Endpoint: "connlog"}
	var resp opResponse
	status := s.serve(ctx, conn, &entry, &resp)
	entry.Time = time.Now().UTC()
	entry.Status = status
	entry.Outcome = outcome(status)
	if status != 200 {
		entry.Reason = resp.Error
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	aerr := s.audit.Audit(actx, entry)
	cancel()
	if aerr != nil {
		s.logger.Error("audit row not written; operator command's answer withheld", "command", entry.Endpoint, "err", aerr)
		resp = opResponse{Error: "the audit trail cannot be written, so the answer is withheld; try again later"}
	}
	conn.SetWriteDeadline(time.Now().Add(adminReadTimeout)) //nolint:errcheck // a failed write below says it
	if err := json.NewEncoder(conn).Encode(resp); err != nil {
		s.logger.Warn("admin socket: answer not sent", "command", entry.Endpoint, "err", err)
	}
}

// serve fills entry and resp for one connection and returns the status to
// audit (HTTP codes, as in the API's rows).
func (s *adminServer) serve(ctx context.Context, conn *net.UnixConn, entry *audit.Entry, resp *opResponse) int {
	p, err := peerCred(conn)
	if err != nil {
		resp.Error = "peer credentials: " + err.Error()
		return 403
	}
	entry.Actor = fmt.Sprintf("local-admin uid=%d", p.uid)
	entry.Source = fmt.Sprintf("unix %s pid=%d", adminSocketName, p.pid)
	if err := checkPeer(p, s.uid); err != nil {
		s.logger.Warn("admin socket: connection refused", "uid", p.uid, "pid", p.pid)
		resp.Error = "refused: " + err.Error()
		return 403
	}
	conn.SetReadDeadline(time.Now().Add(adminReadTimeout)) //nolint:errcheck // a failed read below says it
	var r opRequest
	if err := json.NewDecoder(io.LimitReader(conn, maxAdminRequest)).Decode(&r); err != nil {
		resp.Error = "bad request: " + err.Error()
		return 400
	}
	conn.SetReadDeadline(time.Time{}) //nolint:errcheck // nothing more is read
	entry.Endpoint = "connlog " + r.Command
	entry.Purpose = textcut.ValidRunes(r.Purpose, 200)
	entry.Filters = r.filters()
	if err := r.validate(); err != nil {
		resp.Error = err.Error()
		return 400
	}
	entry.Purpose = r.Purpose
	s.mu.Lock()
	defer s.mu.Unlock()
	var out bytes.Buffer
	err = r.run(ctx, s.env, &out)
	resp.Output = out.String()
	if err != nil {
		resp.Error = err.Error()
		return 500
	}
	return 200
}

// outcome is the audit outcome of a status, as the API records it.
func outcome(status int) string {
	switch {
	case status < 400:
		return "ok"
	case status == 401 || status == 403:
		return "denied"
	case status < 500:
		return "invalid"
	}
	return "error"
}

// viaAdminSocket sends r to the instance answering on the admin socket at
// path and copies its output to stdout. served is false when no instance
// answers there (no socket, or one left by an instance that stopped): the
// caller then runs the command itself.
func viaAdminSocket(ctx context.Context, path string, r opRequest, stdout io.Writer) (served bool, err error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT):
		return false, nil
	case err != nil:
		return true, fmt.Errorf("admin socket of the running connlog serve: %w (run the command as connlog's user)", err)
	}
	defer func() { _ = conn.Close() }()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	// A refused peer may find the server's answer already waiting and the
	// socket closed before its request is written: the answer, not the
	// broken pipe, says why, so it is read even when the send fails.
	sendErr := json.NewEncoder(conn).Encode(r)
	var resp opResponse
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		if ctx.Err() != nil {
			return true, ctx.Err()
		}
		if sendErr != nil {
			return true, fmt.Errorf("admin socket: send: %w", sendErr)
		}
		return true, fmt.Errorf("admin socket: no answer from the running connlog serve: %w", err)
	}
	if _, err := io.WriteString(stdout, resp.Output); err != nil {
		return true, err
	}
	if resp.Error != "" {
		return true, errors.New(resp.Error)
	}
	return true, nil
}
