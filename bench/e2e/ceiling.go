package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// ceilingRun is one way of inserting the stored rows again.
type ceilingRun struct {
	Name     string
	Inserts  int // INSERT statements, both tables
	Rows     int64
	ConnRows int64
	Wall     time.Duration // every insert of both tables, back to back
	CPU      cpuSplit      // connlog serve during Wall
	Parts    []partsMade
	Err      string
}

func (c ceilingRun) linesPerSec() float64 { return float64(c.Rows) / c.Wall.Seconds() }

// ceilingResult is the engine insert ceiling: what the embedded engine
// costs to store the rows connlog stored, already encoded.
type ceilingResult struct {
	Rows, ConnRows     int64
	Bytes, ConnBytes   int64 // Native data
	BatchRows, Batches int
	Runs               []ceilingRun
	Err                string
}

// maxCeilingInsert is the embedded adapter's bound on one insert's data
// (store/embedded maxInsertSize): a single insert of a larger table is
// skipped, not failed.
const maxCeilingInsert = 512 << 20

// ceilingTables are the tables connlog writes per batch, whose inserts the
// ceiling repeats.
var ceilingTables = [...]struct{ src, dst string }{
	{"connlog_access.access_log", "bench_ceiling.access_log"},
	{"connlog_connections.connection_records", "bench_ceiling.connection_records"},
}

// benchCeiling reads access_log and connection_records back from the
// instance as Native, in the order connlog received them (Kafka offset,
// then partition), cut into batches of about batchRows access rows (a
// range of offsets in every partition), and writes them to files under
// work. Then, in fresh tables created AS the originals in a scratch
// database, it times the INSERT ... FORMAT Native of every batch, access
// log then connection records per batch as connlog writes them, and again
// with one insert per table. Inserts go through the same adapter as
// connlog's (the data lands in a memfd, then FROM INFILE) and carry an
// insert_deduplication_token as connlog's do.
func benchCeiling(ctx context.Context, in *instance, work string, batchRows int) ceilingResult {
	var r ceilingResult
	r.BatchRows = batchRows
	dir := filepath.Join(work, "ceiling")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		r.Err = err.Error()
		return r
	}
	defer func() { _ = os.RemoveAll(dir) }()
	s, err := in.sql(ctx, "SELECT max(kafka_partition) + 1, max(kafka_offset) + 1, count() FROM connlog_access.access_log FORMAT TSV", nil)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	var parts, offsets int64
	if _, err := fmt.Sscanf(s, "%d\t%d\t%d", &parts, &offsets, &r.Rows); err != nil || parts <= 0 {
		r.Err = fmt.Sprintf("access_log: partitions and offsets %q: %v", s, err)
		return r
	}
	step := max(int64(batchRows)/parts, 1)
	files := [len(ceilingTables)][]string{}
	for lo := int64(0); lo < offsets; lo += step {
		for t, tb := range ceilingTables {
			name := filepath.Join(dir, fmt.Sprintf("%d-%06d.native", t, lo/step))
			n, err := downloadNative(ctx, in, tb.src, lo, lo+step, name)
			if err != nil {
				r.Err = err.Error()
				return r
			}
			if t == 0 {
				r.Bytes += n
			} else {
				r.ConnBytes += n
			}
			files[t] = append(files[t], name)
		}
		r.Batches++
	}
	if r.ConnRows, err = in.count(ctx, "SELECT count() FROM connlog_connections.connection_records"); err != nil {
		r.Err = err.Error()
		return r
	}
	defer in.sql(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS bench_ceiling", nil) //nolint:errcheck // best-effort cleanup
	batched := func(insert func(t, k int, body io.Reader) error) error {
		for k := range files[0] {
			for t := range ceilingTables {
				if err := insertFile(files[t][k], func(f io.Reader) error { return insert(t, k, f) }); err != nil {
					return err
				}
			}
		}
		return nil
	}
	whole := func(insert func(t, k int, body io.Reader) error) error {
		for t := range ceilingTables {
			var rs []io.Reader
			for _, name := range files[t] {
				f, err := os.Open(name)
				if err != nil {
					return err
				}
				defer func() { _ = f.Close() }()
				rs = append(rs, f)
			}
			if err := insert(t, 0, io.MultiReader(rs...)); err != nil {
				return err
			}
		}
		return nil
	}
	r.Runs = append(r.Runs, ceilingInsert(ctx, in, fmt.Sprintf("%d inserts per table (batches of ~%d access rows)", r.Batches, batchRows), r.Batches*len(ceilingTables), batched))
	if r.Bytes > maxCeilingInsert || r.ConnBytes > maxCeilingInsert {
		r.Runs = append(r.Runs, ceilingRun{Name: "one insert per table", Err: fmt.Sprintf("skipped: %.0f MB of Native access-log data, over the embedded adapter's %d MB per insert", float64(r.Bytes)/1e6, maxCeilingInsert>>20)})
	} else {
		r.Runs = append(r.Runs, ceilingInsert(ctx, in, "one insert per table", len(ceilingTables), whole))
	}
	return r
}

// downloadNative writes the rows of table with kafka_offset in [lo, hi) as
// Native to file, in offset then partition order, and returns its size.
func downloadNative(ctx context.Context, in *instance, table string, lo, hi int64, file string) (int64, error) {
	f, err := os.Create(file)
	if err != nil {
		return 0, err
	}
	err = in.sqlTo(ctx, "SELECT * FROM "+table+" WHERE kafka_offset >= {lo:Int64} AND kafka_offset < {hi:Int64} ORDER BY kafka_offset, kafka_partition FORMAT Native",
		url.Values{"param_lo": {strconv.FormatInt(lo, 10)}, "param_hi": {strconv.FormatInt(hi, 10)}}, nil, f)
	st, serr := f.Stat()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("read back %s: %w", table, err)
	}
	if serr != nil {
		return 0, serr
	}
	return st.Size(), nil
}

func insertFile(name string, insert func(io.Reader) error) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	return insert(f)
}

// ceilingInsert recreates the scratch tables, waits for the engine to be
// idle, and times send, which calls insert for every statement.
func ceilingInsert(ctx context.Context, in *instance, name string, inserts int, send func(insert func(t, k int, body io.Reader) error) error) ceilingRun {
	c := ceilingRun{Name: name, Inserts: inserts}
	stmts := []string{"DROP DATABASE IF EXISTS bench_ceiling", "CREATE DATABASE bench_ceiling"}
	for _, tb := range ceilingTables {
		stmts = append(stmts, "CREATE TABLE "+tb.dst+" AS "+tb.src)
	}
	for _, q := range stmts {
		if _, err := in.sql(ctx, q, nil); err != nil {
			c.Err = err.Error()
			return c
		}
	}
	if _, err := in.waitMerges(ctx, 2*time.Minute); err != nil {
		c.Err = err.Error()
		return c
	}
	pid := in.cmd.Process.Pid
	gt, _ := newGoThreads(pid)
	t0, _ := threadStats(pid)
	cpu0, _ := in.cpu()
	start := time.Now()
	err := send(func(t, k int, body io.Reader) error {
		gt.sample()
		_, err := in.sqlBody(ctx, "INSERT INTO "+ceilingTables[t].dst+" FORMAT Native",
			url.Values{"insert_deduplication_token": {fmt.Sprintf("bench-ceiling-%d-%d", t, k)}}, body)
		return err
	})
	c.Wall = time.Since(start)
	cpu1, _ := in.cpu()
	t1, _ := threadStats(pid)
	gt.sample()
	c.CPU = splitCPU(t0, t1, cpu1-cpu0, gt.isGo)
	if err != nil {
		c.Err = err.Error()
		return c
	}
	if c.Rows, err = in.count(ctx, "SELECT count() FROM "+ceilingTables[0].dst); err != nil {
		c.Err = err.Error()
		return c
	}
	if c.ConnRows, err = in.count(ctx, "SELECT count() FROM "+ceilingTables[1].dst); err != nil {
		c.Err = err.Error()
		return c
	}
	if c.Parts, err = in.partsMade(ctx, "bench_ceiling"); err != nil {
		c.Err = err.Error()
	}
	return c
}
