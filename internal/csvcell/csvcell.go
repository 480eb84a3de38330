// Package csvcell keeps values from logs from running as formulas when a
// CSV export is opened in a spreadsheet. A User-Agent, a user name or a
// path is whatever a client sent; in Excel or LibreOffice a cell that
// begins with "=", "+", "-" or "@" is a formula (=HYPERLINK can send the
// neighbouring cells, an IP address or a requisition's records, to the
// client's server; old DDE formulas start programs). A tab or a carriage
// return in front hides such a start from a quick look and some readers
// skip it.
//
// It is shared by the API's streamed exports (package api) and the
// requisition package's records.csv (package store/legal/export), so it
// imports nothing of connlog.
package csvcell

// Safe returns s as it is written in a CSV cell: with one "'" in front
// when it begins with one of = + - @ tab CR, which a spreadsheet then shows
// as text, or with "'" itself, so that the rule can be undone without
// doubt: a cell that begins with "'" had exactly one "'" added; strip it
// to get the value. Any other s is returned unchanged and not copied. The
// NDJSON of the same export is never altered.
func Safe(s string) string {
	if s == "" {
		return s
	}
	if prefixed(s[0]) {
		return "'" + s
	}
	return s
}

// prefixed reports whether Safe puts a "'" in front of a value that
// begins with c.
func prefixed(c byte) bool {
	switch c {
	case '=', '+', '-', '@', '\t', '\r', '\'':
		return true
	}
	return false
}

// Value undoes [Safe]: the value a cell written by Safe holds.
func Value(cell string) string {
	if len(cell) > 0 && cell[0] == '\'' {
		return cell[1:]
	}
	return cell
}
