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
//     once with statistics on;
//   - clickhouse: the same engine parsing the same file with its own Regexp
//     input format into a MergeTree table (INSERT ... FORMAT Regexp);
//   - api: -api-rows generated access-log rows seeded in the embedded
//     engine, then one-IP/24h and /24/7-day searches and a CSV export timed
//     through the real API.
//
// Usage:
//
//	go run ./bench/e2e -connlog bin/connlog -phases parse,goaccess,e2e,clickhouse [-stats-env CONNLOG_X=Y] [-out results.md]
//	go run ./bench/e2e -connlog bin/connlog -phases api -api-rows 50000000
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
		phases    = flag.String("phases", "parse,goaccess,e2e,clickhouse", "comma-separated: parse, goaccess, e2e, clickhouse, api")
		statsEnv  = flag.String("stats-env", "", "comma-separated VAR=VALUE that turn statistics on in connlog serve; empty: no statistics-on run")
		offEnv    = flag.String("base-env", "", "comma-separated VAR=VALUE for every connlog serve of the e2e runs (e.g. statistics explicitly off)")
		rounds    = flag.Int("parse-rounds", 3, "rounds per format in the parse phase (the fastest is kept)")
		apiRows   = flag.Int64("api-rows", 50_000_000, "rows seeded for the api phase")
		apiClient = flag.Int64("api-clients", 2_000_000, "distinct clients of the seeded rows")
		apiReqs   = flag.Int("api-requests", 200, "measured requests per search kind")
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
		case "parse", "goaccess", "e2e", "clickhouse", "api":
			want[p] = true
		case "":
		default:
			return fmt.Errorf("-phases: unknown phase %q", p)
		}
	}
	if want["e2e"] || want["clickhouse"] || want["api"] {
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
	var distinct int
	if want["parse"] || want["goaccess"] || want["e2e"] || want["clickhouse"] {
		input = filepath.Join(dir, "input.log")
		base := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)
		var err error
		if distinct, err = buildInput(*glob, *nLines, base, time.Hour, input); err != nil {
			return err
		}
		st, _ := os.Stat(input)
		rep.printf("\n## Input\n\n%s: %d lines (%d distinct source lines from %s, cycled), %.1f MB, times re-stamped over one hour ending %s\n",
			input, *nLines, distinct, *glob, float64(st.Size())/1e6, base.Add(time.Hour).Format(time.RFC3339))
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
	if want["e2e"] || want["clickhouse"] {
		b, n, pub, err := publishInput(ctx, input, "nginx", 4)
		if err != nil {
			return fmt.Errorf("publish input: %w", err)
		}
		defer b.Close()
		rep.printf("\n## Publish\n\n%d lines published through the Kafka protocol (kafka-go writer, acks=all) to a kfake broker in the bench process, 4 partitions, in %s (%.0f lines/s)\n",
			n, pub.Round(time.Millisecond), float64(n)/pub.Seconds())

		modes := []struct {
			name string
			env  []string
		}{{"stats-off", splitEnv(*offEnv)}}
		if *statsEnv != "" && want["e2e"] {
			modes = append(modes, struct {
				name string
				env  []string
			}{"stats-on", append(splitEnv(*offEnv), splitEnv(*statsEnv)...)})
		}
		// Interleaved repeats (off, on, off, on...) so a burst of load from
		// elsewhere does not land on one mode only; the best run per mode
		// is compared.
		for k := 1; k <= *repeat; k++ {
			for i, m := range modes {
				r, in := benchE2E(ctx, *bin, dir, b.ListenAddrs(), fmt.Sprintf("%s-%d", m.name, k), n, m.env, *profile)
				e2es = append(e2es, r)
				if in == nil {
					continue
				}
				if i == 0 && want["clickhouse"] {
					if _, err := in.waitMerges(ctx, 2*time.Minute); err != nil {
						rep.printf("waiting for merges: %v\n", err)
					}
					rep.peer(benchClickHouseRegexp(ctx, in, input, n))
				}
				if err := in.stop(); err != nil {
					rep.printf("stop: %v\n", err)
				}
				_ = os.RemoveAll(in.dataDir)
			}
		}
		rep.e2e(e2es)
	}
	if want["api"] {
		if err := rep.api(ctx, *bin, dir, *apiRows, *apiClient, *apiReqs); err != nil {
			return err
		}
	}
	rep.summary(e2es)
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
