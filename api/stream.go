package api

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/connlog/connlog/internal/csvcell"
	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/audit"
)

// Media types of the streamed exports.
const (
	mediaNDJSON = "application/x-ndjson"
	mediaCSV    = "text/csv"
)

// Trailers of a streamed export: what the stream held, known only at its end.
const (
	trailerRows      = "X-Connlog-Rows"
	trailerTruncated = "X-Connlog-Truncated"
	trailerSHA256    = "X-Connlog-Sha256"
)

// Audit outcomes of the second audit row of an export.
const (
	outcomeCompleted   = "completed"
	outcomeInterrupted = "interrupted"
)

// streamFormat returns the export media type the client accepts, or "" for
// a JSON page. Only an explicit application/x-ndjson or text/csv asks for
// an export; */* and application/json get JSON.
func streamFormat(r *http.Request) string {
	for part := range strings.SplitSeq(r.Header.Get("Accept"), ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case mediaNDJSON, mediaCSV:
			return mt
		}
	}
	return ""
}

// streamRow is a row of an export: a value encoded as JSON (NDJSON), or,
// in a CSV export, a csvRow.
type streamRow any

// csvRow is a row of a CSV export: it appends its own record, each field
// made safe for a spreadsheet, with no string made for a time, an address
// or a number (a CSV export's formatting was a quarter of its CPU).
type csvRow interface {
	appendCSV(r *csvcell.Record)
}

// stream is a data handler's answer that is too large to hold: the guard
// writes the audit row first, then [Server.runStream] writes the rows as the
// store produces them.
type stream struct {
	format string   // mediaNDJSON or mediaCSV
	header []string // CSV header
	// run produces the rows in order, calling emit for each; it stops and
	// returns emit's error if emit fails.
	run func(ctx context.Context, emit func(streamRow) error) error
}

// errStop ends a stream at the export bound.
var errStop = errors.New("export bound reached")

// hashWriter counts and hashes what goes through it.
type hashWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (hw *hashWriter) Write(b []byte) (int, error) {
	n, err := hw.w.Write(b)
	hw.h.Write(b[:n])
	hw.n += int64(n)
	return n, err
}

// flushEvery is how often a stream pushes buffered rows to the client.
const flushEvery = 250 * time.Millisecond

// runStream writes c.stream to the client. The first audit row (entry) has
// already been written by the guard, with the filters and rows 0: "audit
// before data" holds. When the stream ends, a second audit row with the
// same actor, endpoint, purpose and filters records the outcome
// ("completed" or "interrupted"), the rows sent and, in its reason, the bytes
// and SHA-256 of the body; the same figures go to the client as HTTP
// trailers. An error before the first byte is answered with a JSON error;
// after it, the connection is cut so that the client cannot mistake a
// partial export for a whole one.
func (s *Server) runStream(w http.ResponseWriter, r *http.Request, c *call, entry audit.Entry) {
	st := c.stream
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Search.ExportTimeout)
	defer cancel()
	hw := &hashWriter{w: w, h: sha256.New()}
	bw := bufio.NewWriterSize(hw, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	rc := http.NewResponseController(w)
	var (
		started   bool
		rows      int
		truncated bool
		record    csvcell.Record
		lastFlush = time.Now()
	)
	// writeRecord ends the CSV record appended to record and writes it.
	writeRecord := func() error {
		record.End()
		_, err := bw.Write(record.B)
		record.Reset()
		return err
	}
	start := func() error {
		started = true
		h := w.Header()
		h.Set("Content-Type", st.format+"; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Trailer", trailerRows+", "+trailerTruncated+", "+trailerSHA256)
		w.WriteHeader(http.StatusOK)
		if st.format == mediaCSV {
			for _, f := range st.header {
				record.Field(f)
			}
			return writeRecord()
		}
		return nil
	}
	maxRows := s.cfg.Search.MaxExportRows
	err := st.run(ctx, func(row streamRow) error {
		if rows >= maxRows {
			truncated = true
			return errStop
		}
		if !started {
			if err := start(); err != nil {
				return err
			}
		}
		rows++
		if st.format == mediaCSV {
			row.(csvRow).appendCSV(&record)
			if err := writeRecord(); err != nil {
				return err
			}
		} else if err := enc.Encode(row); err != nil {
			return err
		}
		if rows%1024 == 0 && time.Since(lastFlush) > flushEvery {
			lastFlush = time.Now()
			if err := bw.Flush(); err != nil {
				return err
			}
			_ = rc.Flush()
		}
		return nil
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	if err == nil && !started {
		err = start()
	}
	if err == nil {
		err = bw.Flush()
	}
	sum := hex.EncodeToString(hw.h.Sum(nil))

	fin := entry
	fin.Time = s.now().UTC()
	fin.Rows = rows
	if err != nil {
		fin.Outcome = outcomeInterrupted
		fin.Reason = fmt.Sprintf("export interrupted after %d rows, %d bytes: %v", rows, hw.n, err)
		if !started {
			fin.Status = httpStatus(CodeUnavailable)
		}
	} else {
		fin.Outcome = outcomeCompleted
		fin.Reason = fmt.Sprintf("export completed: rows=%d bytes=%d sha256=%s truncated=%t", rows, hw.n, sum, truncated)
	}
	actx, acancel := context.WithTimeout(context.WithoutCancel(r.Context()), auditTimeout)
	if aerr := s.store.Audit(actx, fin); aerr != nil {
		s.metrics.auditFailures.WithLabelValues(entry.Endpoint).Inc()
		s.logger.Error("audit row of a finished export not written", "endpoint", entry.Endpoint, "err", aerr)
	}
	acancel()

	if err != nil {
		s.logger.Warn("export", "endpoint", entry.Endpoint, "rows", rows, "err", err)
		if !started {
			writeError(w, storeError(r.Context(), err).(*apiError))
			return
		}
		panic(http.ErrAbortHandler) // cut the connection: the export is incomplete
	}
	h := w.Header()
	h.Set(trailerRows, strconv.Itoa(rows))
	h.Set(trailerTruncated, strconv.FormatBool(truncated))
	h.Set(trailerSHA256, sum)
}

// accessHeader is the CSV header of access-log exports, in the order of
// accessCSV.appendCSV: the JSON row's fields, client_text and raw_request
// last because they came later (a test checks that both carry the same
// fields).
var accessHeader = []string{"time", "client_ip", "client_port", "peer_ip", "forwarded_for", "server_addr", "server_port", "site",
	"method", "path", "query", "protocol", "status", "bytes", "referer", "user_agent", "request_time_ms", "upstream", "request_id",
	"user", "tls_protocol", "topic", "partition", "offset", "client_text", "raw_request"}

// accessCSV is an access-log row of a CSV export: accessRow's fields, in
// accessHeader's order, appended from the stored hit (a test holds the
// two to the same values).
type accessCSV store.Hit

func (h *accessCSV) appendCSV(r *csvcell.Record) {
	csvTime(r, h.EventTime)
	csvAddr(r, h.ClientIP)
	csvPort(r, h.ClientPort)
	csvAddr(r, h.PeerIP)
	r.Field(h.ForwardedFor)
	csvAddr(r, h.ServerAddr)
	csvPort(r, h.ServerPort)
	r.Field(h.Site)
	r.Field(h.Method)
	r.Field(h.Path)
	r.Field(h.Query)
	r.Field(h.Protocol)
	csvInt(r, int64(h.Status))
	csvUint(r, h.BytesSent)
	r.Field(h.Referer)
	r.Field(h.UserAgent)
	csvInt(r, h.RequestTime.Milliseconds())
	r.Field(h.Upstream)
	r.Field(h.RequestID)
	r.Field(h.User)
	r.Field(h.TLSProtocol)
	r.Field(h.Source.Topic)
	csvInt(r, int64(h.Source.Partition))
	csvInt(r, h.Source.Offset)
	r.Field(h.ClientText)
	r.Field(h.RawRequest)
}

// csvTime appends t as the JSON rows show it: t.UTC().Format(timeFormat),
// which a test holds it to, written digit by digit for the years a
// DateTime64 holds (AppendFormat was a fifth of a CSV row's formatting).
func csvTime(r *csvcell.Record, t time.Time) {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 1000 || year > 9999 {
		r.Field(t.Format(timeFormat))
		return
	}
	hour, minute, sec := t.Clock()
	ms := t.Nanosecond() / int(time.Millisecond)
	var b [len("2006-01-02T15:04:05.000Z")]byte
	d := b[:]
	putDigits(d[0:4], year)
	d[4] = '-'
	putDigits(d[5:7], int(month))
	d[7] = '-'
	putDigits(d[8:10], day)
	d[10] = 'T'
	putDigits(d[11:13], hour)
	d[13] = ':'
	putDigits(d[14:16], minute)
	d[16] = ':'
	putDigits(d[17:19], sec)
	d[19] = '.'
	putDigits(d[20:23], ms)
	d[23] = 'Z'
	r.Plain(d)
}

// putDigits writes v's last len(d) decimal digits into d.
func putDigits(d []byte, v int) {
	for i := len(d) - 1; i >= 0; i-- {
		d[i] = byte('0' + v%10)
		v /= 10
	}
}

// csvAddr appends a as addrString writes it: "" when absent, IPv4 as a
// dotted quad even when stored mapped into IPv6.
func csvAddr(r *csvcell.Record, a netip.Addr) {
	if !a.IsValid() {
		r.Field("")
		return
	}
	var b [64]byte
	s := a.Unmap().AppendTo(b[:0])
	if a.Zone() != "" {
		r.Bytes(s) // a zone is free text: quoted and made safe as needed
		return
	}
	r.Plain(s)
}

// csvPort appends a port, "" when absent.
func csvPort(r *csvcell.Record, p uint16) {
	if p == 0 {
		r.Field("")
		return
	}
	csvUint(r, uint64(p))
}

// csvInt and csvUint append a number in place, with no string made.
func csvInt(r *csvcell.Record, v int64) {
	var b [20]byte
	if v < 0 {
		r.Bytes(strconv.AppendInt(b[:0], v, 10)) // made safe: "'-1"
		return
	}
	r.Plain(strconv.AppendUint(b[:0], uint64(v), 10))
}

func csvUint(r *csvcell.Record, v uint64) {
	var b [20]byte
	r.Plain(strconv.AppendUint(b[:0], v, 10))
}

// accessStream is the export of q.
func (s *Server) accessStream(q store.AccessQuery, format string) *stream {
	if q.Limit == 0 {
		q.Limit = s.cfg.Search.MaxExportRows + 1 // one more tells truncation
	}
	q.Timeout = s.cfg.Search.ExportTimeout
	return &stream{format: format, header: accessHeader, run: func(ctx context.Context, emit func(streamRow) error) error {
		var row accessRow
		return pipelined(ctx, func(ctx context.Context, fn func(*store.Hit) error) error {
			return s.store.EachAccess(ctx, q, fn)
		}, func(h *store.Hit) error {
			if format == mediaCSV {
				return emit((*accessCSV)(h))
			}
			row = newAccessRow(h)
			return emit(&row)
		})
	}}
}

// chunkRows is how many rows [pipelined] hands over at a time.
const chunkRows = 256

// pipelined calls fn for each row that each produces, in order, with each
// running in a goroutine of its own: reading the engine's answer (decoding
// and scanning its columns) and encoding the export (formatting, CSV or
// JSON, SHA-256) then run side by side instead of one after the other,
// which is most of an export's time. Rows cross in chunks of chunkRows
// copies, at most three chunks in flight, so memory stays bounded and a
// slow client still slows the query. An error from fn (errStop at the
// export bound, a client gone) cancels each and is returned as is; an
// error from each is returned after fn has seen every row before it, as
// when they ran in one goroutine. T's values must not share memory that
// each reuses: the store's rows hold only their own strings.
func pipelined[T any](ctx context.Context, each func(context.Context, func(*T) error) error, fn func(*T) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	const inFlight = 3
	full := make(chan []T, inFlight)
	free := make(chan []T, inFlight)
	for range inFlight {
		free <- make([]T, 0, chunkRows)
	}
	var eachErr error
	go func() {
		defer close(full)
		chunk := <-free
		send := func() error {
			// A select picks at random among ready cases: once fn has
			// failed, a free chunk (given back as the consumer drains)
			// must not win over the cancellation.
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			select {
			case full <- chunk:
				chunk = nil // fn's now: never sent twice
			case <-ctx.Done():
				return context.Cause(ctx)
			}
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			select {
			case chunk = <-free:
				chunk = chunk[:0]
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
		eachErr = each(ctx, func(row *T) error {
			chunk = append(chunk, *row)
			if len(chunk) < chunkRows {
				return nil
			}
			return send()
		})
		if len(chunk) > 0 {
			// the rows before the end, or before each's error
			select {
			case full <- chunk:
			case <-ctx.Done():
				if eachErr == nil {
					eachErr = context.Cause(ctx) // never a short export passed as whole
				}
			}
		}
	}()
	var fnErr error
	for chunk := range full {
		for i := 0; fnErr == nil && i < len(chunk); i++ {
			if fnErr = fn(&chunk[i]); fnErr != nil {
				cancel(fnErr)
			}
		}
		free <- chunk
	}
	// full is closed: the goroutine has returned and eachErr is set.
	if fnErr != nil {
		return fnErr
	}
	return eachErr
}
