package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Write stores a batch: every hit into the access log and the connection
// records, every audience row into the statistics (aggregated on the way
// in), every quarantined message into quarantine. Each table gets one
// insert carrying an insert_deduplication_token derived from the Kafka
// offsets of the batch, so retrying the same batch after an error or a
// timeout never stores it twice. Write returns only when ClickHouse has
// acknowledged every insert; the caller may then commit the offsets.
//
// Write is safe for concurrent use.
func (s *Store) Write(ctx context.Context, b Batch) error {
	token := b.ID
	if token == "" {
		token = batchToken(b)
	}
	if len(b.Hits) > 0 {
		if err := s.insert(ctx, token, s.db.Access+".access_log", accessColumns, len(b.Hits), func(bt driver.Batch) error {
			return appendAccess(bt, b.Hits)
		}); err != nil {
			return fmt.Errorf("insert %d access log rows: %w", len(b.Hits), err)
		}
		if err := s.insert(ctx, token, s.db.Connections+".connection_records", connectionColumns, len(b.Hits), func(bt driver.Batch) error {
			return appendConnections(bt, b.Hits)
		}); err != nil {
			return fmt.Errorf("insert %d connection records: %w", len(b.Hits), err)
		}
	}
	if len(b.Audience) > 0 {
		if b.ID == "" && len(b.Hits) == 0 {
			return fmt.Errorf("insert %d audience rows: a batch without hits needs an ID", len(b.Audience))
		}
		if err := s.insertAudience(ctx, token, b.Audience); err != nil {
			return fmt.Errorf("insert %d audience rows: %w", len(b.Audience), err)
		}
	}
	if len(b.Quarantine) > 0 {
		if err := s.insert(ctx, token, s.db.Ops+".quarantine", quarantineColumns, len(b.Quarantine), func(bt driver.Batch) error {
			return appendQuarantine(bt, b.Quarantine)
		}); err != nil {
			return fmt.Errorf("insert %d quarantined lines: %w", len(b.Quarantine), err)
		}
	}
	// Tamper evidence: a signed, chained manifest per table and partition,
	// after the rows (a manifest never describes rows not stored).
	if err := s.writeManifests(ctx, token, b); err != nil {
		return fmt.Errorf("batch %s: %w", token, err)
	}
	return nil
}

// batchToken identifies a batch by the offsets it covers: the same messages
// give the same token, whatever process sends them.
func batchToken(b Batch) string {
	h := sha256.New()
	var buf []byte
	add := func(src Source) {
		buf = buf[:0]
		buf = append(buf, src.Topic...)
		buf = append(buf, 0)
		buf = strconv.AppendInt(buf, int64(src.Partition), 10)
		buf = append(buf, ':')
		buf = strconv.AppendInt(buf, src.Offset, 10)
		buf = append(buf, '\n')
		h.Write(buf)
	}
	for i := range b.Hits {
		add(b.Hits[i].Source)
	}
	h.Write([]byte{'q'})
	for i := range b.Quarantine {
		add(b.Quarantine[i].Source)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (s *Store) insert(ctx context.Context, token, table string, columns string, rows int, fill func(driver.Batch) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.InsertTimeout)
	defer cancel()
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
		"insert_deduplication_token": token,
		// a batch of old lines may span many days (one partition each)
		"max_partitions_per_insert_block": 10000,
	}))
	bt, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+table+" ("+columns+")")
	if err != nil {
		return err
	}
	defer bt.Abort() //nolint:errcheck // no-op once sent
	if err := fill(bt); err != nil {
		return err
	}
	return bt.Send()
}

const accessColumns = "event_time, ingested_at, client_ip, client_port, peer_ip, forwarded_for, server_addr, server_port, site, method, path, query, protocol, status, bytes_sent, referer, user_agent, request_time_us, upstream, request_id, user, tls_protocol, kafka_topic, kafka_partition, kafka_offset, operation, opt_out, shipper_host, log_file, client_text, raw_request, has_referer, has_user_agent"

func appendAccess(bt driver.Batch, hits []Hit) error {
	n := len(hits)
	var (
		eventTime, ingested            = make([]time.Time, n), make([]time.Time, n)
		clientIP, peerIP, serverAddr   = make([][16]byte, n), make([][16]byte, n), make([][16]byte, n)
		clientPort, serverPort, status = make([]uint16, n), make([]uint16, n), make([]uint16, n)
		bytesSent, requestTime         = make([]uint64, n), make([]uint64, n)
		partition                      = make([]int32, n)
		offset                         = make([]int64, n)
		forwarded, site, method, path  = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		query, protocol, referer, ua   = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		upstream, reqID, user, tlsProt = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		topic                          = make([]string, n)
		operation                      = make([]int8, n)
		optOut                         = make([]bool, n)
		shipperHost, logFile           = make([]string, n), make([]string, n)
		clientText, rawRequest         = make([]string, n), make([]string, n)
		hasReferer, hasUserAgent       = make([]bool, n), make([]bool, n)
	)
	for i := range hits {
		h := &hits[i]
		op := hitOperation(h)
		operation[i], optOut[i], shipperHost[i], logFile[i] = int8(op), h.OptOut, h.ShipperHost, h.LogFile
		eventTime[i], ingested[i] = h.EventTime, h.Ingested
		clientIP[i], peerIP[i], serverAddr[i] = addr16(h.ClientIP), addr16(h.PeerIP), addr16(h.ServerAddr)
		clientPort[i], serverPort[i], status[i] = h.ClientPort, h.ServerPort, h.Status
		bytesSent[i], requestTime[i] = h.BytesSent, uint64(h.RequestTime/time.Microsecond)
		forwarded[i], site[i], method[i], path[i] = h.ForwardedFor, h.Site, h.Method, h.Path
		query[i], protocol[i], referer[i], ua[i] = h.Query, h.Protocol, h.Referer, h.UserAgent
		upstream[i], reqID[i], user[i], tlsProt[i] = h.Upstream, h.RequestID, h.User, h.TLSProtocol
		topic[i], partition[i], offset[i] = h.Source.Topic, h.Source.Partition, h.Source.Offset
		clientText[i], rawRequest[i] = h.ClientText, h.RawRequest
		hasReferer[i], hasUserAgent[i] = h.RefererSent(), h.UserAgentSent()
	}
	return appendColumns(bt, eventTime, ingested, clientIP, clientPort, peerIP, forwarded, serverAddr, serverPort,
		site, method, path, query, protocol, status, bytesSent, referer, ua, requestTime, upstream, reqID, user, tlsProt,
		topic, partition, offset, operation, optOut, shipperHost, logFile, clientText, rawRequest, hasReferer, hasUserAgent)
}

const connectionColumns = "event_time, ingested_at, client_ip, client_port, server_addr, server_port, site, protocol, tls_protocol, operation, path, user, status, kafka_topic, kafka_partition, kafka_offset"

func appendConnections(bt driver.Batch, hits []Hit) error {
	n := len(hits)
	var (
		eventTime, ingested    = make([]time.Time, n), make([]time.Time, n)
		clientIP, serverAddr   = make([][16]byte, n), make([][16]byte, n)
		clientPort, serverPort = make([]uint16, n), make([]uint16, n)
		status                 = make([]uint16, n)
		site, protocol, tlsP   = make([]string, n), make([]string, n), make([]string, n)
		operation              = make([]int8, n)
		path, user, topic      = make([]string, n), make([]string, n), make([]string, n)
		partition              = make([]int32, n)
		offset                 = make([]int64, n)
	)
	for i := range hits {
		h := &hits[i]
		op := hitOperation(h)
		eventTime[i], ingested[i] = h.EventTime, h.Ingested
		clientIP[i], serverAddr[i] = addr16(h.ClientIP), addr16(h.ServerAddr)
		clientPort[i], serverPort[i], status[i] = h.ClientPort, h.ServerPort, h.Status
		site[i], protocol[i], tlsP[i] = h.Site, h.Protocol, h.TLSProtocol
		operation[i] = int8(op)
		// CPCE L34-1 VI: the pages consulted are not connection data; only
		// what a person created, changed or deleted (and who) is kept.
		if op != OpRead {
			path[i], user[i] = h.Path, h.User
		}
		topic[i], partition[i], offset[i] = h.Source.Topic, h.Source.Partition, h.Source.Offset
	}
	return appendColumns(bt, eventTime, ingested, clientIP, clientPort, serverAddr, serverPort, site, protocol, tlsP,
		operation, path, user, status, topic, partition, offset)
}

const quarantineColumns = "received_at, kafka_topic, kafka_partition, kafka_offset, reason, raw"

func appendQuarantine(bt driver.Batch, qs []Quarantined) error {
	n := len(qs)
	received := make([]time.Time, n)
	topic, reason, raw := make([]string, n), make([]string, n), make([]string, n)
	partition := make([]int32, n)
	offset := make([]int64, n)
	for i := range qs {
		q := &qs[i]
		received[i], topic[i], partition[i], offset[i] = q.Received, q.Source.Topic, q.Source.Partition, q.Source.Offset
		reason[i], raw[i] = q.Reason, string(q.Raw)
	}
	return appendColumns(bt, received, topic, partition, offset, reason, raw)
}

func appendColumns(bt driver.Batch, cols ...any) error {
	for i, c := range cols {
		if err := bt.Column(i).Append(c); err != nil {
			return fmt.Errorf("column %d: %w", i, err)
		}
	}
	return nil
}

// addr16 stores an address as IPv6 (IPv4 as IPv4-mapped); an absent address
// is stored as ::.
func addr16(a netip.Addr) [16]byte {
	if !a.IsValid() {
		return [16]byte{}
	}
	return a.As16()
}
