package main

import (
	"bufio"
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// metric returns the value of one sample of the instance's /metrics, the
// sample named by its name and labels as exposed ("" when absent).
func (in *instance) metric(sample string) string {
	in.tb.Helper()
	code, body := in.get("/metrics", nil)
	if code != 200 {
		in.tb.Fatalf("/metrics: %d", code)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			return v
		}
	}
	return ""
}

// TestRestartBetweenPublishesStoresEveryLine is the user's story of issue
// 18: start the embedded default, publish 12 lines, stop it, start it again
// on the same data directory, publish 12 new lines. The embedded broker's
// offsets start again at 0, yet all 24 lines are stored, once each, and the
// second run's stored metric says 12.
func TestRestartBetweenPublishesStoresEveryLine(t *testing.T) {
	for _, stop := range []struct {
		name string
		sig  syscall.Signal
	}{{"SIGTERM", syscall.SIGTERM}, {"SIGKILL", syscall.SIGKILL}} {
		t.Run(stop.name, func(t *testing.T) {
			in := startConnlog(t, "")
			lines := genLines(24, time.Now().UTC().Add(-time.Hour))
			publish(t, in.kafka, in.shipper(), "nginx", lines[:12])
			// Both tables: a SIGKILL before the batch is whole loses the
			// rest with the in-memory broker (the README says so).
			for _, table := range []string{"connlog_access.access_log", "connlog_connections.connection_records"} {
				if n := in.waitRows(table, 12, 60*time.Second); n != 12 {
					t.Fatalf("first run stored %d lines in %s, want 12", n, table)
				}
			}
			in.cmd.Process.Signal(stop.sig)
			<-in.exited
			in.start()
			publish(t, in.kafka, in.shipper(), "nginx", lines[12:])
			in.waitRows("connlog_access.access_log", 24, 60*time.Second)
			time.Sleep(time.Second) // anything stored twice would be there now
			const q = "SELECT count(), uniqExact(path, user_agent) FROM connlog_access.access_log"
			if got := in.sql(q); got != "24\t24" {
				t.Errorf("%s = %q, want 24 rows, 24 distinct lines", q, got)
			}
			if got := in.sql("SELECT count() FROM connlog_connections.connection_records"); got != "24" {
				t.Errorf("connection records %s, want 24", got)
			}
			// The counter moves once the batch's manifests are written,
			// just after its rows are visible.
			const stored = `connlog_ingest_lines_total{result="stored",topic="nginx"}`
			got := in.metric(stored)
			for deadline := time.Now().Add(30 * time.Second); got != "12" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				got = in.metric(stored)
			}
			if got != "12" {
				t.Errorf("second run: stored metric %q, want 12", got)
			}
		})
	}
}

// TestSIGTERMDrainsTheEmbeddedBroker: lines published just before SIGTERM
// are stored before the embedded broker, which keeps them in memory only,
// goes away with the process.
func TestSIGTERMDrainsTheEmbeddedBroker(t *testing.T) {
	// A drain budget of 48s (shutdown_timeout - the pipeline's 10s share -
	// 2s): enough for 10,000 lines on a loaded machine.
	in := startConnlog(t, "", "CONNLOG_KAFKA_BATCH_ROWS=1000", "CONNLOG_SHUTDOWN_TIMEOUT=60s")
	const n = 10000
	publish(t, in.kafka, in.shipper(), "nginx", genLines(n, time.Now().UTC().Add(-time.Hour)))
	in.cmd.Process.Signal(syscall.SIGTERM)
	<-in.exited
	if code := in.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM\n%s", code, tail(in.stderr.String(), 3000))
	}
	in.start()
	if got := in.sql("SELECT count() FROM connlog_access.access_log"); got != strconv.Itoa(n) {
		t.Errorf("after SIGTERM right after publishing: %s lines stored, want %d", got, n)
	}
}

// TestUndrainedBrokerIsReported: with no time left to drain (the shutdown
// budget is all the pipeline's own), what the embedded broker still holds
// is lost with the process; serve says how much, from which offsets, and
// exits non-zero.
func TestUndrainedBrokerIsReported(t *testing.T) {
	// The deprecated CONNLOG_KAFKA_SHUTDOWN_TIMEOUT still sets the
	// pipeline's share: here all the budget but the 2s reserve.
	in := startConnlog(t, "", "CONNLOG_SHUTDOWN_TIMEOUT=7s", "CONNLOG_KAFKA_SHUTDOWN_TIMEOUT=5s",
		"CONNLOG_KAFKA_BATCH_ROWS=200", "CONNLOG_KAFKA_FLUSH_INTERVAL=10s")
	const n = 20000
	publish(t, in.kafka, in.shipper(), "nginx", genLines(n, time.Now().UTC().Add(-time.Hour)))
	in.cmd.Process.Signal(syscall.SIGTERM)
	<-in.exited
	stderr := in.stderr.String()
	if code := in.cmd.ProcessState.ExitCode(); code == 0 {
		t.Fatalf("exit code 0 although messages were lost\n%s", tail(stderr, 3000))
	}
	m := regexp.MustCompile(`"msg":"embedded broker stopped with messages not stored: they are lost","messages":(\d+),"partitions":\d+`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no report of the lost messages\n%s", tail(stderr, 3000))
	}
	lost, _ := strconv.Atoi(m[1])
	if !strings.Contains(stderr, `"first_offset":`) || !strings.Contains(stderr, `"last_offset":`) {
		t.Errorf("the report names no offsets")
	}
	in.start()
	stored, _ := strconv.Atoi(in.sql("SELECT count() FROM connlog_access.access_log"))
	if stored+lost != n || lost == 0 {
		t.Errorf("%d stored + %d reported lost, want %d published and some lost", stored, lost, n)
	}
	t.Logf("%d stored, %d reported lost", stored, lost)
}
