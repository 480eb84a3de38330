package main

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/connlog/connlog/ingest/broker"
)

// TestCrashAtRandomMomentsStoresEveryLineOnce is the acceptance crash test:
// 500,000 lines published to a broker that outlives connlog (kfake in the
// test process), connlog killed with SIGKILL at 20 random moments (during
// fetch, parse, insert, or between insert and commit) and restarted on the
// same data directory; at the end the access log and the connection records
// each hold every line exactly once.
//
// Each kill comes after the new instance stored something, plus 2s and a
// random delay (see TestKillNineLosesNothing for why). -short runs 50,000
// lines and 5 kills; CONNLOG_CRASH_LINES and CONNLOG_CRASH_KILLS override.
func TestCrashAtRandomMomentsStoresEveryLineOnce(t *testing.T) {
	lines, kills := 500000, 20
	if testing.Short() {
		lines, kills = 50000, 5
	}
	if v, err := strconv.Atoi(os.Getenv("CONNLOG_CRASH_LINES")); err == nil && v > 0 {
		lines = v
	}
	if v, err := strconv.Atoi(os.Getenv("CONNLOG_CRASH_KILLS")); err == nil && v >= 0 {
		kills = v
	}
	start := time.Now()
	broker, err := broker.Start(t.Context(), broker.Config{Addr: "127.0.0.1:0", Topics: []string{"nginx"}, Partitions: 4}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	addr := broker.Addrs()[0]
	in := startConnlog(t, "", append(brokerEnv(broker), "CONNLOG_KAFKA_SESSION_TIMEOUT=6s", "CONNLOG_KAFKA_BATCH_ROWS=5000")...)
	all := genLines(lines, time.Now().UTC().Add(-time.Hour))
	for i := range all {
		if i%10 == 9 { // genLines' IPv6 addresses are valid below 65536 lines only
			all[i].ip = fmt.Sprintf("2001:db8::%x:%x", i>>16, i&0xffff)
		}
	}
	// One chunk per kill, published just before waiting for progress: the
	// kills fall while lines are being fetched, parsed and inserted, not
	// after everything is stored.
	chunk := (lines + kills) / (kills + 1)
	next := 0
	publishNext := func() {
		if next < len(all) {
			end := min(next+chunk, len(all))
			publish(t, addr, broker.Shipper(), "nginx", all[next:end])
			next = end
		}
	}
	const table = "connlog_access.access_log"
	stored := 0
	for kill := 1; kill <= kills; kill++ {
		publishNext()
		stored = in.waitRows(table, stored+1, 90*time.Second)
		// at least 2s: kafka-go's first heartbeat comes HeartbeatInterval
		// (1.5s with a 6s session) after the join; kfake never expires a
		// member that died before it (see TestKillNineLosesNothing)
		delay := 2*time.Second + time.Duration(rand.IntN(1500))*time.Millisecond
		time.Sleep(delay)
		in.cmd.Process.Kill()
		<-in.exited
		t.Logf("kill -9 #%d at %s, %s after progress, %d rows stored", kill, time.Since(start).Round(time.Millisecond), delay, stored)
		in.start()
		// progress means rows stored by this instance, not by the one
		// killed while the delay ran
		stored, _ = strconv.Atoi(in.sql("SELECT count() FROM " + table))
	}
	for next < len(all) {
		publishNext()
	}
	in.waitRows(table, lines, 180*time.Second)
	in.waitRows("connlog_connections.connection_records", lines, 60*time.Second)
	// let a last replayed batch (if any) land before counting
	time.Sleep(time.Second)
	for _, tbl := range []string{table, "connlog_connections.connection_records"} {
		got := in.sql("SELECT count(), uniqExact(kafka_partition, kafka_offset) FROM " + tbl + " FORMAT TSV")
		if want := strconv.Itoa(lines) + "\t" + strconv.Itoa(lines); got != want {
			t.Errorf("%s: count, distinct offsets = %s; want %s", tbl, got, want)
		}
	}
	if q := in.sql("SELECT count() FROM connlog_ops.quarantine"); q != "0" {
		t.Errorf("%s lines quarantined, want 0", q)
	}
	t.Logf("%d lines, %d kills: exactly once after %s; %s batches recorded in the intent log", lines, kills,
		time.Since(start).Round(time.Second), in.sql("SELECT count() FROM connlog_ops.ingest_batches"))
}
