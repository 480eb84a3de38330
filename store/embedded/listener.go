package embedded

import (
	"context"
	"net"
	"sync"
)

// Listener is an in-process net.Listener: its connections come only from
// its Dial method, as net.Pipe pairs, so nothing outside the process can
// reach what is served on it. connlog serves the engine's HTTP interface on
// one and gives Dial to clickhouse-go (Options.DialContext), which uses it
// for the HTTP protocol too.
type Listener struct {
	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
}

// NewListener returns an open in-process listener.
func NewListener() *Listener {
	return &Listener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

// Accept waits for the next Dial.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close stops Accept and Dial; established connections stay open.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

// Addr names the listener; it is no network address.
func (l *Listener) Addr() net.Addr { return pipeAddr{} }

// Dial connects to the listener; addr is ignored. It has the signature of
// clickhouse.Options.DialContext.
func (l *Listener) Dial(ctx context.Context, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.closed:
	case <-ctx.Done():
		_ = client.Close()
		_ = server.Close()
		return nil, ctx.Err()
	}
	_ = client.Close()
	_ = server.Close()
	return nil, net.ErrClosed
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }

// String is the host:port clickhouse-go puts in its URLs; no socket has it.
func (pipeAddr) String() string { return "embedded-clickhouse.invalid:8123" }
