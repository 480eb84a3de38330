package embedded

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// OperatorUser is the user name of the operator listener.
const OperatorUser = "default"

// ServeOperator serves the engine's HTTP interface on ln to operators (a
// Grafana on the same host, debugging) until ctx is done. It is full
// administrative access to every table — read, change, delete, the audit
// trail included — limited only by the engine's grants (no file or network
// access) and time limit. Every request but /ping must carry password as
// ClickHouse clients send it: HTTP basic auth (user "default"), the
// X-ClickHouse-User/X-ClickHouse-Key headers, or user/password URL
// parameters.
func (e *Engine) ServeOperator(ctx context.Context, ln net.Listener, password string) error {
	if len(password) < 16 {
		return errors.New("embedded ClickHouse operator listener: password too short")
	}
	srv := &http.Server{Handler: e.operatorHandler(password), ReadHeaderTimeout: 10 * time.Second}
	return e.serve(ctx, ln, srv)
}

func (e *Engine) operatorHandler(password string) http.Handler {
	inner := e.Handler()
	want := []byte(password)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ping" {
			inner.ServeHTTP(w, r)
			return
		}
		user, pass, ok := r.BasicAuth()
		if !ok {
			user, pass = r.Header.Get("X-ClickHouse-User"), r.Header.Get("X-ClickHouse-Key")
		}
		if user == "" && pass == "" {
			q := r.URL.Query()
			user, pass = q.Get("user"), q.Get("password")
		}
		if user == "" {
			user = OperatorUser
		}
		userOK := subtle.ConstantTimeCompare([]byte(user), []byte(OperatorUser)) == 1
		passOK := subtle.ConstantTimeCompare([]byte(pass), want) == 1
		if !userOK || !passOK {
			e.logger.Warn("embedded ClickHouse operator listener: request refused without the password", "remote", r.RemoteAddr)
			writeError(w, e.version, http.StatusUnauthorized, newEngineError("Code: 516. DB::Exception: "+OperatorUser+": Authentication failed: password is incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)"))
			return
		}
		inner.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), operatorKey{}, true)))
	})
}

// LoadOrCreatePassword returns the operator listener's password kept in the
// file at path, creating it (random, mode 0600) if missing. It refuses a
// file that others can read.
func LoadOrCreatePassword(path string) (password string, created bool, err error) {
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		fi, err := os.Stat(path)
		if err != nil {
			return "", false, err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return "", false, fmt.Errorf("%s is readable by others (mode %s): chmod 600 it", path, fi.Mode().Perm())
		}
		pw := strings.TrimSpace(string(raw))
		if len(pw) < 16 {
			return "", false, fmt.Errorf("%s: password shorter than 16 characters", path)
		}
		return pw, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", false, fmt.Errorf("read engine password: %w", err)
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", false, err
	}
	pw := base64.RawURLEncoding.EncodeToString(b)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("save engine password: %w", err)
	}
	if _, err := f.WriteString(pw + "\n"); err != nil {
		_ = f.Close()
		return "", false, fmt.Errorf("save engine password: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", false, fmt.Errorf("save engine password: %w", err)
	}
	return pw, true, nil
}
