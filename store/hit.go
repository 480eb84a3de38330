package store

import (
	"net/netip"
	"time"

	"github.com/connlog/connlog/anonymize"
)

// Source locates a Kafka message: where a stored row came from. It lets an
// operator trace any row back to its message and lets ingest resume and
// deduplicate by offset.
type Source struct {
	Topic     string
	Partition int32
	Offset    int64
}

// Hit is one parsed HTTP request, the unit that ingest hands to storage.
// The access log stores it whole; the connection records keep the subset the
// law asks for. A zero value (empty string, invalid netip.Addr, 0) means the
// log line did not carry the field: columns are not Nullable, so "-" in a log
// line and an absent field are both stored as the zero value. Where the zero
// value is also a value (status 000, 0 bytes, a header sent empty), Has says
// whether the line carried it; the referer and user agent keep that
// difference in storage too (has_referer, has_user_agent).
//
// Strings in a Hit may alias the Kafka message they were parsed from; a Hit
// is valid as long as that message is.
type Hit struct {
	Source Source

	// EventTime is the request time from the log line, UTC, millisecond precision.
	EventTime time.Time
	// Ingested is when connlog received the message.
	Ingested time.Time

	// ClientIP is the real client: the TCP peer, or the address taken from
	// forwarding headers when the peer is a trusted proxy.
	ClientIP   netip.Addr
	ClientPort uint16
	// PeerIP is the TCP peer nginx saw ($remote_addr or $realip_remote_addr).
	PeerIP       netip.Addr
	ForwardedFor string
	// ClientText is the client as the log wrote it when it is not an IP
	// address: "unix:" for a request on nginx's unix-socket listener, a host
	// name from Apache's %h with HostnameLookups on. ClientIP and PeerIP are
	// then absent; searches find such rows by this text.
	ClientText string

	ServerAddr netip.Addr
	ServerPort uint16
	// Site is the virtual host ($host, falling back to $server_name).
	Site string

	Method   string
	Path     string
	Query    string // without the leading '?', secrets already redacted
	Protocol string // e.g. "HTTP/1.1"
	Status   uint16
	// BytesSent is $body_bytes_sent.
	BytesSent   uint64
	Referer     string
	UserAgent   string
	RequestTime time.Duration
	Upstream    string
	RequestID   string
	User        string
	TLSProtocol string
	// RawRequest is the request line, as the log wrote it (escapes kept),
	// when it is not an HTTP request line "METHOD target [HTTP/x.y]": TLS
	// bytes or an SSH banner sent to a plain-HTTP port, binary junk. Method,
	// Path, Query and Protocol are then empty, so that searches on paths
	// see only real requests.
	RawRequest string

	// Has says which fields whose zero value is a value the line carried:
	// status 000, 0 bytes, a request time of 0.000 s, a Referer or
	// User-Agent header sent empty ("" in the line, where "-" means no
	// header). Rows read back from the store carry HasReferer and
	// HasUserAgent only (the columns has_referer, has_user_agent).
	Has Fields

	// ShipperHost is the host the log shipper ran on, from its envelope or
	// syslog header ("" when the message carried none).
	ShipperHost string
	// LogFile is the file the shipper read the line from, from its envelope.
	LogFile string
	// OptOut is true when the request carried "Sec-GPC: 1" or "DNT: 1" and
	// the log format records those headers: audience statistics skip it.
	OptOut bool
	// Redacted is true when ingest replaced secret query parameters (in the
	// query or the referer) before storage. It is not stored; it feeds metrics.
	Redacted bool

	// Operation classifies the request for the connection records;
	// OpUnknown lets the store derive it from Method.
	Operation Operation
}

// Fields is a set of [Hit] fields, for [Hit.Has].
type Fields uint8

// The fields a line may carry with a zero value.
const (
	HasStatus Fields = 1 << iota
	HasBytes
	HasRequestTime
	// HasReferer: the request carried a Referer header, possibly empty.
	HasReferer
	// HasUserAgent: the request carried a User-Agent header, possibly empty.
	HasUserAgent
)

// Quarantined is a message that could not be parsed, kept with the reason so
// an operator can fix the format and nothing is dropped silently.
type Quarantined struct {
	Source   Source
	Received time.Time
	Reason   string
	Raw      []byte
}

// Batch is what ingest writes in one go: the hits and the quarantined
// messages of a contiguous range of offsets of one Kafka partition.
type Batch struct {
	// ID identifies the batch for insert deduplication: the same messages
	// must always get the same ID, so that a batch written again after a
	// crash or a retry is stored once. Empty: derived from the offsets of
	// the hits and quarantined messages.
	ID         string
	Hits       []Hit
	Quarantine []Quarantined
	// Audience holds the audience statistics rows of the batch's hits, one
	// per hit kept by anonymize (ingest.WithAudience fills it). They are
	// aggregated on the way in; no row is stored as such.
	Audience []anonymize.Audience
	// Rebuilt marks a batch ingest rebuilt from the intent log after a
	// crash or a rebalance: it may already be stored, wholly or in part,
	// and not necessarily under its own ID (it may have gone in with the
	// batches of other partitions, see [Store.Write]). Write then inserts
	// into each table only the rows that table does not hold yet.
	Rebuilt bool

	// prepared is what Store.Prepare did of the batch's write ahead of it.
	prepared *prepared
}

// Operation is the kind of operation a request performs, which the
// connection records must state (décret 2021-1362): reading content, or
// creating, modifying or deleting it. Its values match the Enum8 column.
type Operation uint8

// The operation kinds. OpUnknown means "derive it from the method".
const (
	OpUnknown Operation = iota
	OpRead
	OpCreate
	OpModify
	OpDelete
)

// String returns the name stored in ClickHouse.
func (o Operation) String() string {
	switch o {
	case OpRead:
		return "read"
	case OpCreate:
		return "create"
	case OpModify:
		return "modify"
	case OpDelete:
		return "delete"
	}
	return "unknown"
}

// OperationOfMethod classifies a request by its HTTP method: POST creates,
// PUT and PATCH modify, DELETE deletes, everything else (GET, HEAD, OPTIONS,
// an empty or unknown method) reads.
func OperationOfMethod(method string) Operation {
	switch method {
	case "POST":
		return OpCreate
	case "PUT", "PATCH":
		return OpModify
	case "DELETE":
		return OpDelete
	}
	return OpRead
}

// RefererSent reports whether the request carried a Referer header, possibly
// empty: the has_referer column. A non-empty referer was sent whatever Has
// says (rows and hits built before Has existed).
func (h *Hit) RefererSent() bool { return h.Has&HasReferer != 0 || h.Referer != "" }

// UserAgentSent is [Hit.RefererSent] for the User-Agent header: the
// has_user_agent column.
func (h *Hit) UserAgentSent() bool { return h.Has&HasUserAgent != 0 || h.UserAgent != "" }

// hitOperation is the operation stored for h: its own, or the one its
// method implies when ingest left it unknown. The access log's operation
// column and [ConnectionOf] read it from here (tables.go), so the rule
// exists once for the writer and every manifest hash version.
func hitOperation(h *Hit) Operation {
	if h.Operation == OpUnknown {
		return OperationOfMethod(h.Method)
	}
	return h.Operation
}
