package embedded

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	chproto "github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
)

const (
	// maxQuerySize bounds a statement read from the request body.
	maxQuerySize = 1 << 20
	// maxInsertSize bounds the data of one INSERT, which is read whole
	// before the statement runs (inline inserts: see chdb.query). A
	// connlog batch is a few MB.
	maxInsertSize = 512 << 20
	// helloQuery is the statement clickhouse-go sends when it connects.
	helloQuery = "SELECT displayName(), version(), revision(), timezone()"
	// pingQuery is the statement of clickhouse-go's Ping.
	pingQuery = "SELECT 1"
	// statementGrace is added to a statement's max_execution_time for its
	// context and write deadlines: the engine's own limit fires first.
	statementGrace = 2 * time.Second
)

// isHTTPParam reports whether a URL parameter of the ClickHouse HTTP interface
// is something other than a setting.
func isHTTPParam(name string) bool {
	switch name {
	case "query", "database", "default_format", "client_protocol_version",
		"query_id", "session_id", "session_timeout", "session_check",
		"user", "password", "quota_key", "wait_end_of_query",
		"buffer_size", "compress", "decompress", "enable_http_compression",
		"http_headers_progress_interval_ms", "send_progress_in_http_headers",
		"http_zlib_compression_level", "network_compression_method",
		"network_zstd_compression_level":
		return true
	}
	return false
}

// request is one parsed HTTP request.
type request struct {
	// limit is the statement's max_execution_time: what the request asked
	// for, at most the engine's MaxQueryTime.
	limit           time.Duration
	queryID         string
	database        string
	format          string // default_format, TabSeparated if unset
	protocolVersion uint64
	settings        [][2]string
	params          []param
}

// Handler returns the ClickHouse HTTP interface subset that clickhouse-go
// (Protocol: clickhouse.HTTP), curl and Grafana use: POST / with the
// statement in the body or the query parameter, GET /?query=, GET /ping.
// Requests queue for the engine's single statement slot; one whose client
// goes away while waiting is dropped.
func (e *Engine) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "Ok.\n") })
	mux.HandleFunc("/", e.serveHTTP)
	return mux
}

// Serve serves Handler on ln until ctx is done, then shuts down gracefully.
// It asks for no credential: give it an in-process Listener (connlog does),
// or in tests a loopback port; operators get ServeOperator.
func (e *Engine) Serve(ctx context.Context, ln net.Listener) error {
	return e.serve(ctx, ln, &http.Server{Handler: e.Handler(), ReadHeaderTimeout: 10 * time.Second})
}

func (e *Engine) serve(ctx context.Context, ln net.Listener, srv *http.Server) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve embedded ClickHouse: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down embedded ClickHouse server: %w", err)
	}
	return nil
}

func (e *Engine) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	values := r.URL.Query()
	if r.Method == http.MethodGet && values.Get("query") == "" {
		_, _ = io.WriteString(w, "Ok.\n")
		return
	}
	req, err := parseRequest(values, e.cfg.MaxQueryTime)
	if err != nil {
		writeError(w, e.version, http.StatusBadRequest, newEngineError("Code: 115. DB::Exception: "+err.Error()+". (UNKNOWN_SETTING)"))
		return
	}
	if req.queryID != "" {
		w.Header().Set("X-ClickHouse-Query-Id", req.queryID)
	}
	// Every statement has a deadline: its time limit plus a grace period,
	// counted from its arrival. Waiting for the statement slot stops there,
	// and so does writing its result to a client that does not read it, so
	// no client keeps the slot past it.
	deadline := time.Now().Add(req.limit + statementGrace)
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(deadline)
	_ = rc.SetWriteDeadline(deadline)
	// The connection outlives the request (keep-alive): the next request
	// on it must not inherit this one's deadlines.
	defer func() {
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Time{})
	}()
	if v := values.Get("compress") + values.Get("decompress"); strings.Contains(v, "1") {
		writeError(w, e.version, http.StatusBadRequest, newEngineError("Code: 48. DB::Exception: native compression (compress, decompress) is not supported by the embedded engine. (NOT_IMPLEMENTED)"))
		return
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/") {
		writeError(w, e.version, http.StatusBadRequest, newEngineError("Code: 48. DB::Exception: external tables are not supported by the embedded engine. (NOT_IMPLEMENTED)"))
		return
	}

	var body io.Reader = http.NoBody
	if r.Method == http.MethodPost {
		body = r.Body
		switch enc := r.Header.Get("Content-Encoding"); enc {
		case "", "identity":
		case "gzip":
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				writeError(w, e.version, http.StatusBadRequest, newEngineError("Code: 354. DB::Exception: read gzip request body: "+err.Error()+". (CANNOT_DECOMPRESS)"))
				return
			}
			body = zr
		default:
			writeError(w, e.version, http.StatusBadRequest, newEngineError("Code: 48. DB::Exception: Content-Encoding "+enc+" is not supported by the embedded engine. (NOT_IMPLEMENTED)"))
			return
		}
	}

	// The full statement is the query parameter followed by the body, except
	// that after INSERT ... FORMAT x the rest is data.
	sql := values.Get("query")
	st := scanStatement(sql)
	var data io.Reader
	switch {
	case st.keyword == "INSERT" && st.format != "":
		data = io.MultiReader(strings.NewReader(skipDataPrefix(sql[st.dataAt:])), body)
		sql = sql[:st.formatAt]
	default:
		br := bufio.NewReaderSize(body, 64<<10)
		head, err := io.ReadAll(io.LimitReader(br, maxQuerySize))
		if err != nil {
			writeError(w, e.version, http.StatusBadRequest, newEngineError("Code: 33. DB::Exception: read request body: "+err.Error()+". (CANNOT_READ_ALL_DATA)"))
			return
		}
		if sql != "" && len(head) > 0 {
			sql += "\n"
		}
		sql += string(head)
		st = scanStatement(sql)
		if st.keyword == "INSERT" && st.format != "" {
			data = io.MultiReader(strings.NewReader(skipDataPrefix(sql[st.dataAt:])), br)
			sql = sql[:st.formatAt]
		} else if len(head) == maxQuerySize {
			writeError(w, e.version, http.StatusRequestEntityTooLarge, newEngineError(fmt.Sprintf("Code: 202. DB::Exception: query is longer than %d bytes. (TOO_LARGE_STRING_SIZE)", maxQuerySize)))
			return
		}
	}

	guarded := sql
	if data == nil || !strings.EqualFold(st.format, "Values") {
		err = guardStatement(guarded)
	} else {
		// Values data is SQL expressions, evaluated by the engine.
		data, err = guardValues(guarded, data)
	}
	if err != nil {
		writeError(w, e.version, http.StatusForbidden, newEngineError(fmt.Sprintf("Code: %d. DB::Exception: %s. (ACCESS_DENIED)", codeAccessDenied, err)))
		e.logger.Warn("refused a statement that reaches the file system or the network", "kind", st.keyword, "query_id", req.queryID)
		return
	}

	start := time.Now()
	switch {
	case st.keyword == "SET" || st.keyword == "USE":
		// Without sessions these would leak into the next request.
		writeError(w, e.version, http.StatusBadRequest, newEngineError("Code: 48. DB::Exception: "+st.keyword+" statements are not supported by the embedded engine; pass settings and database as URL parameters. (NOT_IMPLEMENTED)"))
		return
	case data != nil:
		err = e.insert(ctx, req, strings.TrimSpace(sql), st.format, data)
		if err == nil {
			w.WriteHeader(http.StatusOK)
		}
	case strings.TrimSpace(sql) == helloQuery:
		err = e.hello(w, req)
	case strings.TrimSpace(sql) == pingQuery && req.format == "Native":
		err = e.ping(ctx, w, req, sql)
	default:
		err = e.query(ctx, w, req, sql, st.format)
	}
	if err != nil {
		var streamErr *midStreamError
		if errors.As(err, &streamErr) {
			writeMidStreamError(w, e.version, streamErr.err)
		}
		writeError(w, e.version, 0, err)
	}
	// Only the error code: ClickHouse messages echo query text and
	// parameter values, which contain IP addresses.
	code := 0
	if ee := (*EngineError)(nil); errors.As(err, &ee) {
		code = ee.Code
	}
	e.logger.Debug("statement", "query_id", req.queryID, "kind", st.keyword, "duration", time.Since(start), "failed", err != nil, "code", code)
}

// skipDataPrefix drops the blanks and the one line break that separate
// "FORMAT x" from inline data.
func skipDataPrefix(s string) string {
	s = strings.TrimLeft(s, " \t")
	if strings.HasPrefix(s, "\r\n") {
		return s[2:]
	}
	return strings.TrimPrefix(s, "\n")
}

func parseRequest(values url.Values, maxQueryTime time.Duration) (*request, error) {
	req := &request{
		queryID:  values.Get("query_id"),
		database: values.Get("database"),
		format:   values.Get("default_format"),
	}
	if req.format == "" {
		req.format = "TabSeparated"
	}
	if !isIdent(req.format) {
		return nil, fmt.Errorf("invalid format %q", req.format)
	}
	if req.database != "" && !isIdent(req.database) {
		return nil, fmt.Errorf("invalid database name %q", req.database)
	}
	if v := values.Get("client_protocol_version"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("invalid client_protocol_version %q", v)
		}
		req.protocolVersion = n
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := values.Get(k)
		switch {
		case strings.HasPrefix(k, "param_"):
			req.params = append(req.params, param{name: strings.TrimPrefix(k, "param_"), value: v})
		case isHTTPParam(k):
		case !isIdent(k):
			return nil, fmt.Errorf("invalid setting name %q", k)
		default:
			req.settings = append(req.settings, [2]string{k, v})
		}
	}
	// max_execution_time: the request's own if it is a limit below the
	// engine's, else the engine's (0, no limit, and anything above become
	// MaxQueryTime). The engine's profile refuses more anyway; clamping
	// here lets a long export run as far as the engine allows instead of
	// failing at once.
	capSecs := maxQuerySeconds(maxQueryTime)
	secs := capSecs
	if v, err := strconv.ParseFloat(values.Get("max_execution_time"), 64); err == nil && v >= 1 && v < float64(capSecs) {
		secs = int64(v)
	}
	kept := req.settings[:0]
	for _, s := range req.settings {
		if s[0] != "max_execution_time" {
			kept = append(kept, s)
		}
	}
	req.settings = append(kept, [2]string{"max_execution_time", strconv.FormatInt(secs, 10)})
	req.limit = time.Duration(secs) * time.Second
	return req, nil
}

// begin takes the statement slot and applies the request's settings and
// database to the chDB session. end undoes both and frees the slot; it must be
// called even when begin fails.
func (e *Engine) begin(ctx context.Context, req *request) (end func(), err error) {
	if err := e.acquire(ctx); err != nil {
		return func() {}, err
	}
	return e.setUp(ctx, req)
}

// setUp is begin for a caller that already holds the slot, taken with
// acquire(ctx).
func (e *Engine) setUp(ctx context.Context, req *request) (end func(), err error) {
	e.running.Store(time.Now().Add(req.limit + statementGrace).UnixNano())
	var set, reset []string
	for _, s := range req.settings {
		set = append(set, s[0]+" = "+settingValue(s[1]))
		reset = append(reset, s[0]+" = DEFAULT")
	}
	useDB := req.database != "" && req.database != "default"
	end = func() {
		if len(reset) > 0 && e.db.query("SET "+strings.Join(reset, ", "), "TSV", nil, nil) != nil {
			// One name is unknown (the request failed on it): reset the
			// others one by one so none of them leaks.
			for _, r := range reset {
				var ee *EngineError
				if err := e.db.query("SET "+r, "TSV", nil, nil); err != nil && (!errors.As(err, &ee) || ee.Code != 115) {
					e.logger.Error("reset a setting of the embedded ClickHouse session", "err", err)
				}
			}
		}
		if useDB {
			if err := e.db.query("USE default", "TSV", nil, nil); err != nil {
				e.logger.Error("reset database of the embedded ClickHouse session", "err", err)
			}
		}
		e.running.Store(0)
		e.releaseFor(ctx)
	}
	if len(set) > 0 {
		if err := e.db.query("SET "+strings.Join(set, ", "), "TSV", nil, nil); err != nil {
			return end, err
		}
	}
	if useDB {
		if err := e.db.query("USE `"+req.database+"`", "TSV", nil, nil); err != nil {
			return end, err
		}
	}
	return end, nil
}

// insert runs the INSERT statement sql (without its FORMAT clause) with data
// in format. The data is written whole to a file (insertFile: in memory on
// Linux, else in the data directory) before the statement slot is taken,
// so a slow client never holds the engine, and the statement reads it with
// FROM INFILE. Why not chDB's
// streaming insert API (chdb_stream_insert_*): one of the engine's own
// threads logs "<Fatal> ThreadStatus: current_thread contains invalid
// address" at every such insert, whichever thread calls it. Why not the
// data inline after FORMAT: chDB ends inline data at the first blank line,
// which binary formats (Native) contain anywhere.
func (e *Engine) insert(ctx context.Context, req *request, sql, format string, data io.Reader) error {
	if f := e.fault.Load(); f != nil {
		if err := (*f)(sql); err != nil {
			return &faultError{err: err}
		}
	}
	// A file per insert: a client that sends its data slowly delays only
	// itself (and its read deadline ends it).
	f, path, remove, err := e.insertFile()
	if err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	defer remove()
	// Open until the statement has run: a memfd lives as long as a
	// descriptor of it.
	defer func() { _ = f.Close() }()
	n, err := io.Copy(f, io.LimitReader(data, maxInsertSize+1))
	if err != nil {
		return fmt.Errorf("read insert body: %w", err)
	}
	if n > maxInsertSize {
		return newEngineError(fmt.Sprintf("Code: 202. DB::Exception: insert data is longer than %d bytes; split it. (TOO_LARGE_STRING_SIZE)", maxInsertSize))
	}
	end, err := e.begin(ctx, req)
	defer end()
	if err != nil {
		return err
	}
	stmt := sql + " FROM INFILE " + quoteString(path) + " COMPRESSION 'none' FORMAT " + format
	if err := e.db.query(stmt, "TSV", req.params, nil); err != nil {
		return err
	}
	e.logger.Debug("insert", "query_id", req.queryID, "bytes", n)
	return nil
}

// dirInsertFile returns a new file of the data directory to hold an
// INSERT's data, its path, and what removes it. A crash leaves it behind;
// Open removes such files.
func (e *Engine) dirInsertFile() (f *os.File, path string, remove func(), err error) {
	f, err = os.CreateTemp(e.dir, insertFilePattern)
	if err != nil {
		return nil, "", nil, err
	}
	path = f.Name()
	return f, path, func() { _ = os.Remove(path) }, nil
}

// midStreamError is a failure after the response status was sent.
type midStreamError struct{ err error }

func (m *midStreamError) Error() string { return m.err.Error() }
func (m *midStreamError) Unwrap() error { return m.err }

// faultError is an error injected with SetInsertFault.
type faultError struct{ err error }

func (f *faultError) Error() string { return "injected fault: " + f.err.Error() }
func (f *faultError) Unwrap() error { return f.err }

// query runs sql and streams its output to w chunk by chunk. format is the
// statement's own FORMAT clause, if any.
func (e *Engine) query(ctx context.Context, w http.ResponseWriter, req *request, sql, format string) error {
	if err := e.acquire(ctx); err != nil {
		return err
	}
	return e.queryHeld(ctx, w, req, sql, format)
}

// queryHeld is query for a caller that holds the slot; it releases it.
func (e *Engine) queryHeld(ctx context.Context, w http.ResponseWriter, req *request, sql, format string) error {
	end, err := e.setUp(ctx, req)
	defer end()
	if err != nil {
		return err
	}
	if format == "" {
		format = req.format
	}
	w.Header().Set("X-ClickHouse-Format", format)
	started := false
	write := func(b []byte) error {
		if !started {
			started = true
			w.Header().Set("Content-Type", contentType(format))
			w.WriteHeader(http.StatusOK)
		}
		_, err := w.Write(b)
		return err
	}
	s, err := e.db.streamQuery(sql, req.format, req.params)
	var ee *EngineError
	if errors.As(err, &ee) && ee.Code == 36 && strings.Contains(ee.Message, "Streaming query is not supported") {
		// DDL, INSERT ... SELECT and the like: small output, run at once.
		if err := e.db.query(sql, req.format, req.params, write); err != nil {
			return err
		}
		if !started {
			w.WriteHeader(http.StatusOK)
		}
		return nil
	}
	if err != nil {
		return err
	}
	defer s.close()
	for {
		if err := ctx.Err(); err != nil {
			s.cancel()
			return nil // the client is gone; nobody reads an error
		}
		more, err := s.next(write)
		if err != nil {
			if started {
				var ee *EngineError
				if errors.As(err, &ee) {
					return &midStreamError{err: err}
				}
				s.cancel()
				return nil // write error: the client is gone
			}
			return err
		}
		if !more {
			break
		}
	}
	if !started {
		w.Header().Set("Content-Type", contentType(format))
		w.WriteHeader(http.StatusOK)
	}
	return nil
}

// hello answers clickhouse-go's connection query itself, from the server
// info read at Open, without the statement slot: a new connection does not
// wait behind a running statement. The driver decodes this one response
// with its own protocol revision and every later one with the revision
// reported here. chDB writes Native blocks in the revision 0 layout, so the
// answer claims revision 0, encoded in the driver's revision.
func (e *Engine) hello(w http.ResponseWriter, req *request) error {
	return writeBlock(w, req.protocolVersion, []blockColumn{
		{"displayName()", "String", e.info.displayName},
		{"version()", "String", e.info.version},
		{"revision()", "UInt32", uint32(0)},
		{"timezone()", "String", e.info.timezone},
	})
}

// ping answers clickhouse-go's Ping (SELECT 1 in Native). With the slot free it runs
// on the engine. While a statement holds the slot within its time limit the
// engine is busy, not stuck, and the answer comes without waiting, so
// readiness does not flap during a long search; a statement past its
// deadline makes ping wait and fail, as a stuck engine should.
func (e *Engine) ping(ctx context.Context, w http.ResponseWriter, req *request, sql string) error {
	for {
		if until := e.running.Load(); until != 0 {
			if time.Now().UnixNano() < until {
				// Revision 0, as chDB writes every block but hello's.
				return writeBlock(w, 0, []blockColumn{{"1", "UInt8", uint8(1)}})
			}
			return e.query(ctx, w, req, sql, "")
		}
		select {
		case e.slot <- struct{}{}:
			select {
			case <-e.closed:
				<-e.slot
				return ErrClosed
			default:
			}
			return e.queryHeld(ctx, w, req, sql, "")
		case <-e.closed:
			return ErrClosed
		case <-ctx.Done():
			return fmt.Errorf("wait for embedded ClickHouse: %w", context.Cause(ctx))
		case <-time.After(20 * time.Millisecond):
			// the slot changed hands between the two checks: look again
		}
	}
}

type blockColumn struct {
	name, typ string
	value     any
}

// writeBlock writes a one-row Native block in protocol revision rev.
func writeBlock(w http.ResponseWriter, rev uint64, cols []blockColumn) error {
	block := &proto.Block{ServerContext: &column.ServerContext{}}
	for _, c := range cols {
		if err := block.AddColumn(c.name, column.Type(c.typ)); err != nil {
			return fmt.Errorf("build block: %w", err)
		}
		if err := block.Columns[len(block.Columns)-1].AppendRow(c.value); err != nil {
			return fmt.Errorf("build block: %w", err)
		}
	}
	var buf chproto.Buffer
	if err := block.Encode(&buf, rev); err != nil {
		return fmt.Errorf("encode block: %w", err)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-ClickHouse-Format", "Native")
	_, err := w.Write(buf.Buf)
	return err
}

// errorStatus maps a ClickHouse error code to the status ClickHouse uses.
func errorStatus(code int) int {
	switch code {
	case 62, 27, 36, 115, 457, 456, 26: // syntax, parse, bad arguments, unknown setting, bad parameter
		return http.StatusBadRequest
	case 60, 81: // unknown table, unknown database
		return http.StatusNotFound
	case 159, 160: // timeout exceeded, too slow
		return http.StatusGatewayTimeout
	default:
		return http.StatusInternalServerError
	}
}

// writeError sends err as a ClickHouse exception: the X-ClickHouse-Exception-Code
// header and a "Code: N. DB::Exception: ..." body. status 0 picks it from the
// code. It does nothing after a mid-stream error (already reported).
func writeError(w http.ResponseWriter, version string, status int, err error) {
	var (
		ms *midStreamError
		ee *EngineError
		fe *faultError
	)
	switch {
	case errors.As(err, &ms):
		return
	case errors.As(err, &fe):
		ee = newEngineError("Code: 210. DB::NetException: " + fe.Error() + " (NETWORK_ERROR)")
		status = http.StatusServiceUnavailable
	case errors.As(err, &ee):
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		ee = newEngineError("Code: 394. DB::Exception: " + err.Error() + " (QUERY_WAS_CANCELLED)")
	default:
		ee = newEngineError("Code: 1001. DB::Exception: " + err.Error() + " (STD_EXCEPTION)")
	}
	if status == 0 {
		status = errorStatus(ee.Code)
	}
	h := w.Header()
	h.Del("X-ClickHouse-Format")
	h.Set("Content-Type", "text/plain; charset=UTF-8")
	h.Set("X-ClickHouse-Exception-Code", strconv.Itoa(ee.Code))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, exceptionText(ee.Message, version)+"\n")
}

// writeMidStreamError appends the exception block ClickHouse writes when a
// query fails after the 200 status went out (clickhouse-go detects it by the
// __exception__ marker), then aborts the connection so that clients without
// that convention (curl) see a broken transfer, never a silently truncated
// result.
func writeMidStreamError(w http.ResponseWriter, version string, err error) {
	_, _ = io.WriteString(w, "\r\n__exception__\r\n"+exceptionText(err.Error(), version)+"\r\n")
	_ = http.NewResponseController(w).Flush()
	panic(http.ErrAbortHandler)
}

func exceptionText(msg, version string) string {
	if strings.Contains(msg, "(version ") {
		return msg
	}
	return msg + " (version " + version + ")"
}
