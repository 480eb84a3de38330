package legal

import (
	"net/netip"
	"time"
)

// Selector chooses connection records: those a requisition asks for, and
// those a legal hold freezes (a hold made from a requisition takes its
// selectors as they are). The JSON form is the one kept in the requisition
// register.
type Selector struct {
	// Network is the client address or network. Required.
	Network netip.Prefix `json:"ip"`
	// Port is the client source port; 0 means any.
	Port uint16 `json:"port,omitempty"`
	// Site restricts to one site; "" means all.
	Site string `json:"site,omitempty"`
	// From and To bound event time, half-open [From, To). Required.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// Hold is a legal hold ("gel", CPCE L34-1 III bis): the records matching
// Selector are copied into hold storage that no TTL touches, until the
// hold is released or expires.
type Hold struct {
	ID        string
	Reference string // the authority's or procedure's reference
	Selector  Selector
	Expires   time.Time
	CreatedBy string
	Created   time.Time
	// Released is zero while the hold is active.
	Released   time.Time
	ReleasedBy string
	// Rows is the number of records copied into hold storage.
	Rows uint64
}
