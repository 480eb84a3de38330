package store

import (
	"net/netip"
	"time"
)

// HoldSelector chooses the connection records a legal hold freezes.
type HoldSelector struct {
	// Network is the client address or network. Required.
	Network netip.Prefix
	// Port is the client source port; 0 means any.
	Port uint16
	// Site restricts to one site; "" means all.
	Site string
	// From and To bound event time, half-open [From, To). Required.
	From, To time.Time
}

// Hold is a legal hold ("gel", CPCE L34-1 III bis): the records matching
// Selector are copied into hold storage that no TTL touches, until the
// hold is released or expires.
type Hold struct {
	ID        string
	Reference string // the authority's or procedure's reference
	Selector  HoldSelector
	Expires   time.Time
	CreatedBy string
	Created   time.Time
	// Released is zero while the hold is active.
	Released   time.Time
	ReleasedBy string
	// Rows is the number of records copied into hold storage.
	Rows uint64
}
