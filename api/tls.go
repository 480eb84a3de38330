package api

import (
	"crypto/tls"
	"fmt"
	"net"
)

// tlsListener wraps ln with TLS when Config.TLSCert and TLSKey are set, and
// returns ln unchanged otherwise. The certificate is read once here: a
// missing or unreadable file stops Serve at once instead of failing every
// handshake.
func (s *Server) tlsListener(ln net.Listener) (net.Listener, error) {
	if s.cfg.TLSCert == "" {
		return ln, nil
	}
	cert, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("load api tls certificate: %w", err)
	}
	return tls.NewListener(ln, &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"http/1.1"},
	}), nil
}
