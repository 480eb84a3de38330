package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/connlog/connlog/store"
)

// Sink is what the [Pipeline] needs from storage; *store.Writer satisfies it.
//
// Write must store the whole batch or return an error; the Pipeline retries
// the same batch (same hits, same offsets) until it succeeds, so Write must
// be idempotent, e.g. by deriving insert deduplication tokens from the
// sources. Write must not keep b, its slices or its strings after it
// returns: the Pipeline reuses them for the next batch.
type Sink interface {
	Write(ctx context.Context, b store.Batch) error
}

// Pipeline consumes log lines from Kafka topics through a consumer group,
// parses them and writes them to a [Sink] in batches, committing offsets only
// after the sink acknowledged them. Build it with [New] and call Run.
type Pipeline struct {
	cfg    Config
	sink   Sink
	parser Parser
	m      *metrics
	log    *slog.Logger
	seen   map[partitionKey]bool
}

// New builds a Pipeline from cfg (zero fields take their defaults, see
// [Config]). Its metrics are registered with reg (nil: not exported), and it
// logs through logger (nil: discarded). It does not connect to Kafka.
func New(cfg Config, sink Sink, reg prometheus.Registerer, logger *slog.Logger) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("ingest: brokers: at least one broker address is required")
	}
	if sink == nil {
		return nil, errors.New("ingest: nil sink")
	}
	cfg = cfg.withDefaults()
	parser, err := NewParser(cfg.Format)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Pipeline{cfg: cfg, sink: sink, parser: parser, m: m, log: logger.With("component", "ingest"), seen: map[partitionKey]bool{}}, nil
}

type partitionKey struct {
	topic     string
	partition int
}

// batch is the batch being filled, with what is needed to commit it.
type batch struct {
	store.Batch
	msgs  int
	bytes int
	// last is the last message of each partition, to commit.
	last map[partitionKey]kafka.Message
	// counts per topic: [0] stored, [1] quarantined.
	counts map[string]*[2]int
}

func (b *batch) reset() {
	clear(b.Hits) // drop references to message bytes
	b.Hits = b.Hits[:0]
	clear(b.Quarantine)
	b.Quarantine = b.Quarantine[:0]
	b.msgs, b.bytes = 0, 0
	clear(b.last)
	clear(b.counts)
}

// Run consumes until ctx is cancelled or fetching fails, then stops
// fetching, writes the current batch with a context bounded by
// Config.ShutdownTimeout, commits its offsets and closes the Kafka reader.
// It returns nil after such a drain. If the final batch cannot be written,
// its offsets are not committed (the messages will be consumed again) and
// Run returns the error. Run must not be called concurrently on the same
// Pipeline; calling it again after it returned starts a new group member.
func (p *Pipeline) Run(ctx context.Context) error {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     p.cfg.Brokers,
		GroupID:     p.cfg.GroupID,
		GroupTopics: p.cfg.Topics,
		StartOffset: kafka.FirstOffset,
		MaxBytes:    max(1<<20, p.cfg.MaxLineBytes*2),
		// The broker holds an idle fetch for MaxWait minus kafka-go's 1s RTT
		// allowance; a shorter MaxWait leaves little slack before kafka-go's
		// read deadline and causes spurious "i/o timeout" reconnects
		// (segmentio/kafka-go#726, #998).
		MaxWait:           2 * time.Second,
		CommitInterval:    0, // synchronous commits: we commit only after the sink succeeded
		SessionTimeout:    p.cfg.SessionTimeout,
		HeartbeatInterval: max(time.Second, p.cfg.SessionTimeout/4),
		Logger: kafka.LoggerFunc(func(msg string, args ...any) {
			if p.log.Enabled(context.Background(), slog.LevelDebug) {
				p.log.Debug(fmt.Sprintf(msg, args...))
			}
		}),
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			p.log.Warn(fmt.Sprintf(msg, args...))
		}),
	})

	fetchCtx, stopFetch := context.WithCancel(ctx)
	msgs := make(chan kafka.Message, p.cfg.QueueMessages)
	var fetchErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(msgs)
		for {
			m, err := r.FetchMessage(fetchCtx)
			if err != nil {
				if fetchCtx.Err() == nil {
					fetchErr = fmt.Errorf("fetch: %w", err)
				}
				return
			}
			select {
			case msgs <- m:
			case <-fetchCtx.Done():
				return
			}
		}
	})
	defer func() {
		stopFetch()
		wg.Wait()
	}()

	p.log.Info("consuming", "topics", p.cfg.Topics, "group", p.cfg.GroupID)
	b := &batch{last: map[partitionKey]kafka.Message{}, counts: map[string]*[2]int{}}
	timer := time.NewTimer(p.cfg.FlushInterval)
	timer.Stop()
	var err error
loop:
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				break loop
			}
			if b.msgs == 0 {
				timer.Reset(p.cfg.FlushInterval)
			}
			p.add(b, m)
			if b.msgs >= p.cfg.BatchRows || b.bytes >= p.cfg.BatchBytes {
				timer.Stop()
				if err = p.flush(ctx, r, b); err != nil {
					break loop
				}
			}
		case <-timer.C:
			if err = p.flush(ctx, r, b); err != nil {
				break loop
			}
		case <-ctx.Done():
			break loop
		}
	}

	// Drain: stop fetching, write what we hold, commit, close.
	stopFetch()
	wg.Wait()
	if ctx.Err() != nil || fetchErr != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.ShutdownTimeout)
		err = p.flush(sctx, r, b)
		cancel()
		if err != nil {
			err = fmt.Errorf("shutdown: %d messages not written, offsets not committed: %w", b.msgs, err)
		}
	}
	if cerr := r.Close(); cerr != nil {
		p.log.Warn("close kafka reader", "err", cerr)
	}
	err = errors.Join(fetchErr, err)
	if err != nil {
		p.log.Error("stopped", "err", err)
		return err
	}
	p.log.Info("stopped")
	return nil
}

// add parses m into b, or quarantines it.
func (p *Pipeline) add(b *batch, m kafka.Message) {
	src := store.Source{Topic: m.Topic, Partition: int32(m.Partition), Offset: m.Offset}
	received := m.Time
	if received.IsZero() {
		received = time.Now()
	}
	received = received.UTC().Truncate(time.Millisecond)
	key := partitionKey{m.Topic, m.Partition}
	if _, seen := b.last[key]; !seen {
		// First message of this partition in this batch: make sure the
		// committed gauge exists, at -1 until the first commit.
		labels := []string{m.Topic, strconv.Itoa(m.Partition)}
		if g, err := p.m.committed.GetMetricWithLabelValues(labels...); err == nil && !p.seenPartition(key) {
			g.Set(-1)
		}
	}
	b.last[key] = m
	b.msgs++
	b.bytes += len(m.Value)
	c := b.counts[m.Topic]
	if c == nil {
		c = new([2]int)
		b.counts[m.Topic] = c
	}

	var reason string
	if len(m.Value) > p.cfg.MaxLineBytes {
		reason = fmt.Sprintf("line of %d bytes exceeds max_line_bytes %d", len(m.Value), p.cfg.MaxLineBytes)
	} else {
		b.Hits = append(b.Hits, store.Hit{})
		h := &b.Hits[len(b.Hits)-1]
		// kafka-go allocates a new Value per message, so the strings h
		// aliases stay valid while the batch holds them.
		err := p.parser.Parse(m.Value, h)
		if err == nil {
			h.Source = src
			h.Ingested = received
			c[0]++
			return
		}
		b.Hits = b.Hits[:len(b.Hits)-1]
		reason = err.Error()
	}
	c[1]++
	p.log.Debug("quarantined line", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "reason", reason)
	b.Quarantine = append(b.Quarantine, store.Quarantined{
		Source:   src,
		Received: received,
		Reason:   reason,
		Raw:      bytes.Clone(m.Value),
	})
}

// seenPartition records partitions whose committed gauge was initialised.
// Only Run's goroutine calls it.
func (p *Pipeline) seenPartition(k partitionKey) bool {
	if p.seen[k] {
		return true
	}
	p.seen[k] = true
	return false
}

// flush writes b to the sink, retrying with capped exponential backoff until
// it succeeds or ctx is done, then commits the last offset of each
// partition. On error nothing is committed and b is kept.
func (p *Pipeline) flush(ctx context.Context, r *kafka.Reader, b *batch) error {
	if b.msgs == 0 {
		return nil
	}
	backoff := p.cfg.RetryBackoff
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := p.sink.Write(ctx, b.Batch)
		p.m.writeDuration.Observe(time.Since(start).Seconds())
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("write %d rows: %w", b.msgs, err)
		}
		p.m.writeRetries.Inc()
		p.log.Warn("sink write failed, retrying", "rows", b.msgs, "attempt", attempt, "backoff", backoff, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("write %d rows: %w", b.msgs, errors.Join(err, ctx.Err()))
		}
		backoff = min(backoff*2, p.cfg.MaxRetryBackoff)
	}

	p.m.batchRows.Observe(float64(b.msgs))
	quarantined := 0
	for topic, c := range b.counts {
		p.m.lines.WithLabelValues(topic, "stored").Add(float64(c[0]))
		p.m.lines.WithLabelValues(topic, "quarantined").Add(float64(c[1]))
		quarantined += c[1]
	}
	if quarantined > 0 {
		p.log.Warn("quarantined unparseable lines", "num_quarantined", quarantined, "rows", b.msgs)
	}

	// The rows are stored: commit. A failed commit loses nothing (the
	// messages are consumed again and the sink deduplicates), so it is
	// logged, not returned; the next commit of the partition supersedes it.
	last := make([]kafka.Message, 0, len(b.last))
	for _, m := range b.last {
		last = append(last, m)
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.ShutdownTimeout)
	err := r.CommitMessages(cctx, last...)
	cancel()
	if err != nil {
		p.log.Error("commit offsets", "partitions", len(last), "err", err)
	} else {
		for _, m := range last {
			part := strconv.Itoa(m.Partition)
			p.m.committed.WithLabelValues(m.Topic, part).Set(float64(m.Offset + 1))
			if m.HighWaterMark > 0 {
				p.m.lag.WithLabelValues(m.Topic, part).Set(float64(max(0, m.HighWaterMark-m.Offset-1)))
			}
			p.log.Debug("committed", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset)
		}
	}
	b.reset()
	return nil
}
