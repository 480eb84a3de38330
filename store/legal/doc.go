// Package legal keeps what the law asks of connlog beyond retention: the
// requisition register (an authority's request for connection records, the
// export packages produced for it, and how the answer was sent) and legal
// holds (CPCE L34-1 III bis: the connection records matching a Selector are
// copied into hold storage that no TTL touches, until released or expired).
//
// store.Store embeds the Register of its databases; the search of the
// records a requisition asks for is a connection search
// (store.Store.RequisitionRecords). The retention enforcement pass releases
// expired holds through ReleaseExpiredHolds. The export package that
// answers a requisition is built and kept by store/legal/export.
package legal
