package main

import (
	"log/slog"
	"math/rand/v2"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connlog/connlog/ingest/broker"
)

// SIGKILLs at random moments, replays after each restart, four partitions:
// the store still verifies. Chain heads, writer links and replayed
// manifests must not look like tampering after a crash.
func TestVerifyPassesAfterKills(t *testing.T) {
	if testing.Short() {
		t.Skip("kills the real binary several times")
	}
	broker, err := broker.Start(t.Context(), broker.Config{Addr: "127.0.0.1:0", Topics: []string{"nginx"}, Partitions: 4}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	addr := broker.Addrs()[0]
	in := startConnlog(t, "", append(brokerEnv(broker), "CONNLOG_KAFKA_SESSION_TIMEOUT=6s", "CONNLOG_KAFKA_BATCH_ROWS=300")...)
	const lines, kills = 6000, 3
	all := genLines(lines, time.Now().UTC().Add(-time.Hour))
	const table = "connlog_access.access_log"
	chunk, next, stored := lines/(kills+1), 0, 0
	for range kills {
		publish(t, addr, broker.Shipper(), "nginx", all[next:next+chunk])
		next += chunk
		in.waitRows(table, stored+1, 90*time.Second) // some of this chunk is stored before the kill
		// see TestCrashAtRandomMomentsStoresEveryLineOnce for the 2s
		time.Sleep(2*time.Second + time.Duration(rand.IntN(1000))*time.Millisecond)
		in.cmd.Process.Kill()
		<-in.exited
		in.start()
		stored, _ = strconv.Atoi(in.sql("SELECT count() FROM " + table))
	}
	publish(t, addr, broker.Shipper(), "nginx", all[next:])
	in.waitRows(table, lines, 120*time.Second)
	in.waitRows("connlog_connections.connection_records", lines, 60*time.Second)
	time.Sleep(time.Second) // a last replayed batch's manifests
	if err := in.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-in.exited
	cmd := exec.Command(connlogBinary(t), "verify")
	cmd.Env = in.env
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK: no gap") {
		t.Fatalf("verify after %d kills: %v\n%s", kills, err, out)
	}
	t.Logf("%s", out)
}
