package logline

import (
	"github.com/connlog/connlog/store"
)

// unwrapEnvelope recognises a shipper's JSON envelope around the log line:
// Vector and Filebeat put the line in "message", Fluent Bit in "log". It
// returns the line and keeps the shipper's host (Vector "host", Filebeat
// "host.name" or "agent.hostname", Fluent Bit "hostname") and the file the
// line was read from (Vector "file", Filebeat "log.file.path", Fluent Bit's
// Path_Key "file", "filename" or "path") in h.
//
// A JSON object is an envelope only when it has a string "message" or "log"
// member that the JSON log format does not map to a field (jf may be nil;
// json_fields could name either key), and neither twice; otherwise
// ok is false and the object is a log line itself. The returned line is a
// new allocation when the envelope escaped anything in it (a combined
// line's quotes always are).
func unwrapEnvelope(msg []byte, jf *jsonFormat, h *store.Hit) (line []byte, ok bool) {
	var (
		inner       []byte
		innerEsc    bool
		found       bool
		host, file  []byte
		hostEsc     bool
		fileEsc     bool
		hasLogField bool
		// twice: the envelope gives its line's key twice, and which of
		// the two is the line depends on the reader.
		twice    bool
		lineKeys [2]bool // "message", "log" met
	)
	err := eachMember(msg, func(key []byte, _ bool, val []byte, kind byte, esc bool, _ int) bool {
		k := str(key)
		switch {
		case (k == "message" || k == "log") && kind == 's':
			if jf != nil && jf.table.get(key) != fIgnore {
				hasLogField = true // a JSON log format claims this key
			}
			i := 0
			if k == "log" {
				i = 1
			}
			twice = twice || lineKeys[i]
			lineKeys[i] = true
			if !found || k == "message" {
				inner, innerEsc, found = val, esc, true
			}
		case k == "log" && kind == '{':
			// Filebeat: "log":{"file":{"path":"..."}}
			if p, e, ok := nestedString(val, "file", "path"); ok {
				file, fileEsc = p, e
			}
		case (k == "host" || k == "hostname") && kind == 's':
			host, hostEsc = val, esc
		case k == "host" && kind == '{':
			if p, e, ok := nestedString(val, "name"); ok {
				host, hostEsc = p, e
			}
		case k == "agent" && kind == '{' && host == nil:
			if p, e, ok := nestedString(val, "hostname"); ok {
				host, hostEsc = p, e
			}
		case (k == "file" || k == "filename" || k == "path") && kind == 's':
			file, fileEsc = val, esc
		}
		return true
	})
	if err != nil || !found || hasLogField || twice {
		return nil, false
	}
	if innerEsc {
		inner = unescapeJSON(inner)
	}
	if hostEsc {
		host = unescapeJSON(host)
	}
	if fileEsc {
		file = unescapeJSON(file)
	}
	h.ShipperHost = str(host)
	h.LogFile = str(file)
	return trimEOL(inner), true
}

// nestedString finds the string at path inside the JSON object obj.
func nestedString(obj []byte, path ...string) (val []byte, esc, ok bool) {
	_ = eachMember(obj, func(key []byte, _ bool, v []byte, kind byte, e bool, _ int) bool {
		if str(key) != path[0] {
			return true
		}
		if len(path) == 1 {
			if kind == 's' {
				val, esc, ok = v, e, true
			}
			return false
		}
		if kind == '{' {
			val, esc, ok = nestedString(v, path[1:]...)
		}
		return false
	})
	return val, esc, ok
}
