package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// instance is one running `connlog serve` (the real binary, embedded
// ClickHouse) with its own data directory and loopback ports.
type instance struct {
	cmd     *exec.Cmd
	dataDir string
	api     string
	ch      string
	stderr  *os.File
	started time.Time
	ready   time.Time
	exited  chan struct{}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("pick a free port: %w", err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String(), nil
}

// startServe starts bin serve on a fresh data directory under work and
// waits until /readyz answers 200. env adds or overrides settings.
func startServe(ctx context.Context, bin, work, name string, env ...string) (*instance, error) {
	in := &instance{dataDir: filepath.Join(work, name), exited: make(chan struct{})}
	if err := os.RemoveAll(in.dataDir); err != nil {
		return nil, fmt.Errorf("clean data dir: %w", err)
	}
	if err := os.MkdirAll(in.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	var err error
	if in.api, err = freeAddr(); err != nil {
		return nil, err
	}
	if in.ch, err = freeAddr(); err != nil {
		return nil, err
	}
	kafka, err := freeAddr()
	if err != nil {
		return nil, err
	}
	if in.stderr, err = os.Create(filepath.Join(work, name+".stderr.log")); err != nil {
		return nil, fmt.Errorf("serve log: %w", err)
	}
	in.cmd = exec.Command(bin, "serve")
	in.cmd.Env = append(os.Environ(),
		"CONNLOG_DATA_DIR="+in.dataDir,
		"CONNLOG_LOG_LEVEL=warn",
		"CONNLOG_API_LISTEN="+in.api,
		// The operator listener seeds and inspects the engine directly; the
		// seeding statements run for up to two hours.
		"CONNLOG_EMBEDDED_CLICKHOUSE_LISTEN="+in.ch,
		"CONNLOG_EMBEDDED_CLICKHOUSE_MAX_QUERY_TIME=2h",
		"CONNLOG_EMBEDDED_KAFKA_ADDR="+kafka,
		"CONNLOG_SHUTDOWN_TIMEOUT=60s",
	)
	in.cmd.Env = append(in.cmd.Env, env...)
	in.cmd.Stderr = in.stderr
	in.started = time.Now()
	if err := in.cmd.Start(); err != nil {
		_ = in.stderr.Close()
		return nil, fmt.Errorf("start connlog serve: %w", err)
	}
	go func() { in.cmd.Wait(); close(in.exited) }() //nolint:errcheck // exit status read from ProcessState
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-in.exited:
			return nil, fmt.Errorf("connlog serve exited during start-up (%v); see %s", in.cmd.ProcessState, in.stderr.Name())
		case <-ctx.Done():
			_ = in.stop()
			return nil, ctx.Err()
		default:
		}
		resp, err := http.Get("http://" + in.api + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				in.ready = time.Now()
				return in, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = in.stop()
	return nil, fmt.Errorf("connlog serve not ready after 3 minutes; see %s", in.stderr.Name())
}

// stop sends SIGTERM and waits for a clean exit (SIGKILL after a minute).
func (in *instance) stop() error {
	defer func() { _ = in.stderr.Close() }()
	select {
	case <-in.exited:
		return nil
	default:
	}
	_ = in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.exited:
	case <-time.After(time.Minute):
		_ = in.cmd.Process.Kill()
		<-in.exited
		return errors.New("connlog serve did not stop within a minute of SIGTERM; killed")
	}
	if !in.cmd.ProcessState.Success() {
		return fmt.Errorf("connlog serve exited with %v; see %s", in.cmd.ProcessState, in.stderr.Name())
	}
	return nil
}

// cpu returns the user+system CPU time the process has used so far.
func (in *instance) cpu() (time.Duration, error) {
	return procCPU(in.cmd.Process.Pid)
}

// procCPU reads utime+stime of a process from /proc (Linux).
func procCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read process CPU time: %w", err)
	}
	s, err := parseStat(raw)
	return s.CPU, err
}

// selfCPU returns the CPU time of this process (the bench harness and the
// Kafka-protocol broker it hosts).
// threadCPU is the CPU time of the calling OS thread (Linux's
// RUSAGE_THREAD, which package syscall does not name): with the goroutine
// locked to its thread, what a loop cost whatever else the machine runs.
func threadCPU() time.Duration {
	const rusageThread = 1
	var ru syscall.Rusage
	_ = syscall.Getrusage(rusageThread, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sql runs a statement on the embedded engine's ClickHouse HTTP interface
// with optional settings, and returns its output trimmed.
func (in *instance) sql(ctx context.Context, query string, settings url.Values) (string, error) {
	return in.sqlBody(ctx, query, settings, nil)
}

// sqlBody is sql with a request body (the data of an INSERT ... FORMAT).
func (in *instance) sqlBody(ctx context.Context, query string, settings url.Values, body io.Reader) (string, error) {
	var out bytes.Buffer
	if err := in.sqlTo(ctx, query, settings, body, &out); err != nil {
		return "", err
	}
	return strings.TrimSpace(out.String()), nil
}

// sqlTo is sqlBody writing the answer to w as it comes (a large SELECT ...
// FORMAT Native). On an error status nothing is written to w.
func (in *instance) sqlTo(ctx context.Context, query string, settings url.Values, body io.Reader, w io.Writer) error {
	v := url.Values{}
	for k, s := range settings {
		v[k] = s
	}
	if body == nil {
		body = strings.NewReader(query)
	} else {
		v.Set("query", query)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+in.ch+"/?"+v.Encode(), body)
	if err != nil {
		return err
	}
	pw, err := os.ReadFile(filepath.Join(in.dataDir, "clickhouse.password"))
	if err != nil {
		return fmt.Errorf("clickhouse: %w", err)
	}
	req.SetBasicAuth("default", strings.TrimSpace(string(pw)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("clickhouse: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		out, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		q := query
		if len(q) > 200 {
			q = q[:200] + "…"
		}
		return fmt.Errorf("clickhouse: %s: %d %s", q, resp.StatusCode, bytes.TrimSpace(out))
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("clickhouse: read answer: %w", err)
	}
	return nil
}

// count runs a query returning one integer.
func (in *instance) count(ctx context.Context, query string) (int64, error) {
	s, err := in.sql(ctx, query, nil)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("clickhouse: %s: not a number: %q", query, s)
	}
	return n, nil
}

// waitMerges waits (up to limit) until the engine runs no merge or mutation.
func (in *instance) waitMerges(ctx context.Context, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	for time.Since(start) < limit {
		n, err := in.count(ctx, "SELECT (SELECT count() FROM system.merges) + (SELECT count() FROM system.mutations WHERE NOT is_done)")
		if err != nil {
			return time.Since(start), err
		}
		if n == 0 {
			return time.Since(start), nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return time.Since(start), nil
}

// token is the bootstrap admin token of the instance's data directory.
func (in *instance) token() (string, error) {
	raw, err := os.ReadFile(filepath.Join(in.dataDir, "admin.token"))
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	return strings.TrimSpace(string(raw)), nil
}

// diskUsage is rows and bytes of the active parts of a table.
type diskUsage struct {
	Table        string
	Rows         int64
	Bytes        int64
	Uncompressed int64
	Parts        int64
}

func (d diskUsage) bytesPerRow() float64 {
	if d.Rows == 0 {
		return 0
	}
	return float64(d.Bytes) / float64(d.Rows)
}

// parts reads system.parts for the given database.table names.
func (in *instance) parts(ctx context.Context, tables ...string) ([]diskUsage, error) {
	var out []diskUsage
	for _, t := range tables {
		db, tbl, _ := strings.Cut(t, ".")
		s, err := in.sql(ctx, "SELECT sum(rows), sum(bytes_on_disk), sum(data_uncompressed_bytes), count() FROM system.parts WHERE active AND database = {db:String} AND table = {t:String} FORMAT TSV",
			url.Values{"param_db": {db}, "param_t": {tbl}})
		if err != nil {
			return nil, err
		}
		d := diskUsage{Table: t}
		if _, err := fmt.Sscanf(s, "%d\t%d\t%d\t%d", &d.Rows, &d.Bytes, &d.Uncompressed, &d.Parts); err != nil {
			return nil, fmt.Errorf("system.parts for %s: %q: %w", t, s, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// partsMade is how many parts a table got since it was created. MergeTree
// numbers every part an insert writes with the table's next block number
// (merges reuse their sources' numbers), so the largest block number of any
// part is the count of inserted parts even after merged-away parts were
// removed; merged parts are the parts of a level above 0 still listed
// (active, or inactive and not yet cleaned up).
type partsMade struct {
	Table    string
	Inserted int64
	Merged   int64
	Active   int64
}

// partsMade reads system.parts (active and inactive) for every table of
// the given databases that has a part.
func (in *instance) partsMade(ctx context.Context, dbs ...string) ([]partsMade, error) {
	s, err := in.sql(ctx, "SELECT database || '.' || table, max(max_block_number), countIf(level > 0), countIf(active) FROM system.parts WHERE has({dbs:Array(String)}, database) GROUP BY database, table ORDER BY database, table FORMAT TSV",
		url.Values{"param_dbs": {"['" + strings.Join(dbs, "','") + "']"}})
	if err != nil {
		return nil, err
	}
	var out []partsMade
	for l := range strings.SplitSeq(s, "\n") {
		if l == "" {
			continue
		}
		var p partsMade
		if _, err := fmt.Sscanf(l, "%s\t%d\t%d\t%d", &p.Table, &p.Inserted, &p.Merged, &p.Active); err != nil {
			return nil, fmt.Errorf("system.parts: %q: %w", l, err)
		}
		out = append(out, p)
	}
	return out, nil
}
