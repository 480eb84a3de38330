package store

import (
	"net/netip"

	"github.com/connlog/connlog/store/internal/chsql"
)

// ErrBadFilter reports a search that cannot be run as asked; the message
// says why. Searches of every package of store (audit too) wrap it.
var ErrBadFilter = chsql.ErrBadFilter

// fromStored turns a stored IPv6 value back into the address ingest saw:
// IPv4-mapped addresses become IPv4 again and :: means "absent".
func fromStored(a netip.Addr) netip.Addr {
	if !a.IsValid() || a.IsUnspecified() {
		return netip.Addr{}
	}
	return a.Unmap()
}
