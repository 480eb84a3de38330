//go:build unix

package embedded

import (
	"bytes"
	"io"
	"os"
	"syscall"
)

// captureStderr points fd 2 at a pipe until the returned function is
// called, which restores it and returns what was written meanwhile. Open
// wraps chdb_connect in it: ClickHouse's logger set-up prints a line
// straight to fd 2 that connlog passes on as a structured record instead.
// connlog's own log lines written meanwhile (they also go to fd 2) are
// among the output, and Open writes them back unchanged.
func captureStderr() (restore func() []byte, err error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	saved, err := syscall.Dup(2)
	if err != nil {
		_ = r.Close()
		_ = w.Close()
		return nil, err
	}
	if err := dup2(int(w.Fd()), 2); err != nil {
		_ = syscall.Close(saved)
		_ = r.Close()
		_ = w.Close()
		return nil, err
	}
	out := make(chan []byte, 1)
	go func() {
		var b bytes.Buffer
		_, _ = io.Copy(&b, r) // until the last write end closes
		_ = r.Close()
		out <- b.Bytes()
	}()
	return func() []byte {
		_ = dup2(saved, 2)
		_ = syscall.Close(saved)
		_ = w.Close()
		return <-out
	}, nil
}
