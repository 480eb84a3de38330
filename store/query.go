package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// ErrBadFilter reports a search that cannot be run as asked; the message
// says why.
var ErrBadFilter = errors.New("bad filter")

// AccessQuery selects rows of the access log.
type AccessQuery struct {
	// Network is the client address or network; a single IP is a /32 or
	// /128 prefix. Required.
	Network netip.Prefix
	// From and To bound event time, half-open [From, To). Required.
	From, To time.Time
	// Site restricts to one site; "" means all sites the caller may see.
	Site string
	// Sites, if non-empty, restricts to these sites (credential scoping).
	Sites []string
	// Limit caps the rows returned. Required, positive.
	Limit int
}

// SearchAccess returns access-log rows of q.Network in [q.From, q.To),
// oldest first. Every value is a bound parameter.
func (s *Store) SearchAccess(ctx context.Context, q AccessQuery) ([]Hit, error) {
	if !q.Network.IsValid() {
		return nil, fmt.Errorf("%w: an IP address or network is required", ErrBadFilter)
	}
	if !q.From.Before(q.To) {
		return nil, fmt.Errorf("%w: the time window is empty (from must be before to)", ErrBadFilter)
	}
	if q.Limit <= 0 {
		return nil, fmt.Errorf("%w: limit must be positive", ErrBadFilter)
	}
	lo, hi := prefixRange(q.Network)
	params := map[string]string{
		"lo":    lo.String(),
		"hi":    hi.String(),
		"from":  formatTime(q.From),
		"to":    formatTime(q.To),
		"limit": strconv.Itoa(q.Limit),
	}
	var where strings.Builder
	where.WriteString("client_ip BETWEEN {lo:IPv6} AND {hi:IPv6} AND event_time >= {from:DateTime64(3, 'UTC')} AND event_time < {to:DateTime64(3, 'UTC')}")
	if q.Site != "" {
		where.WriteString(" AND site = {site:String}")
		params["site"] = escapeParam(q.Site)
	}
	if len(q.Sites) > 0 {
		where.WriteString(" AND site IN {sites:Array(String)}")
		params["sites"] = arrayParam(q.Sites)
	}
	ctx = clickhouse.Context(ctx, clickhouse.WithParameters(params), clickhouse.WithSettings(clickhouse.Settings{
		"max_execution_time": int(s.cfg.QueryTimeout.Seconds()),
	}))
	rows, err := s.conn.Query(ctx, "SELECT "+accessColumns+" FROM "+s.db.Access+".access_log WHERE "+where.String()+
		" ORDER BY event_time, client_ip, kafka_partition, kafka_offset LIMIT {limit:UInt32}")
	if err != nil {
		return nil, fmt.Errorf("search access log: %w", err)
	}
	defer rows.Close()
	var out []Hit
	for rows.Next() {
		var (
			h                            Hit
			clientIP, peerIP, serverAddr netip.Addr
			requestTimeUS                uint64
		)
		if err := rows.Scan(&h.EventTime, &h.Ingested, &clientIP, &h.ClientPort, &peerIP, &h.ForwardedFor, &serverAddr, &h.ServerPort,
			&h.Site, &h.Method, &h.Path, &h.Query, &h.Protocol, &h.Status, &h.BytesSent, &h.Referer, &h.UserAgent, &requestTimeUS,
			&h.Upstream, &h.RequestID, &h.User, &h.TLSProtocol, &h.Source.Topic, &h.Source.Partition, &h.Source.Offset); err != nil {
			return nil, fmt.Errorf("read access log row: %w", err)
		}
		h.ClientIP, h.PeerIP, h.ServerAddr = fromStored(clientIP), fromStored(peerIP), fromStored(serverAddr)
		h.RequestTime = time.Duration(requestTimeUS) * time.Microsecond
		h.EventTime, h.Ingested = h.EventTime.UTC(), h.Ingested.UTC()
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search access log: %w", err)
	}
	return out, nil
}

// prefixRange returns the first and last IPv6 address of p, IPv4 prefixes
// mapped into ::ffff:0:0/96 as they are stored.
func prefixRange(p netip.Prefix) (lo, hi netip.Addr) {
	p = p.Masked()
	bits := p.Bits()
	a := p.Addr()
	if a.Is4() {
		a = netip.AddrFrom16(a.As16())
		bits += 96
	}
	b := a.As16()
	for i := bits; i < 128; i++ {
		b[i/8] |= 1 << (7 - uint(i%8))
	}
	return a, netip.AddrFrom16(b)
}

// fromStored turns a stored IPv6 value back into the address ingest saw:
// IPv4-mapped addresses become IPv4 again and :: means "absent".
func fromStored(a netip.Addr) netip.Addr {
	if !a.IsValid() || a.IsUnspecified() {
		return netip.Addr{}
	}
	return a.Unmap()
}
