package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Targets of issues 3 and 6.
const (
	targetParseLinesPerSec = 3_000_000
	targetE2EOverPeer      = 1.5
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
	r.printf("| run | lines/s | lines per connlog CPU-second | wall | connlog CPU | broker CPU | access rows | connection rows | quarantined | start-up |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, e := range res {
		if e.Err != "" {
			r.printf("| %s | error: %s | | | | | | | | |\n", e.Mode, e.Err)
			continue
		}
		r.printf("| %s | %.0f | %.0f | %s | %s | %s | %d | %d | %d | %s |\n", e.Mode, e.linesPerSec(), e.linesPerCPUSec(),
			e.Wall.Round(time.Millisecond), e.CPU.Round(time.Millisecond), e.BrokerCPU.Round(time.Millisecond), e.Stored, e.Conn, e.Quarantine, e.Startup.Round(time.Millisecond))
	}
	for _, e := range res {
		if e.Profile != "" {
			r.printf("\nperf profile of connlog serve, %s (share of samples by binary, then the top symbols):\n\n```\n%s\n```\n", e.Mode, e.Profile)
		}
		if !strings.HasSuffix(e.Mode, "-1") {
			continue // one run per mode is enough for the disk figures
		}
		for _, d := range e.Disk {
			r.printf("\n%s, %s: %d rows, %d active parts, %.1f MB on disk, %.1f bytes/row on disk (%.1f uncompressed)", e.Mode, d.Table, d.Rows, d.Parts, float64(d.Bytes)/1e6, d.bytesPerRow(), float64(d.Uncompressed)/float64(max(d.Rows, 1)))
		}
	}
	r.printf("\n")
}

func (r *report) api(ctx context.Context, bin, dir string, rows, clients int64, reqs int) error {
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
	res := benchAPI(ctx, in, rows, clients, reqs)
	r.apiRes = &res
	r.printf("\n## Query API over the seeded access log\n\n")
	if res.Err != "" {
		r.printf("error: %s\n", res.Err)
	}
	r.printf("seeded %d rows (%d distinct clients, 30 days) in %s (%.0f rows/s), merges settled after %s more, and %s more after the connection records; sync(2) then took %s\n",
		res.Rows, res.Clients, res.SeedWall.Round(time.Second), float64(res.Rows)/res.SeedWall.Seconds(), res.SettleWall.Round(time.Second), res.Settle2Wall.Round(time.Second), res.SyncWall.Round(time.Millisecond))
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
	var off, on *e2eResult
	for i := range e2es {
		if e2es[i].Err != "" {
			continue
		}
		best := func(cur *e2eResult) *e2eResult {
			if cur == nil || e2es[i].linesPerSec() > cur.linesPerSec() {
				return &e2es[i]
			}
			return cur
		}
		switch {
		case strings.HasPrefix(e2es[i].Mode, "stats-off"):
			off = best(off)
		case strings.HasPrefix(e2es[i].Mode, "stats-on"):
			on = best(on)
		}
	}
	r.printf("- (best of the runs per mode; ClickHouse: best of its runs)\n")
	if off != nil && peer != nil {
		ratio := off.linesPerSec() / peer.linesPerSec()
		r.printf("- end to end ≥ %.1f× ClickHouse's own Regexp parse-and-insert: %.0f vs %.0f lines/s = %.2f× → %s\n", targetE2EOverPeer, off.linesPerSec(), peer.linesPerSec(), ratio, met(ratio >= targetE2EOverPeer))
	}
	if off != nil && on != nil {
		cost := 1 - on.linesPerSec()/off.linesPerSec()
		r.printf("- statistics on within %.0f%% of off: %.0f vs %.0f lines/s = %.1f%% slower → %s\n", targetStatsCost*100, on.linesPerSec(), off.linesPerSec(), cost*100, met(cost <= targetStatsCost))
	}
	if a := r.apiRes; a != nil {
		for _, l := range a.Lookups {
			lim := targetNet24P99
			if strings.HasPrefix(l.Name, "one IP") {
				lim = targetOneIPP99
			}
			r.printf("- %s p99 ≤ %s: %s → %s\n", l.Name, lim, l.P99.Round(time.Microsecond*100), met(l.Errors == 0 && l.P99 > 0 && l.P99 <= lim))
		}
		if a.ExportRows > 0 {
			rate := float64(a.ExportRows) / a.ExportWall.Seconds()
			r.printf("- CSV export ≥ %d rows/s: %.0f → %s\n", targetExportRowsPerSec, rate, met(rate >= targetExportRowsPerSec))
		} else {
			r.printf("- CSV export ≥ %d rows/s: not measured (%s)\n", targetExportRowsPerSec, a.ExportNote)
		}
	}
}
