package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/connlog/connlog/ingest"
	"github.com/connlog/connlog/ingest/kafkaclient"
	"github.com/connlog/connlog/ingest/logline"
	"github.com/connlog/connlog/store"
)

// The Kafka floor: what reading the published lines costs before connlog
// does anything with them. A child process (this binary again, told by
// floorEnv) reads every partition with kafkaclient.Fetcher as connlog serve
// does (one transport per partition, MinBytes 1, MaxBytes the default fetch
// size) and drops each message ("read"), or also checks and parses it into
// a store.Hit with connlog's default parser ("read and parse"); and the
// same with one kafka.Reader per partition (FetchMessage, a queue of 100),
// which connlog used before. Its CPU is the kernel's account of the child
// (user + system, start-up included), so the broker in this process is not
// counted in it, and neither is anything connlog serve does after parsing:
// batching, hashing, encoding, inserting. What connlog serve spends per
// line above the floor is its own write path and the engine.

// floorEnv carries a floorSpec (JSON) to the child.
const floorEnv = "CONNLOG_BENCH_FLOOR"

// floorSpec is what the child reads and how.
type floorSpec struct {
	Brokers    []string
	Topic      string
	Partitions int
	Parse      bool
	// Reader reads with a kafka.Reader instead of kafkaclient.Fetcher.
	Reader bool
}

// floorOut is what the child reports on stdout.
type floorOut struct {
	Messages int64
	Parsed   int64
	Wall     time.Duration // first fetch to last message
	PeakRSS  int64         // the child's VmHWM at the end
}

// floorRun is one child run.
type floorRun struct {
	Name     string
	Messages int64
	Parsed   int64
	Wall     time.Duration
	CPU      time.Duration // the child's user + system time
	Broker   time.Duration // this process (the broker) during the run
	PeakRSS  int64         // the child's VmHWM at the end, bytes (its rusage would count the parent's, which it was forked from)
	Err      string
}

func (f floorRun) linesPerSec() float64 { return float64(f.Messages) / f.Wall.Seconds() }

func (f floorRun) usPerLine() float64 {
	return float64(f.CPU.Nanoseconds()) / 1e3 / float64(max(f.Messages, 1))
}

// benchFloor runs the child rounds times per mode, the modes in turn; each
// run must read the lines published.
func benchFloor(ctx context.Context, brokers []string, topic string, partitions, lines, rounds int) []floorRun {
	exe, err := os.Executable()
	if err != nil {
		return []floorRun{{Name: "read", Err: err.Error()}}
	}
	var out []floorRun
	for range max(rounds, 1) {
		for _, m := range []struct{ parse, reader bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
			r := floorChildRun(ctx, exe, floorSpec{Brokers: brokers, Topic: topic, Partitions: partitions, Parse: m.parse, Reader: m.reader})
			if r.Err == "" && r.Messages != int64(lines) {
				r.Err = fmt.Sprintf("read %d messages of the %d published", r.Messages, lines)
			}
			out = append(out, r)
		}
	}
	return out
}

func floorChildRun(ctx context.Context, exe string, spec floorSpec) floorRun {
	r := floorRun{Name: "read"}
	if spec.Parse {
		r.Name = "read and parse"
	}
	if spec.Reader {
		r.Name = "kafka.Reader: " + r.Name
	}
	js, err := json.Marshal(spec)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), floorEnv+"="+string(js))
	cmd.Stderr = os.Stderr
	self0 := selfCPU()
	stdout, err := cmd.Output()
	r.Broker = selfCPU() - self0
	if err != nil {
		r.Err = err.Error()
		return r
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	var o floorOut
	if err := json.Unmarshal(stdout, &o); err != nil {
		r.Err = fmt.Sprintf("child output %q: %v", stdout, err)
		return r
	}
	r.Messages, r.Parsed, r.Wall, r.PeakRSS = o.Messages, o.Parsed, o.Wall, o.PeakRSS
	return r
}

// floorChild is the child: it reads every partition of spec's topic to its
// high watermark and prints a floorOut.
func floorChild(spec string) error {
	var s floorSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		return fmt.Errorf("%s: %w", floorEnv, err)
	}
	var parser *logline.Parser
	if s.Parse {
		p, err := logline.New(logline.DefaultConfig())
		if err != nil {
			return err
		}
		parser = p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		out  floorOut
		errs []error
	)
	start := time.Now()
	for p := range s.Partitions {
		wg.Go(func() {
			read := floorFetch
			if s.Reader {
				read = floorReader
			}
			n, parsed, err := read(ctx, s, p, parser)
			mu.Lock()
			defer mu.Unlock()
			out.Messages += n
			out.Parsed += parsed
			if err != nil {
				errs = append(errs, fmt.Errorf("partition %d: %w", p, err))
			}
		})
	}
	wg.Wait()
	out.Wall = time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	rss, err := peakRSS(os.Getpid())
	if err != nil {
		return err
	}
	out.PeakRSS = rss
	return json.NewEncoder(os.Stdout).Encode(out)
}

// floorReader reads partition p with a kafka.Reader from its first offset
// to its high watermark, parsing each message when parser is set.
func floorReader(ctx context.Context, s floorSpec, p int, parser *logline.Parser) (n, parsed int64, err error) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:       s.Brokers,
		Topic:         s.Topic,
		Partition:     p,
		MinBytes:      1,
		MaxBytes:      ingest.DefaultFetchMaxBytes,
		QueueCapacity: 100,
		MaxWait:       2 * time.Second,
	})
	defer func() { _ = r.Close() }()
	c := floorCounter{parser: parser}
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return c.n, c.parsed, err
		}
		if c.read(m) {
			return c.n, c.parsed, nil
		}
	}
}

// floorCounter counts the messages of a partition read, and parses them
// when parser is set (into one Hit, reused: a floor, without the batch's
// memory traffic).
type floorCounter struct {
	parser    *logline.Parser
	n, parsed int64
	h         store.Hit
}

// read counts m and reports whether it was the partition's last.
func (c *floorCounter) read(m kafka.Message) bool {
	c.n++
	if c.parser != nil && logline.CheckBytes(m.Value, ingest.DefaultMaxLineBytes) == "" {
		c.h = store.Hit{}
		if c.parser.Parse(m.Topic, m.Value, &c.h) == nil {
			c.parsed++
		}
	}
	return m.Offset+1 >= m.HighWaterMark
}

// bestFloor is the run of mode name with the least CPU per line, or nil.
func bestFloor(runs []floorRun, name string) *floorRun {
	var best *floorRun
	for i := range runs {
		if f := &runs[i]; f.Name == name && f.Err == "" && (best == nil || f.usPerLine() < best.usPerLine()) {
			best = f
		}
	}
	return best
}

// floorFetch is floorReader with kafkaclient.Fetcher, as connlog serve
// reads: one fetch after another through a transport of the partition's
// own, the values copied into shared chunks.
func floorFetch(ctx context.Context, s floorSpec, p int, parser *logline.Parser) (n, parsed int64, err error) {
	t := &kafka.Transport{}
	defer t.CloseIdleConnections()
	f := kafkaclient.NewFetcher(t, s.Brokers, s.Topic, p, ingest.DefaultFetchMaxBytes, 2*time.Second, kafka.FirstOffset)
	c := floorCounter{parser: parser}
	var msgs []kafka.Message
	for {
		if msgs, err = f.Fetch(ctx, msgs[:0]); err != nil {
			return c.n, c.parsed, err
		}
		for _, m := range msgs {
			if c.read(m) {
				return c.n, c.parsed, nil
			}
		}
	}
}
