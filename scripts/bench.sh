#!/bin/sh
# bench.sh is `make bench`: every benchmark of connlog from one run, on one
# input, with the peers measured in the same run. BENCHMARKS.md explains the
# figures. Steps:
#
#   1. the Go benchmarks of every package, on one core (-cpu 1);
#   2. bench/e2e on shared/testdata/logs cycled to 1,000,000 lines: parse
#      per format, GoAccess, Kafka protocol → connlog serve → embedded
#      ClickHouse (statistics off, and on when BENCH_STATS_ENV is set; on
#      that input and on a many-visitor copy of it, with per-thread CPU,
#      peak RSS and parts written), the Kafka floor (the same lines only
#      read, and read and parsed, by a child process as connlog reads
#      them), ClickHouse's own Regexp input format on
#      the same file, the engine insert ceiling (the stored rows re-inserted
#      as Native), and the query API over 50,000,000 seeded rows (a year of
#      connection records and 180 days of access log).
#
# Environment (all optional):
#   BENCH_PHASES     bench/e2e phases (default parse,goaccess,e2e,floor,clickhouse,ceiling,api)
#   BENCH_GO         -bench pattern of step 1 ("" skips it; default .)
#   BENCH_LINES      input lines (default 1000000; 10000000 works, the
#                    Regexp peer then exceeds the engine's 512 MB per insert)
#   BENCH_VISITORS   distinct visitors of the many-visitor input shape
#                    (default 200000; 0 skips that shape)
#   BENCH_CEILING_BATCH access rows per insert of the ceiling phase
#                    (default 100000: what connlog inserts at once, its
#                    kafka.batch_rows for each of the 4 partitions of a
#                    write round)
#   BENCH_LOGS       source logs glob (default ../shared/testdata/logs/*.log)
#   BENCH_API_ROWS   rows seeded for the API phase (default 50000000)
#   BENCH_API_DAYS   days of the API phase's seed (default 365: a year of
#                    evidence, BENCH_API_ROWS split between connection
#                    records over 365 days and the access log of the same
#                    requests over its last 180, the access searches and
#                    the requisition searches on the connection records
#                    (IP + port + minute, one IP over 12 months, one /24
#                    over 7 days) through the API and on the engine alone;
#                    5 min here at 50000000 rows, 10 at 200000000; 30: the
#                    month shape of earlier runs, the access log over 30
#                    days and connection records of the last 3)
#   BENCH_E2E_REPEAT end-to-end runs per mode, interleaved; the best of each
#                    mode is compared (default 3: this machine's runs vary)
#   BENCH_STATS_ENV  VAR=VALUE,... that turn statistics on in connlog serve
#                    (default CONNLOG_STATISTICS_ENABLED=true; "" skips that run)
#   BENCH_BASE_ENV   VAR=VALUE,... for every e2e connlog serve
#                    (default CONNLOG_STATISTICS_ENABLED=false)
#   BENCH_OUT        directory for the results (default a new one under /tmp)
#   TMPDIR           where the input, data directories and binaries go
#                    (the API phase needs ~10 GB; removed at the end)
set -eu
# go.mod needs Go 1.27.3, fetched from the Go module proxy (see the Makefile).
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"
cd "$(dirname "$0")/.."

GO=${GO:-go}
scripts/install-bench-deps.sh
CONNLOG_CHDB_LIBRARY=$(scripts/fetch-chdb.sh 2>/dev/null) || {
	echo "bench: scripts/fetch-chdb.sh failed" >&2
	exit 1
}
export CONNLOG_CHDB_LIBRARY

# The sample logs sit beside the repository (../shared/testdata/logs); no
# machine path is assumed.
logs_default="$(cd .. && pwd)/shared/testdata/logs/*.log"
if [ -z "${BENCH_LOGS:-}" ] && [ ! -d ../shared/testdata/logs ]; then
	echo "bench: no ../shared/testdata/logs beside the repository: set BENCH_LOGS to a glob of nginx access logs" >&2
	exit 1
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/connlog-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
out=${BENCH_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/connlog-bench-results.XXXXXX")}
mkdir -p "$out"

echo "bench: results in $out" >&2
{
	echo "commit $(git describe --always --dirty 2>/dev/null || echo "${BENCH_COMMIT:-unknown}")"
	echo "nproc $(nproc)"
	grep -m1 'model name' /proc/cpuinfo || true
	grep MemTotal /proc/meminfo || true
	$GO version
	echo "chdb $CONNLOG_CHDB_LIBRARY"
	uptime
} | tee "$out/machine.txt"

$GO build -o "$work/connlog" ./cmd/connlog
$GO build -o "$work/bench-e2e" ./bench/e2e

start=$(date +%s)
if [ -n "${BENCH_GO-.}" ]; then
	echo "bench: go test -run '^\$' -bench '${BENCH_GO-.}' -benchmem -cpu 1 ./..." >&2
	# a failing package (others' work in progress) must not stop the run
	$GO test -run '^$' -bench "${BENCH_GO-.}" -benchmem -cpu 1 -timeout 20m ./... 2>&1 | tee "$out/go-bench.txt" || true
fi

"$work/bench-e2e" -connlog "$work/connlog" -work "$work/e2e" \
	-logs "${BENCH_LOGS:-$logs_default}" \
	-lines "${BENCH_LINES:-1000000}" \
	-phases "${BENCH_PHASES:-parse,goaccess,e2e,floor,clickhouse,ceiling,api}" \
	-visitors "${BENCH_VISITORS:-200000}" \
	-ceiling-batch "${BENCH_CEILING_BATCH:-100000}" \
	-api-rows "${BENCH_API_ROWS:-50000000}" \
	-api-days "${BENCH_API_DAYS:-365}" \
	-e2e-repeat "${BENCH_E2E_REPEAT:-3}" \
	-stats-env "${BENCH_STATS_ENV-CONNLOG_STATISTICS_ENABLED=true}" \
	-base-env "${BENCH_BASE_ENV-CONNLOG_STATISTICS_ENABLED=false}" \
	-out "$out/e2e.md"
echo "bench: done in $(($(date +%s) - start))s; results in $out" >&2
