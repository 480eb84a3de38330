//go:build !linux

package main

import (
	"errors"
	"net"
)

// peerCred is only implemented on Linux (SO_PEERCRED); elsewhere every
// admin socket connection is refused, and the operator commands run only
// while serve does not.
func peerCred(*net.UnixConn) (peer, error) {
	return peer{}, errors.New("peer credentials are not available on this system")
}
