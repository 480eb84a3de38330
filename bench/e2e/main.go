// Command e2e is connlog's end-to-end benchmark, run by `make bench`
// (scripts/bench.sh) on one input: the lines of shared/testdata/logs cycled
// to -lines lines, re-stamped with recent times. From one run it reports:
//
//   - parse: every format of logline.Formats() over the whole input on one
//     core, lines/s and allocations per line;
//   - goaccess: Debian's GoAccess producing a JSON report of the same file;
//   - e2e: the file published through the Kafka protocol to a kfake broker
//     in this process, then the real `connlog serve` binary (embedded
//     ClickHouse) started and timed until every line is stored or
//     quarantined; once with statistics off and, when -stats-env is given,
//     once with statistics on; with per-thread CPU (Go runtime vs the
//     engine's threads), peak RSS and the parts each table got; on the
//     input as built, and again on the many-visitor shape: the same lines
//     with their client rewritten to one of -visitors addresses;
//   - floor: the published lines read back by a child process with
//     kafkaclient.Fetcher as connlog serve reads them (and with a
//     kafka.Reader), dropped or parsed, nothing stored: the CPU per line
//     that reading and parsing cost before connlog's write path (floor.go);
//   - clickhouse: the same engine parsing the same file with its own Regexp
//     input format into a MergeTree table (INSERT ... FORMAT Regexp);
//   - ceiling: the rows the first statistics-off run stored, read back as
//     Native and inserted again into fresh tables of the same DDL on the
//     same engine, in batches of -ceiling-batch rows and in one insert per
//     table: the engine's insert ceiling for connlog's tables;
//   - api: -api-rows generated access-log rows seeded in the embedded
//     engine, then one-IP/24h and /24/7-day searches and a CSV export timed
//     through the real API; with -api-days above 30 (default 365), a year of evidence:
//     connection records over that many days and the access log of the
//     same requests over its last 180, and the requisition searches on the
//     connection records (one IP + port + minute, one IP over 12 months,
//     one /24 over 7 days), with their engine-only read statistics.
//
// Usage:
//
//	go run ./bench/e2e -connlog bin/connlog -phases parse,goaccess,e2e,floor,clickhouse,ceiling [-stats-env CONNLOG_X=Y] [-out results.md]
//	go run ./bench/e2e -connlog bin/connlog -phases api -api-rows 50000000
//	go run ./bench/e2e -connlog bin/connlog -phases api -api-rows 200000000 -api-days 365
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

func main() {
	if spec := os.Getenv(floorEnv); spec != "" {
		if err := floorChild(spec); err != nil {
			fmt.Fprintln(os.Stderr, "bench: kafka floor:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		bin       = flag.String("connlog", "bin/connlog", "connlog binary to run (`connlog serve`, embedded ClickHouse)")
		glob      = flag.String("logs", "../shared/testdata/logs/*.log", "source log files, cycled (relative paths from the repository root, where make bench runs)")
		nLines    = flag.Int("lines", 1_000_000, "lines of input")
		work      = flag.String("work", "", "work directory (default: a new temporary directory, removed at the end)")
		phases    = flag.String("phases", "parse,goaccess,e2e,floor,clickhouse,ceiling", "comma-separated: parse, goaccess, e2e, floor, clickhouse, ceiling, api")
		visitors  = flag.Int("visitors", 200_000, "distinct visitors of the many-visitor input shape of the e2e phase; 0: no such shape")
		ceilBatch = flag.Int("ceiling-batch", 100_000, "access rows per insert in the ceiling phase (what connlog inserts at once: its kafka.batch_rows default, 25,000, for each of the 4 partitions of a write round)")
		statsEnv  = flag.String("stats-env", "", "comma-separated VAR=VALUE that turn statistics on in connlog serve; empty: no statistics-on run")
		offEnv    = flag.String("base-env", "", "comma-separated VAR=VALUE for every connlog serve of the e2e runs (e.g. statistics explicitly off)")
		rounds    = flag.Int("parse-rounds", 3, "rounds per format in the parse phase (the fastest is kept)")
		apiRows   = flag.Int64("api-rows", 50_000_000, "rows seeded for the api phase")
		apiClient = flag.Int64("api-clients", 2_000_000, "distinct clients of the seeded rows")
		apiReqs   = flag.Int("api-requests", 200, "measured requests per search kind")
		apiDays   = flag.Int("api-days", 365, "days of the api phase's seed; above 30, the year shape: -api-rows split between connection records over that many days and the access log over its last 180 (same requests per day), and the connection-record searches of a requisition; 30 or less: the month shape, access log over that many days and connection records of the last 3")
		out       = flag.String("out", "", "also write the report to this file")
		repeat    = flag.Int("e2e-repeat", 2, "end-to-end runs per mode, interleaved; the best is compared with the targets")
		profile   = flag.Bool("profile", false, "record connlog serve with perf(1) during the e2e runs and print where the CPU went")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	want := map[string]bool{}
	for p := range strings.SplitSeq(*phases, ",") {
		switch p = strings.TrimSpace(p); p {
		case "parse", "goaccess", "e2e", "floor", "clickhouse", "ceiling", "api":
			want[p] = true
		case "":
		default:
			return fmt.Errorf("-phases: unknown phase %q", p)
		}
	}
	peers := want["clickhouse"] || want["ceiling"]
	if want["e2e"] || peers || want["api"] {
		if _, err := os.Stat(*bin); err != nil {
			return fmt.Errorf("-connlog: %w", err)
		}
	}
	dir := *work
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	} else {
		d, err := os.MkdirTemp("", "connlog-bench-")
		if err != nil {
			return err
		}
		defer func() { _ = os.RemoveAll(d) }()
		dir = d
	}
	var w io.Writer = os.Stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		w = io.MultiWriter(os.Stdout, f)
	}
	rep := &report{w: w}
	rep.header()

	var input string
	var shapes []inputShape
	if want["parse"] || want["goaccess"] || want["e2e"] || peers || want["floor"] {
		input = filepath.Join(dir, "input.log")
		base := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)
		shapes = append(shapes, inputShape{Name: "cycled", Key: "cycled", File: input})
		if want["e2e"] && *visitors > 0 {
			shapes = append(shapes, inputShape{Name: fmt.Sprintf("%d visitors", *visitors), Key: "visitors", File: filepath.Join(dir, "input-visitors.log"), Visitors: *visitors})
		}
		for i := range shapes {
			sh := &shapes[i]
			var err error
			if sh.Stats, err = buildInput(*glob, *nLines, base, time.Hour, sh.File, sh.Visitors); err != nil {
				return err
			}
			st, _ := os.Stat(sh.File)
			how := "cycled"
			if sh.Visitors > 0 {
				how = fmt.Sprintf("cycled, each IP client rewritten to one of %d visitors drawn with a seeded PRNG (same family; IPv4 in public /8s of European access networks, IPv6 in French ISPs' /32s), the rest of the line byte for byte", sh.Visitors)
			}
			if i == 0 {
				rep.printf("\n## Input\n\n")
			}
			rep.printf("%s: %d lines (%d distinct source lines from %s, %s), %d distinct clients, %.1f MB, times re-stamped over one hour ending %s\n\n",
				sh.File, *nLines, sh.Stats.Distinct, *glob, how, sh.Stats.Clients, float64(st.Size())/1e6, base.Add(time.Hour).Format(time.RFC3339))
		}
	}

	if want["parse"] {
		lines, err := readLines(input)
		if err != nil {
			return err
		}
		rep.parse(benchParse(lines, *rounds))
		runtime.GC() // the lines are dead now: give the next phases their memory
	}
	if want["goaccess"] {
		rep.peer(benchGoAccess(ctx, input, dir, *nLines))
	}
	var e2es []e2eResult
	if want["e2e"] || peers || want["floor"] {
		for si, sh := range shapes {
			if err := e2eShape(ctx, rep, sh, si == 0, want, *bin, dir, *statsEnv, *offEnv, *repeat, *ceilBatch, *profile, &e2es); err != nil {
				return err
			}
		}
		rep.e2e(e2es)
	}
	if want["api"] {
		if err := rep.api(ctx, *bin, dir, *apiRows, *apiClient, *apiReqs, *apiDays); err != nil {
			return err
		}
	}
	rep.summary(e2es)
	return nil
}

// inputShape is one input file of the e2e phase.
type inputShape struct {
	Name     string // in the report
	Key      string // in data directory and consumer group names
	File     string
	Visitors int // > 0: clients rewritten to that many visitors
	Stats    inputStats
}

// e2eShape publishes one input shape to a broker of its own (closed at the
// end, so that a large input is held once), then runs connlog serve on it
// per mode and repeat; after the first statistics-off run of the first
// shape, the peers run on the same engine.
func e2eShape(ctx context.Context, rep *report, sh inputShape, first bool, want map[string]bool, bin, dir, statsEnv, offEnv string, repeat, ceilBatch int, profile bool, e2es *[]e2eResult) error {
	b, n, pub, err := publishInput(ctx, sh.File, "nginx", 4)
	if err != nil {
		return fmt.Errorf("publish input: %w", err)
	}
	defer b.Close()
	rep.printf("\n## Publish (%s)\n\n%d lines published through the Kafka protocol (kafka-go writer, acks=all) to a kfake broker in the bench process, 4 partitions, in %s (%.0f lines/s)\n",
		sh.Name, n, pub.Round(time.Millisecond), float64(n)/pub.Seconds())
	if first && want["floor"] {
		rep.floor(benchFloor(ctx, b.ListenAddrs(), "nginx", 4, n, max(repeat, 3)))
	}
	if !want["e2e"] && !want["clickhouse"] && !want["ceiling"] {
		return nil
	}

	modes := []struct {
		name string
		env  []string
	}{{"stats-off", splitEnv(offEnv)}}
	if statsEnv != "" && want["e2e"] {
		modes = append(modes, struct {
			name string
			env  []string
		}{"stats-on", append(splitEnv(offEnv), splitEnv(statsEnv)...)})
	}
	// Interleaved repeats (off, on, off, on...) so a burst of load from
	// elsewhere does not land on one mode only; the best run per mode
	// is compared.
	for k := 1; k <= repeat; k++ {
		for i, m := range modes {
			r, in := benchE2E(ctx, bin, dir, b.ListenAddrs(), sh, fmt.Sprintf("%s-%d", m.name, k), n, m.env, profile)
			*e2es = append(*e2es, r)
			if in == nil {
				continue
			}
			if first && i == 0 && want["clickhouse"] {
				if _, err := in.waitMerges(ctx, 2*time.Minute); err != nil {
					rep.printf("waiting for merges: %v\n", err)
				}
				rep.peer(benchClickHouseRegexp(ctx, in, sh.File, n))
			}
			if first && i == 0 && want["ceiling"] {
				if _, err := in.waitMerges(ctx, 2*time.Minute); err != nil {
					rep.printf("waiting for merges: %v\n", err)
				}
				rep.ceiling(benchCeiling(ctx, in, dir, ceilBatch))
			}
			if err := in.stop(); err != nil {
				rep.printf("stop: %v\n", err)
			}
			_ = os.RemoveAll(in.dataDir)
		}
	}
	return nil
}

func splitEnv(s string) []string {
	var out []string
	for kv := range strings.SplitSeq(s, ",") {
		if kv = strings.TrimSpace(kv); kv != "" {
			out = append(out, kv)
		}
	}
	return out
}
