package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/connlog/connlog/ingest"
)

// Targets of issues 3 and 6.
const (
	targetParseLinesPerSec = 3_000_000
	targetE2EOverPeer      = 1.5
	targetE2EOverCeiling   = 0.8
	targetCPUPerLine       = 2 * time.Microsecond
	targetPartsPerMillion  = 4
	targetRSSGrowth        = 0.15
	targetStatsCost        = 0.15
	targetOneIPP99         = 50 * time.Millisecond
	targetNet24P99         = 500 * time.Millisecond
	targetExportRowsPerSec = 200_000
)

// report prints the results as Markdown.
type report struct {
	w      io.Writer
	parses []parseResult
	peers  []peerResult
	ceil   []ceilingResult
	floors []floorRun
	apiRes *apiResult
}

func (r *report) printf(format string, args ...any) { fmt.Fprintf(r.w, format, args...) }

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func (r *report) header() {
	model := "unknown"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		_ = f.Close()
	}
	var si syscall.Sysinfo_t
	_ = syscall.Sysinfo(&si)
	load := "?"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	r.printf("# connlog benchmark %s\n\nmachine: %d CPUs (%s), %.1f GiB RAM, %s %s/%s, load average at start %s\n",
		time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), model, float64(si.Totalram)*float64(si.Unit)/(1<<30),
		runtime.Version(), runtime.GOOS, runtime.GOARCH, load)
}

func (r *report) parse(res []parseResult) {
	r.parses = res
	r.printf("\n## Parse (in process, one goroutine on one locked thread = one core, fastest of the rounds)\n\n")
	r.printf("| input shape | format | lines/s per core | ns/line | lines per CPU-second | allocs/line | accepted |\n|---|---|---:|---:|---:|---:|---:|\n")
	for _, p := range res {
		if p.Err != "" {
			r.printf("| %s | %s | error: %s | | | | |\n", p.Shape, p.Format, p.Err)
			continue
		}
		r.printf("| %s | %s | %.0f | %.0f | %.0f | %.3f | %d of %d |\n", p.Shape, p.Format, p.linesPerSec(), float64(p.Best.Nanoseconds())/float64(p.Lines), p.linesPerCPUSec(), p.AllocsPerLine, p.Accepted, p.Lines)
	}
	r.printf("\nEach run is `logline.New(logline.DefaultConfig().WithFormat(format, \"\")).Parse` (the pipeline's parser: envelope and syslog unwrapping, trusted proxies, redaction, classification) over every line. Lines per CPU-second divide by the locked thread's own CPU time (least of the rounds), which the other work of a shared machine does not inflate as it does wall time. allocs/line counts rejected lines too (a rejection builds an error). The shapes after the first are the distinct source lines re-encoded (14,487 lines, cycled to the same count).\n")
}

func (r *report) peer(p peerResult) {
	r.peers = append(r.peers, p)
	r.printf("\n## Peer: %s\n\n", p.Name)
	if p.Err != "" {
		r.printf("error: %s\n", p.Err)
		return
	}
	r.printf("%d lines in %s wall, %s CPU: %.0f lines/s, %.0f lines per CPU-second", p.Lines, p.Wall.Round(time.Millisecond), p.CPU.Round(time.Millisecond), p.linesPerSec(), p.linesPerCPUSec())
	if p.DiskPR > 0 {
		r.printf(", %.1f bytes per row on disk", p.DiskPR)
	}
	r.printf("\n%s (rows/requests counted: %d)\n", p.Extra, p.Rows)
}

func (r *report) e2e(res []e2eResult) {
	r.printf("\n## End to end: Kafka protocol → connlog serve (real binary) → embedded ClickHouse\n\n")
	r.printf("| run | input | lines/s | lines per connlog CPU-second | µs CPU/line: Go + engine | wall | connlog CPU | broker CPU | peak RSS | access rows | connection rows | quarantined | start-up |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, e := range res {
		if e.Err != "" {
			r.printf("| %s | %s | error: %s | | | | | | | | | | |\n", e.Mode, e.Shape, e.Err)
			continue
		}
		r.printf("| %s | %s | %.0f | %.0f | %.2f + %.2f | %s | %s | %s | %.0f MiB | %d | %d | %d | %s |\n", e.Mode, e.Shape, e.linesPerSec(), e.linesPerCPUSec(),
			e.usPerLine(e.Split.Go), e.usPerLine(e.Split.Engine()),
			e.Wall.Round(time.Millisecond), e.CPU.Round(time.Millisecond), e.BrokerCPU.Round(time.Millisecond), float64(e.PeakRSS)/(1<<20), e.Stored, e.Conn, e.Quarantine, e.Startup.Round(time.Millisecond))
	}
	r.printf("\nGo + engine: connlog serve's CPU during the run per line, split by thread (/proc/<pid>/task/*/stat). A Go thread is one seen, in samples every 100 ms, blocked inside the binary's own text (the Go runtime's futex and epoll calls; chDB's threads wait in libc); a statement runs on the Go thread that called chDB, so the engine's work on that thread counts as Go. Every other thread, and threads that exited, count as engine. Thread names do not tell: chDB leaves its calling Go threads named \"Unknown\" and some of its own threads keep the binary's name. Peak RSS: VmHWM of connlog serve at the end of the run (since its start).\n")
	for _, e := range res {
		if e.Err != "" {
			continue
		}
		r.printf("\n%s, %s: %d Go threads; CPU by thread name: %s\n", e.Mode, e.Shape, e.GoThreads, e.Split.top(8))
		r.printf("parts written per million lines (inserted parts = the largest block number; merged parts still listed; active):")
		for _, p := range e.Made {
			r.printf(" %s %.1f (%d; %d; %d);", p.Table, float64(p.Inserted)*1e6/float64(e.Lines), p.Inserted, p.Merged, p.Active)
		}
		r.printf("\n")
	}
	for _, e := range res {
		if e.Profile != "" {
			r.printf("\nperf profile of connlog serve, %s, %s (share of samples by binary, then the top symbols):\n\n```\n%s\n```\n", e.Mode, e.Shape, e.Profile)
		}
		if !strings.HasSuffix(e.Mode, "-1") {
			continue // one run per mode is enough for the disk figures
		}
		for _, d := range e.Disk {
			r.printf("\n%s, %s, %s: %d rows, %d active parts, %.1f MB on disk, %.1f bytes/row on disk (%.1f uncompressed)", e.Mode, e.Shape, d.Table, d.Rows, d.Parts, float64(d.Bytes)/1e6, d.bytesPerRow(), float64(d.Uncompressed)/float64(max(d.Rows, 1)))
		}
	}
	r.printf("\n")
}

func (r *report) floor(runs []floorRun) {
	r.floors = append(r.floors, runs...)
	r.printf("\n## Kafka floor: the published lines read with kafka-go, as connlog serve reads them, and nothing else\n\n")
	r.printf("A child process reads every partition with kafka-go's Client.Fetch as connlog serve does (a transport per partition, MinBytes 1, MaxBytes %d), or with one kafka.Reader each (FetchMessage, a queue of 100: how connlog read before), and drops each message, or also checks and parses it into a store.Hit with connlog's default parser. CPU: the child's user + system time (the kernel's account, start-up included); broker: this process meanwhile.\n\n", ingest.DefaultFetchMaxBytes)
	r.printf("| run | lines/s | µs CPU/line | wall | CPU | broker CPU | parsed | peak RSS |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, f := range runs {
		if f.Err != "" {
			r.printf("| %s | error: %s | | | | | | |\n", f.Name, f.Err)
			continue
		}
		r.printf("| %s | %.0f | %.2f | %s | %s | %s | %d | %.0f MiB |\n", f.Name, f.linesPerSec(), f.usPerLine(), f.Wall.Round(time.Millisecond), f.CPU.Round(time.Millisecond), f.Broker.Round(time.Millisecond), f.Parsed, float64(f.PeakRSS)/(1<<20))
	}
}

func (r *report) ceiling(c ceilingResult) {
	r.ceil = append(r.ceil, c)
	r.printf("\n## Engine insert ceiling (embedded chDB): the stored rows, already encoded, inserted again\n\n")
	if c.Err != "" {
		r.printf("error: %s\n", c.Err)
		return
	}
	r.printf("access_log (%d rows, %.1f MB Native) and connection_records (%d rows, %.1f MB) of the first statistics-off run, read back as Native in Kafka offset order, inserted into fresh tables created AS the originals (database bench_ceiling) with INSERT ... FORMAT Native over the engine's HTTP interface (the adapter connlog's writer uses: data to a memfd, then FROM INFILE), one insert_deduplication_token per insert; per batch the access log, then the connection records\n\n",
		c.Rows, float64(c.Bytes)/1e6, c.ConnRows, float64(c.ConnBytes)/1e6)
	r.printf("| inserts | access rows/s (both tables' inserts) | wall | connlog CPU | µs CPU/access row: Go + engine | parts written per million rows (access; connections) |\n|---|---:|---:|---:|---:|---|\n")
	for _, run := range c.Runs {
		if run.Err != "" {
			r.printf("| %s | error: %s | | | | |\n", run.Name, run.Err)
			continue
		}
		var made []string
		for _, p := range run.Parts {
			made = append(made, fmt.Sprintf("%.1f", float64(p.Inserted)*1e6/float64(max(run.Rows, 1))))
		}
		r.printf("| %s | %.0f | %s | %s | %.2f + %.2f | %s |\n", run.Name, run.linesPerSec(), run.Wall.Round(time.Millisecond), run.CPU.Total.Round(time.Millisecond),
			float64(run.CPU.Go.Microseconds())/float64(run.Rows), float64(run.CPU.Engine().Microseconds())/float64(run.Rows), strings.Join(made, "; "))
	}
}

func (r *report) api(ctx context.Context, bin, dir string, rows, clients int64, reqs, days int) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err == nil {
		free := float64(st.Bavail) * float64(st.Bsize) / 1e9
		need := float64(rows) * 60 / 1e9 * 2 // ~60 bytes/row on disk, twice for merges
		if free < need {
			return fmt.Errorf("api: %.1f GB free in %s, want at least %.1f GB for %d rows", free, dir, need, rows)
		}
	}
	// One client sending requests back to back would hit the per-credential
	// rate limit (429s): latency, not the limiter, is measured here.
	in, err := startServe(ctx, bin, dir, "api", "CONNLOG_API_RATE_LIMIT_REQUESTS_PER_SECOND=10000", "CONNLOG_API_RATE_LIMIT_BURST=10000")
	if err != nil {
		return err
	}
	defer func() {
		_ = in.stop()
		_ = os.RemoveAll(in.dataDir)
	}()
	res := benchAPI(ctx, in, rows, clients, reqs, days)
	r.apiRes = &res
	if days > monthShapeDays {
		r.year(&res)
		return nil
	}
	r.printf("\n## Query API over the seeded access log\n\n")
	if res.Err != "" {
		r.printf("error: %s\n", res.Err)
	}
	r.printf("seeded %d rows (%d distinct clients, %d days) in %s (%.0f rows/s), merges settled after %s more, and %s more after the connection records; sync(2) then took %s\n",
		res.Rows, res.Clients, res.Days, res.SeedWall.Round(time.Second), float64(res.Rows)/res.SeedWall.Seconds(), res.SettleWall.Round(time.Second), res.Settle2Wall.Round(time.Second), res.SyncWall.Round(time.Millisecond))
	for _, d := range res.Disk {
		r.printf("%s: %d rows, %d active parts, %.2f GB on disk, %.1f bytes/row on disk (%.1f uncompressed)\n", d.Table, d.Rows, d.Parts, float64(d.Bytes)/1e9, d.bytesPerRow(), float64(d.Uncompressed)/float64(max(d.Rows, 1)))
	}
	r.printf("\n| search | requests | errors | p50 | p99 | max | mean rows | truncated | slowest (request #) |\n|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, l := range res.Lookups {
		r.printf("| %s | %d | %d | %s | %s | %s | %.1f | %d | %s |\n", l.Name, l.Requests, l.Errors, l.P50.Round(time.Microsecond*100), l.P99.Round(time.Microsecond*100), l.Max.Round(time.Microsecond*100), l.MeanRows, l.Truncated, strings.Join(l.Slowest, ", "))
		if l.FirstErr != "" {
			r.printf("first error: %s\n", l.FirstErr)
		}
	}
	if len(res.Diag) > 0 {
		r.printf("\nWhere the time goes (same targets, straight to the engine's HTTP interface, no API):\n\n| what | requests | errors | p50 | p99 | max | mean rows | slowest (request #) |\n|---|---:|---:|---:|---:|---:|---:|---|\n")
		for _, l := range res.Diag {
			r.printf("| %s | %d | %d | %s | %s | %s | %.1f | %s |\n", l.Name, l.Requests, l.Errors, l.P50.Round(time.Microsecond*100), l.P99.Round(time.Microsecond*100), l.Max.Round(time.Microsecond*100), l.MeanRows, strings.Join(l.Slowest, ", "))
			if l.FirstErr != "" {
				r.printf("first error: %s\n", l.FirstErr)
			}
		}
	}
	if res.ExportRows > 0 {
		r.printf("\nCSV export (Accept: text/csv, one /8 over 7 days): %d rows, %.1f MB in %s: %.0f rows/s %s\n", res.ExportRows, float64(res.ExportBytes)/1e6, res.ExportWall.Round(time.Millisecond), float64(res.ExportRows)/res.ExportWall.Seconds(), res.ExportNote)
	} else {
		r.printf("\nCSV export: %s\n", res.ExportNote)
	}
	return nil
}

// summary compares with the targets.
func (r *report) summary(e2es []e2eResult) {
	r.printf("\n## Targets\n\n")
	for _, p := range r.parses {
		if p.Format == "combined" && p.Err == "" && strings.HasPrefix(p.Shape, "combined lines") {
			r.printf("- combined parse ≥ %d lines/s on one core with 0 allocs/line: %.0f lines/s (%.0f per CPU-second), %.3f allocs/line → %s\n", targetParseLinesPerSec, p.linesPerSec(), p.linesPerCPUSec(), p.AllocsPerLine,
				met(p.linesPerSec() >= targetParseLinesPerSec && p.AllocsPerLine < 0.01))
		}
	}
	var peer *peerResult
	for i := range r.peers {
		if strings.HasPrefix(r.peers[i].Name, "ClickHouse") && r.peers[i].Err == "" && (peer == nil || r.peers[i].linesPerSec() > peer.linesPerSec()) {
			peer = &r.peers[i]
		}
	}
	var off *e2eResult // the best statistics-off run of the first input, compared with the peers
	if names := shapeNames(e2es); len(names) > 0 {
		off = bestRun(e2es, names[0], "stats-off")
	}
	r.printf("- (best of the runs per mode and input; ClickHouse and the ceiling: best of their runs)\n")
	if off != nil && peer != nil {
		ratio := off.linesPerSec() / peer.linesPerSec()
		r.printf("- end to end ≥ %.1f× ClickHouse's own Regexp parse-and-insert: %.0f vs %.0f lines/s = %.2f× → %s\n", targetE2EOverPeer, off.linesPerSec(), peer.linesPerSec(), ratio, met(ratio >= targetE2EOverPeer))
	}
	var ceil *ceilingRun
	for i := range r.ceil {
		if c := r.ceil[i]; c.Err == "" && len(c.Runs) > 0 && c.Runs[0].Err == "" && (ceil == nil || c.Runs[0].linesPerSec() > ceil.linesPerSec()) {
			ceil = &r.ceil[i].Runs[0]
		}
	}
	if off != nil && ceil != nil {
		ratio := off.linesPerSec() / ceil.linesPerSec()
		r.printf("- end to end ≥ %.1f× the engine's insert ceiling (the same rows as Native, %s): %.0f vs %.0f lines/s = %.2f× → %s\n", targetE2EOverCeiling, ceil.Name, off.linesPerSec(), ceil.linesPerSec(), ratio, met(ratio >= targetE2EOverCeiling))
	}
	if off != nil {
		per := off.CPU / time.Duration(off.Lines)
		r.printf("- connlog CPU ≤ %s per line (statistics off): %.2f µs (Go threads %.2f, engine threads %.2f) → %s\n", targetCPUPerLine, off.usPerLine(off.CPU), off.usPerLine(off.Split.Go), off.usPerLine(off.Split.Engine()), met(per <= targetCPUPerLine))
		if rd, rp := bestFloor(r.floors, "read"), bestFloor(r.floors, "read and parse"); rd != nil && rp != nil {
			r.printf("  - of which reading the lines as connlog does (kafka-go's Client.Fetch) costs at least %.2f µs, reading and parsing them %.2f µs (the Kafka floor, best runs): connlog serve spends %.2f µs per line beyond them\n", rd.usPerLine(), rp.usPerLine(), off.usPerLine(off.CPU)-rp.usPerLine())
		}
		for _, p := range off.Made {
			if p.Table != "connlog_access.access_log" && p.Table != "connlog_connections.connection_records" {
				continue
			}
			pm := float64(p.Inserted) * 1e6 / float64(off.Lines)
			r.printf("- parts written ≤ %d per million lines, %s: %.1f (%d inserted parts, from the largest block number of system.parts; system.part_log is not kept by the embedded engine) → %s\n", targetPartsPerMillion, p.Table, pm, p.Inserted, met(pm <= targetPartsPerMillion))
		}
	}
	for _, sh := range shapeNames(e2es) {
		o, n := bestRun(e2es, sh, "stats-off"), bestRun(e2es, sh, "stats-on")
		if o == nil || n == nil {
			continue
		}
		cost := 1 - n.linesPerSec()/o.linesPerSec()
		r.printf("- statistics on within %.0f%% of off, %s input: %.0f vs %.0f lines/s = %.1f%% slower → %s\n", targetStatsCost*100, sh, n.linesPerSec(), o.linesPerSec(), cost*100, met(cost <= targetStatsCost))
	}
	for _, sh := range shapeNames(e2es) {
		var peak int64
		for _, e := range e2es {
			if e.Shape == sh && e.Err == "" {
				peak = max(peak, e.PeakRSS)
			}
		}
		if peak > 0 && len(e2es) > 0 {
			r.printf("- peak RSS of connlog serve, %s input, %d lines: %.0f MiB (largest of the runs; target: a %d-line run within %.0f%% of a 1,000,000-line run, compared across two runs of this bench with -lines)\n", sh, e2es[0].Lines, float64(peak)/(1<<20), 10_000_000, targetRSSGrowth*100)
		}
	}
	if a := r.apiRes; a != nil {
		for _, l := range a.Lookups {
			lim := targetNet24P99
			if strings.HasPrefix(l.Name, "one IP") {
				lim = targetOneIPP99
			}
			if l.Target > 0 {
				lim = l.Target
			}
			r.printf("- %s p99 ≤ %s: %s → %s\n", l.Name, lim, l.P99.Round(time.Microsecond*100), met(l.Errors == 0 && l.P99 > 0 && l.P99 <= lim))
		}
		lim := targetExportRowsPerSec
		if a.Days > monthShapeDays {
			lim = targetYearExportRowsPerSec
		}
		for _, e := range []struct {
			what string
			rows int64
			wall time.Duration
			note string
		}{{"", a.ExportRows, a.ExportWall, a.ExportNote}, {", connection records", a.ConnExportRows, a.ConnExportWall, a.ConnExportNote}} {
			if e.what != "" && a.Days <= monthShapeDays {
				continue
			}
			if e.rows > 0 {
				rate := float64(e.rows) / e.wall.Seconds()
				r.printf("- CSV export%s ≥ %d rows/s: %.0f → %s\n", e.what, lim, rate, met(rate >= float64(lim)))
			} else {
				r.printf("- CSV export%s ≥ %d rows/s: not measured (%s)\n", e.what, lim, e.note)
			}
		}
	}
}

// shapeNames lists the inputs of the runs in their order.
func shapeNames(e2es []e2eResult) []string {
	var out []string
	for _, e := range e2es {
		if !slices.Contains(out, e.Shape) {
			out = append(out, e.Shape)
		}
	}
	return out
}

// bestRun is the fastest error-free run of mode (a prefix of the run name)
// on input shape, or nil.
func bestRun(e2es []e2eResult, shape, mode string) *e2eResult {
	var best *e2eResult
	for i := range e2es {
		e := &e2es[i]
		if e.Err == "" && e.Shape == shape && strings.HasPrefix(e.Mode, mode) && (best == nil || e.linesPerSec() > best.linesPerSec()) {
			best = e
		}
	}
	return best
}
