package audit

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/connlog/connlog/store/internal/chsql"
)

// Query selects rows of the audit trail. Zero optional fields do not
// filter.
type Query struct {
	// From and To bound the row time, half-open [From, To). Required.
	From, To time.Time
	// Actor, Role, Endpoint and Outcome keep rows with exactly this value.
	Actor, Role, Endpoint, Outcome string
	// Purpose keeps rows whose stated purpose contains it, ignoring ASCII
	// case.
	Purpose string
	// After, if set, continues a search after this row.
	After *Cursor
	// Limit caps the rows returned. Required, positive.
	Limit int
}

// Cursor is the sort key of an audit row: its time, then a hash of
// its content, which orders rows written in the same millisecond.
type Cursor struct {
	Time time.Time
	Hash uint64
}

// Record is a stored audit row with its sort key.
type Record struct {
	Entry
	Hash uint64
}

// Cursor returns the cursor of r, to continue a search after it.
func (r *Record) Cursor() Cursor { return Cursor{Time: r.Time, Hash: r.Hash} }

// auditHash is the content hash that breaks ties between audit rows of the
// same millisecond.
const auditHash = "cityHash64(actor, role, source, method, endpoint, purpose, filters, status, rows, outcome, reason, requests)"

// auditWindow adds the window and cursor conditions shared by audit searches.
func auditWindow(f *chsql.Where, from, to time.Time, after *Cursor) error {
	if !from.Before(to) {
		return fmt.Errorf("%w: the time window is empty (from must be before to)", chsql.ErrBadFilter)
	}
	f.Params = map[string]string{"from": chsql.Time(from), "to": chsql.Time(to)}
	f.And("time >= {from:DateTime64(3, 'UTC')} AND time < {to:DateTime64(3, 'UTC')}")
	if after != nil {
		f.And("time >= {c_time:DateTime64(3, 'UTC')} AND (time > {c_time:DateTime64(3, 'UTC')} OR h > {c_hash:UInt64})")
		f.Params["c_time"] = chsql.Time(after.Time)
		f.Params["c_hash"] = strconv.FormatUint(after.Hash, 10)
	}
	return nil
}

// SearchAudit returns at most q.Limit audit rows matching q, oldest first.
func (s *Trail) SearchAudit(ctx context.Context, q Query) ([]Record, error) {
	if q.Limit <= 0 {
		return nil, fmt.Errorf("%w: limit must be positive", chsql.ErrBadFilter)
	}
	var f chsql.Where
	if err := auditWindow(&f, q.From, q.To, q.After); err != nil {
		return nil, err
	}
	for _, c := range []struct{ col, v string }{{"actor", q.Actor}, {"role", q.Role}, {"endpoint", q.Endpoint}, {"outcome", q.Outcome}} {
		if c.v != "" {
			f.And(c.col + " = {" + c.col + ":String}")
			f.Params[c.col] = chsql.Escape(c.v)
		}
	}
	if q.Purpose != "" {
		f.And("positionCaseInsensitive(purpose, {purpose:String}) > 0")
		f.Params["purpose"] = chsql.Escape(q.Purpose)
	}
	f.Params["limit"] = strconv.Itoa(q.Limit)
	rows, err := s.conn.Query(s.queryContext(ctx, f.Params, q.Limit),
		"SELECT "+auditColumns+", "+auditHash+" AS h FROM "+
			s.db.Ops+".audit WHERE "+f.SQL.String()+" ORDER BY time, h LIMIT {limit:UInt64}")
	if err != nil {
		return nil, fmt.Errorf("search audit trail: %w", err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var (
			r      Record
			status uint16
			n      uint64
			reqs   uint64
		)
		if err := rows.Scan(&r.Time, &r.Actor, &r.Role, &r.Source, &r.Method, &r.Endpoint, &r.Purpose, &r.Filters,
			&status, &n, &r.Outcome, &r.Reason, &reqs, &r.Hash); err != nil {
			return nil, fmt.Errorf("read audit row: %w", err)
		}
		r.Time, r.Status, r.Rows, r.Requests = r.Time.UTC(), int(status), int(n), int(reqs)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search audit trail: %w", err)
	}
	return out, nil
}

// SubjectQuery asks which consultations touched one address, for a data
// subject's access request.
type SubjectQuery struct {
	// Addr is the data subject's address. Required.
	Addr netip.Addr
	// From and To bound the consultation time, half-open. Required.
	From, To time.Time
	After    *Cursor
	// Limit caps the rows returned. Required, positive.
	Limit int
}

// Consultation is an answered data request whose filters covered the
// subject's address. It deliberately carries no actor, role or source.
type Consultation struct {
	Time     time.Time
	Endpoint string
	Purpose  string
	Rows     uint64
	Hash     uint64
}

// Cursor returns the cursor of c, to continue a search after it.
func (c *Consultation) Cursor() Cursor { return Cursor{Time: c.Time, Hash: c.Hash} }

// SubjectConsultations returns, oldest first, the answered data requests
// (outcome "ok", outside the audit endpoints themselves) that covered
// q.Addr: their filters JSON names an address or network containing it as
// "ip" (a string) or "ips" (an array of strings), or names a requisition
// ("requisition") whose selectors, or holds ("hold", or "holds" separated
// by commas) whose networks contain it.
func (s *Trail) SubjectConsultations(ctx context.Context, q SubjectQuery) ([]Consultation, error) {
	if !q.Addr.IsValid() {
		return nil, fmt.Errorf("%w: an IP address is required", chsql.ErrBadFilter)
	}
	if q.Limit <= 0 {
		return nil, fmt.Errorf("%w: limit must be positive", chsql.ErrBadFilter)
	}
	var f chsql.Where
	if err := auditWindow(&f, q.From, q.To, q.After); err != nil {
		return nil, err
	}
	f.Params["addr"] = q.Addr.Unmap().String()
	f.Params["limit"] = strconv.Itoa(q.Limit)
	// isIPAddressInRange needs CIDR notation: a bare address becomes a
	// /32 or /128; anything that is not an address never matches.
	const inRange = "isIPAddressInRange({addr:String}, if(position(x, '/') > 0, x, concat(x, if(position(x, ':') > 0, '/128', '/32'))))"
	const valid = "(isIPv4String(splitByChar('/', x)[1]) OR isIPv6String(splitByChar('/', x)[1]))"
	// The addresses a request covered: its "ip" and "ips" filters, the
	// selectors of the requisition it names, the networks of the holds it
	// names (requisition and hold endpoints record ids, not addresses).
	const covered = "arrayConcat([JSONExtractString(filters, 'ip')], JSONExtract(filters, 'ips', 'Array(String)')," +
		" arrayMap(s -> JSONExtractString(s, 'ip'), JSONExtractArrayRaw(reqs.2[indexOf(reqs.1, JSONExtractString(filters, 'requisition'))]))," +
		" arrayMap(i -> holds.2[indexOf(holds.1, i)], arrayConcat(splitByChar(',', JSONExtractString(filters, 'holds')), [JSONExtractString(filters, 'hold')])))"
	f.And("outcome = 'ok' AND NOT startsWith(endpoint, '/v1/audit')")
	f.And("arrayExists(x -> " + valid + " AND " + inRange + ", " + covered + ")")
	with := "WITH (SELECT tuple(groupArray(id), groupArray(sel)) FROM (SELECT id, any(selectors) AS sel FROM " + s.db.Ops + ".requisitions GROUP BY id)) AS reqs," +
		" (SELECT tuple(groupArray(id), groupArray(net)) FROM (SELECT id, any(network) AS net FROM " + s.db.Ops + ".holds GROUP BY id)) AS holds "
	rows, err := s.conn.Query(s.queryContext(ctx, f.Params, q.Limit),
		with+"SELECT time, endpoint, purpose, rows, "+auditHash+" AS h FROM "+s.db.Ops+".audit WHERE "+f.SQL.String()+
			" ORDER BY time, h LIMIT {limit:UInt64}")
	if err != nil {
		return nil, fmt.Errorf("search audit trail for a subject: %w", err)
	}
	defer rows.Close()
	var out []Consultation
	for rows.Next() {
		var c Consultation
		if err := rows.Scan(&c.Time, &c.Endpoint, &c.Purpose, &c.Rows, &c.Hash); err != nil {
			return nil, fmt.Errorf("read audit row: %w", err)
		}
		c.Time = c.Time.UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search audit trail for a subject: %w", err)
	}
	return out, nil
}
