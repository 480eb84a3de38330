package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/connlog/connlog/ingest/kafkaclient"
	"github.com/twmb/franz-go/pkg/kfake"
)

// e2eResult is one `connlog serve` run consuming the published input.
type e2eResult struct {
	Mode       string
	Shape      string // input shape: cycled sample lines, or many visitors
	Lines      int
	Startup    time.Duration // process start to /readyz
	Wall       time.Duration // /readyz to every line stored or quarantined
	CPU        time.Duration // connlog serve (with its embedded ClickHouse) during Wall
	BrokerCPU  time.Duration // this process (the Kafka-protocol broker) during Wall
	Split      cpuSplit      // CPU split by thread: Go runtime vs embedded engine
	GoThreads  int           // threads found to be Go's
	PeakRSS    int64         // VmHWM of connlog serve at the end of the run, bytes
	Made       []partsMade   // parts written since start-up, per table
	Stored     int64
	Conn       int64
	Quarantine int64
	Disk       []diskUsage
	Profile    string // perf report summary, with -profile
	Err        string
}

func (r e2eResult) linesPerSec() float64 { return float64(r.Lines) / r.Wall.Seconds() }

// usPerLine is d in microseconds per line.
func (r e2eResult) usPerLine(d time.Duration) float64 {
	return float64(d.Microseconds()) / float64(r.Lines)
}

func (r e2eResult) linesPerCPUSec() float64 {
	if r.CPU == 0 {
		return 0
	}
	return float64(r.Lines) / r.CPU.Seconds()
}

// publishInput starts a Kafka-protocol broker (kfake) in this process and
// publishes every line of input to topic through the Kafka protocol. It is
// a bare kfake, not connlog's embedded broker: every run reads the whole
// input again with its own consumer group, so nothing may be dropped after
// a commit, the input may exceed the embedded broker's memory bound, and
// SASL (one handshake per connection) is not what is measured.
func publishInput(ctx context.Context, input, topic string, partitions int) (*kfake.Cluster, int, time.Duration, error) {
	b, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(partitions), topic))
	if err != nil {
		return nil, 0, 0, err
	}
	f, err := os.Open(input)
	if err != nil {
		b.Close()
		return nil, 0, 0, fmt.Errorf("open input: %w", err)
	}
	defer func() { _ = f.Close() }()
	start := time.Now()
	n, err := kafkaclient.Publish(ctx, kafkaclient.PublishConfig{Brokers: b.ListenAddrs(), Topic: topic}, f)
	if err != nil {
		b.Close()
		return nil, n, 0, err
	}
	return b, n, time.Since(start), nil
}

// benchE2E starts connlog serve against the broker with a fresh data
// directory and consumer group, and measures from readiness until the
// access log plus the quarantine account for every published line and the
// connection records hold as many rows as the access log. The instance is
// returned running (for the peer measurement on the same engine).
func benchE2E(ctx context.Context, bin, work string, brokers []string, shape inputShape, mode string, lines int, env []string, profile bool) (e2eResult, *instance) {
	r := e2eResult{Mode: mode, Shape: shape.Name, Lines: lines}
	env = append([]string{
		"CONNLOG_KAFKA_BROKERS=" + strings.Join(brokers, ","),
		"CONNLOG_KAFKA_GROUP_ID=bench-" + shape.Key + "-" + mode,
	}, env...)
	in, err := startServe(ctx, bin, work, "e2e-"+shape.Key+"-"+mode, env...)
	if err != nil {
		r.Err = err.Error()
		return r, nil
	}
	r.Startup = in.ready.Sub(in.started)
	var prof *perfRecord
	if profile {
		prof = startPerf(in.cmd.Process.Pid, filepath.Join(work, "perf-"+mode+".data"))
	}
	pid := in.cmd.Process.Pid
	gt, err := newGoThreads(pid)
	if err != nil {
		r.Err = err.Error()
		return r, in
	}
	t0, _ := threadStats(pid)
	cpu0, _ := in.cpu()
	self0 := selfCPU()
	deadline := in.ready.Add(30 * time.Minute)
	const done = `SELECT (SELECT count() FROM connlog_access.access_log), (SELECT count() FROM connlog_connections.connection_records), (SELECT count() FROM connlog_ops.quarantine) FORMAT TSV`
	for {
		s, err := in.sql(ctx, done, nil)
		if err != nil {
			r.Err = err.Error()
			return r, in
		}
		fmt.Sscanf(s, "%d\t%d\t%d", &r.Stored, &r.Conn, &r.Quarantine) //nolint:errcheck // checked by the loop condition
		if r.Stored+r.Quarantine >= int64(lines) && r.Conn >= r.Stored {
			break
		}
		if time.Now().After(deadline) {
			r.Err = fmt.Sprintf("timed out after 30 minutes: %d stored, %d quarantined, %d connection records of %d lines", r.Stored, r.Quarantine, r.Conn, lines)
			return r, in
		}
		time.Sleep(100 * time.Millisecond)
		gt.sample()
	}
	r.Wall = time.Since(in.ready)
	cpu1, _ := in.cpu()
	t1, _ := threadStats(pid)
	r.CPU = cpu1 - cpu0
	gt.sample()
	r.Split = splitCPU(t0, t1, r.CPU, gt.isGo)
	r.GoThreads = gt.count()
	r.BrokerCPU = selfCPU() - self0
	r.PeakRSS, _ = peakRSS(pid)
	if prof != nil {
		r.Profile = prof.stop()
	}
	r.Disk, err = in.parts(ctx, "connlog_access.access_log", "connlog_connections.connection_records")
	if err != nil {
		r.Err = err.Error()
	}
	if r.Made, err = in.partsMade(ctx, "connlog_access", "connlog_connections", "connlog_ops", "connlog_stats"); err != nil {
		r.Err = err.Error()
	}
	return r, in
}
