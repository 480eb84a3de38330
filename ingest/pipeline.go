package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/connlog/connlog/ingest/kafkaclient"
	"github.com/connlog/connlog/ingest/logline"
	"github.com/connlog/connlog/store"
)

// Sink is what the [Pipeline] needs from storage; *store.Store satisfies it.
//
// Write must store every batch given or return an error; the Pipeline
// retries the same batches (same hits, same offsets, same IDs, in the same
// order) until it succeeds, so Write must be idempotent per list of
// Batch.ID, e.g. by deriving the insert deduplication token from them. It
// is given the batches of several partitions at once (a write round, see
// rounds.go), a rebuilt batch ([store.Batch.Rebuilt]) always alone. Write
// must not keep the batches, their slices or their strings after it
// returns: the Pipeline reuses them for the next batches. Write may be
// called concurrently.
type Sink interface {
	Write(ctx context.Context, bs ...store.Batch) error
}

// Preparer is a [Sink] that can do the share of a batch's write that
// depends on the batch alone ahead of it (*store.Store: encode the rows,
// hash the manifests; [WithAudience]: compute the audience rows). The
// Pipeline prepares each new batch in its partition's worker once the batch
// is sealed, while the write round before is being written, so that the
// round only sends. Write must store a batch alike whether it was prepared
// or not, and do the work itself for a batch that was not (a rebuilt one)
// or changed since.
type Preparer interface {
	Prepare(b *store.Batch)
}

// Journal is the intent log that makes batch boundaries survive a crash;
// *store.Store satisfies it. When the [Sink] given to [New] also implements
// Journal, the Pipeline records every batch's offset range, incarnation and
// digest before writing it, and on partition assignment rebuilds the
// batches recorded at or after the committed offset with exactly those
// boundaries (see the package documentation). StoredRows tells how much of
// a rebuilt batch the store already held, so that only new rows are counted
// as stored. Without a Journal, exactly-once holds only within one process.
type Journal interface {
	RecordBatches(ctx context.Context, rs ...store.BatchRange) error
	PendingBatches(ctx context.Context, group, topic string, partition int32, from int64, incarnation string) ([]store.BatchRange, error)
	StoredRows(ctx context.Context, b store.Batch) (hits, quarantined int, err error)
}

// Option configures a [Pipeline] beyond its [Config].
type Option func(*Pipeline)

// Incarnations tells the Pipeline how to name the log behind a topic (its
// topic ID), so that a batch cut from a log that was deleted and created
// again, or from the embedded broker after a restart, never shares an
// identity with one cut from the earlier log at the same offsets. fn must
// be safe for concurrent use and return "" when it cannot tell; kafka-go
// does not expose topic IDs, so for an external Kafka the batch's content
// digest alone tells a replay from new data.
func Incarnations(fn func(topic string) string) Option {
	return func(p *Pipeline) { p.incarnation = fn }
}

// Pipeline consumes log lines from Kafka topics through a consumer group,
// parses them and writes them to a [Sink] in batches, one partition per
// batch, committing offsets only after the sink acknowledged them. Build it
// with [New] and call Run.
type Pipeline struct {
	cfg     Config
	sink    Sink
	journal Journal
	// preparer is sink, when it prepares batches ahead of their write.
	preparer Preparer
	parse    func(topic string, line []byte, h *store.Hit) error
	// redactRaw minimises what is kept of a line that could not be parsed.
	redactRaw   func(line []byte) []byte
	incarnation func(topic string) string
	m           *metrics
	log         *slog.Logger
	dedup       *requestIDs
	sites       map[string]bool
	// dialer connects to the brokers with the configured TLS and SASL;
	// the fetchers' transports connect as it does (TransportOf).
	dialer *kafka.Dialer

	// rounds gathers the partitions' batches into write rounds.
	rounds rounds

	stopping atomic.Bool
	// commitMu serialises commits on the generation's coordinator connection.
	commitMu sync.Mutex
	errMu    sync.Mutex
	errs     []error
}

// New builds a Pipeline from cfg (zero fields take their defaults, see
// [Config]). Its metrics are registered with reg (nil: not exported), and it
// logs through logger (nil: discarded). It does not connect to Kafka.
func New(cfg Config, sink Sink, reg prometheus.Registerer, logger *slog.Logger, opts ...Option) (*Pipeline, error) {
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
	parser, err := logline.New(cfg.parseConfig())
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	m, err := newMetrics(reg, cfg.Sites)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{
		cfg:         cfg,
		sink:        sink,
		parse:       parser.Parse,
		redactRaw:   parser.RedactRaw,
		incarnation: func(string) string { return "" },
		m:           m,
		log:         logger.With("component", "ingest"),
		sites:       map[string]bool{},
	}
	p.rounds.p, p.rounds.slot = p, make(chan struct{}, 1)
	for _, o := range opts {
		o(p)
	}
	if p.dialer, err = kafkaclient.NewDialer(cfg.SASL, cfg.TLS); err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	p.preparer, _ = sink.(Preparer)
	if p.journal = journalOf(sink); p.journal == nil {
		p.log.Warn("the sink keeps no intent log: batches are not rebuilt after a restart, so a crash between a write and its commit can store lines twice")
	}
	if cfg.DedupRequestIDs > 0 {
		p.dedup = newRequestIDs(cfg.DedupRequestIDs)
	}
	for _, s := range cfg.Sites {
		p.sites[s] = true
	}
	return p, nil
}

// Run joins the consumer group and consumes until ctx is cancelled. Each
// assigned partition is consumed by its own worker. When ctx is cancelled,
// every worker stops fetching, writes its current batch with a context
// bounded by Config.ShutdownTimeout and commits it; then the member leaves
// the group. Run returns nil after such a drain, or the errors of the
// batches that could not be written (their offsets are not committed: the
// messages will be consumed again). Run must not be called concurrently on
// the same Pipeline; calling it again after it returned starts a new group
// member.
func (p *Pipeline) Run(ctx context.Context) error {
	p.stopping.Store(false)
	p.errMu.Lock()
	p.errs = nil
	p.errMu.Unlock()
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                p.cfg.GroupID,
		Brokers:           p.cfg.Brokers,
		Dialer:            p.dialer,
		Topics:            p.cfg.Topics,
		StartOffset:       kafka.FirstOffset,
		SessionTimeout:    p.cfg.SessionTimeout,
		HeartbeatInterval: max(time.Second, p.cfg.SessionTimeout/4),
		// A member's workers get ShutdownTimeout to write their last batch
		// when a generation ends; the others wait for that in JoinGroup.
		RebalanceTimeout: p.cfg.ShutdownTimeout + 10*time.Second,
		JoinGroupBackoff: time.Second,
		Logger:           kafka.LoggerFunc(p.kafkaDebug),
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			p.log.Warn(fmt.Sprintf(msg, args...))
		}),
	})
	if err != nil {
		return fmt.Errorf("ingest: consumer group: %w", err)
	}
	p.log.Info("consuming", "topics", p.cfg.Topics, "group", p.cfg.GroupID)
	for {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				break
			}
			p.log.Warn("consumer group generation", "err", err)
			continue
		}
		n := 0
		for topic, parts := range gen.Assignments {
			for _, a := range parts {
				n++
				gen.Start(func(gctx context.Context) { p.consume(gctx, gen, topic, a) })
			}
		}
		p.m.partitions.Set(float64(n))
		p.log.Info("partitions assigned", "generation", gen.ID, "partitions", n)
	}
	// Close ends the generation, waits for every worker's final flush and
	// commit, then leaves the group.
	p.stopping.Store(true)
	if err := group.Close(); err != nil {
		p.log.Warn("close consumer group", "err", err)
	}
	p.m.partitions.Set(0)
	p.errMu.Lock()
	err = errors.Join(p.errs...)
	p.errMu.Unlock()
	if err != nil {
		p.log.Error("stopped", "err", err)
		return err
	}
	p.log.Info("stopped")
	return nil
}

func (p *Pipeline) kafkaDebug(msg string, args ...any) {
	if p.log.Enabled(context.Background(), slog.LevelDebug) {
		p.log.Debug(fmt.Sprintf(msg, args...))
	}
}

// batch is the batch of one partition being filled.
type batch struct {
	store.Batch
	first, last int64
	msgs, bytes int
	// replay is the recorded range this batch rebuilds, nil for a new batch.
	replay *store.BatchRange
	// hwm is the partition's high watermark at the last fetch.
	hwm int64
	// digest hashes the batch's messages as they are added (offset,
	// timestamp, bytes): with the incarnation it tells a replay of the same
	// data from other data at the same offsets.
	digest  hash.Hash
	scratch [20]byte
	stored  int
	quar    int
	dups    int
	redact  int
	reqIDs  []string // request ids claimed in the dedup filter
	claimed bool
}

func (b *batch) reset() {
	clear(b.Hits) // drop references to message bytes
	clear(b.Quarantine)
	// ID, Rebuilt, the audience rows and what was prepared go with the rest.
	b.Batch = store.Batch{Hits: b.Hits[:0], Quarantine: b.Quarantine[:0]}
	b.msgs, b.bytes = 0, 0
	if b.digest == nil {
		b.digest = sha256.New()
	}
	b.digest.Reset()
	b.replay = nil
	b.stored, b.quar, b.dups, b.redact = 0, 0, 0, 0
	clear(b.reqIDs)
	b.reqIDs = b.reqIDs[:0]
	b.claimed = false
}

// worker consumes one partition for one generation.
type worker struct {
	p         *Pipeline
	gen       *kafka.Generation
	topic     string
	partition int
	labels    []string
	// incarnation names the log behind the partition (see [Incarnations]).
	incarnation string
	// last is the offset of the last message handled, -1 before the first:
	// an offset at or below it means the log went back (see handle).
	last int64
	// pending are the recorded ranges not yet rebuilt, by first offset.
	pending []store.BatchRange
	b       batch
	// round is the write round the open batch joined; nil when the worker
	// holds no new batch (none, or a rebuilt one).
	round *round
	// inflight is the round writing handed, the worker's last batch, while
	// the worker goes on with the next; nil when no batch is in flight.
	// handedRange is handed's recorded range. spare holds the buffers of
	// the batch before, for the next hand-over.
	inflight      *round
	handed, spare *batch
	handedRange   store.BatchRange
}

// consume runs one partition's worker until the generation ends (gctx done),
// then flushes and commits what it holds within Config.ShutdownTimeout.
func (p *Pipeline) consume(gctx context.Context, gen *kafka.Generation, topic string, a kafka.PartitionAssignment) {
	w := &worker{p: p, gen: gen, topic: topic, partition: a.ID, labels: []string{topic, strconv.Itoa(a.ID)}, last: -1}
	w.b.reset()
	log := p.log.With("topic", topic, "partition", a.ID)
	// wctx outlives the generation by ShutdownTimeout: the final flush and
	// commit run in it; after it no write starts.
	wctx, cancel := context.WithCancel(context.WithoutCancel(gctx))
	defer cancel()
	stopTimer := context.AfterFunc(gctx, func() { time.AfterFunc(p.cfg.ShutdownTimeout, cancel) })
	defer stopTimer()

	if a.Offset >= 0 {
		p.m.committed.WithLabelValues(w.labels...).Set(float64(a.Offset))
	} else {
		p.m.committed.WithLabelValues(w.labels...).Set(-1) // -1 until the first commit
	}
	if err := w.readPending(gctx, max(a.Offset, 0)); err != nil {
		// The generation ended before the intent log could be read:
		// nothing was consumed, nothing to flush.
		log.Warn("partition released before its intent log was read", "err", err)
		return
	}

	// A transport of the partition's own: a fetch waiting on an idle
	// partition holds its connection, and must not hold the others'.
	t := kafkaclient.TransportOf(p.dialer)
	defer t.CloseIdleConnections()
	// The broker holds an idle fetch for MaxWait; kafka-go's Reader needed
	// 2s to leave slack before its read deadline (segmentio/kafka-go#726,
	// #998), and the fetcher keeps it: an idle partition costs a fetch
	// every two seconds.
	f := kafkaclient.NewFetcher(t, p.cfg.Brokers, topic, a.ID, p.cfg.FetchMaxBytes, 2*time.Second, a.Offset)

	in := newInbox(p.cfg.QueueMessages, func(n int) { p.m.queued.Add(float64(n)) })
	fetchCtx, stopFetch := context.WithCancel(gctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer in.close()
		var msgs []kafka.Message
		for {
			var err error
			msgs, err = f.Fetch(fetchCtx, msgs[:0])
			// The inbox counts messages as they enter it: the rest of a
			// fetch is the "one fetch of FetchMaxBytes" of
			// Config.QueueMessages' bound.
			if in.putAll(fetchCtx, msgs) < len(msgs) {
				return
			}
			if errors.Is(err, kafka.OffsetOutOfRange) && fetchCtx.Err() == nil {
				// An offset past the end of the log means the log went
				// back (topic deleted and created again, broker restarted
				// without its data): start again from the first offset it
				// holds; the batcher sees the offsets go back and treats
				// what follows as another log (see handle).
				log.Warn("offset out of range: consuming the partition again from its first offset", "offset", f.Offset())
				f.SetOffset(kafka.FirstOffset)
				continue
			}
			if err != nil {
				if fetchCtx.Err() == nil {
					log.Warn("fetch", "err", err)
					select {
					case <-time.After(time.Second):
						continue
					case <-fetchCtx.Done():
					}
				}
				return
			}
		}
	})
	defer func() {
		stopFetch()
		wg.Wait()
		in.take(nil) // the gauge forgets what was left
	}()

	timer := time.NewTimer(p.cfg.FlushInterval)
	timer.Stop()
	var err error
	var taken []kafka.Message
loop:
	for {
		select {
		case <-in.ready:
			var closed bool
			taken, closed = in.take(taken)
			if closed {
				break loop
			}
			for i := range taken {
				if gctx.Err() != nil {
					// Released: the rest is the next owner's, as the
					// messages still waiting are.
					break loop
				}
				if err = w.handle(wctx, taken[i], timer); err != nil {
					break loop
				}
			}
		case <-timer.C:
			if w.b.replay == nil {
				if err = w.flush(wctx); err != nil {
					break loop
				}
			}
		case <-w.roundStart():
			// Another partition's batch is due: this one goes with it.
			timer.Stop()
			if err = w.flush(wctx); err != nil {
				break loop
			}
		case <-w.inflightDone():
			if err = w.settle(); err != nil {
				break loop
			}
		case <-gctx.Done():
			break loop
		}
	}
	timer.Stop()
	stopFetch()
	if err == nil && w.b.msgs > 0 {
		if w.b.replay != nil {
			// A rebuilt batch must be written whole, with its recorded
			// boundaries: leave it to the next owner.
			log.Info("partition released mid-rebuild; the next owner rebuilds the batch", "id", w.b.replay.ID())
		} else {
			err = w.flush(wctx)
		}
	}
	// The batch in flight, if any: its round ends within the writer's
	// context (the generation's, plus ShutdownTimeout).
	if serr := w.settle(); err == nil {
		err = serr
	}
	unwritten := w.b.msgs
	w.release()
	if err != nil {
		err = fmt.Errorf("ingest %s/%d: %d messages not written, offsets not committed: %w", topic, a.ID, unwritten, err)
		log.Error("partition released with an unwritten batch", "err", err)
		if p.stopping.Load() {
			p.errMu.Lock()
			p.errs = append(p.errs, err)
			p.errMu.Unlock()
		}
	}
	p.m.lag.DeleteLabelValues(w.labels...)
}

// release gives back the request ids the unwritten batch claimed, and its
// place in a write round.
func (w *worker) release() {
	if w.b.claimed && w.p.dedup != nil {
		w.p.dedup.release(w.b.reqIDs)
	}
	if w.round != nil {
		w.p.rounds.leave(w.round)
		w.round = nil
	}
	w.b.reset()
}

// inflightDone is closed when the round writing the worker's batch in
// flight is written; nil (never ready) when none is in flight.
func (w *worker) inflightDone() <-chan struct{} {
	if w.inflight == nil {
		return nil
	}
	return w.inflight.done
}

// settle waits for the worker's batch in flight, if any, to be written,
// then accounts for it and commits it; or, if its round failed, returns why
// (nothing of it is committed: it is consumed again, rebuilt from the
// intent log, by the partition's next owner).
func (w *worker) settle() error {
	r, h := w.inflight, w.handed
	if r == nil {
		return nil
	}
	<-r.done
	w.inflight, w.handed = nil, nil
	if r.err != nil {
		if h.claimed && w.p.dedup != nil {
			w.p.dedup.release(h.reqIDs)
		}
		err := fmt.Errorf("batch %s of %d messages: %w", h.ID, h.msgs, r.err)
		h.reset()
		w.spare = h
		return err
	}
	w.stored(h, w.handedRange, 0, 0)
	w.spare = h
	return nil
}

// takeBatch moves the open batch out into a batch of its own, for a round
// to write, and leaves the worker an empty one (the spare's buffers when
// there is one).
func (w *worker) takeBatch() *batch {
	h := w.spare
	if h == nil {
		h = new(batch)
	}
	w.spare = nil
	*h, w.b = w.b, *h
	w.b.reset()
	return h
}

// roundStart is closed when the write round of the worker's open batch
// starts; nil (never ready) when it holds no new batch.
func (w *worker) roundStart() <-chan struct{} {
	if w.round == nil {
		return nil
	}
	return w.round.start
}

// readPending reads the recorded ranges of the partition from offset from
// on, for the log now behind it.
func (w *worker) readPending(ctx context.Context, from int64) error {
	p := w.p
	w.incarnation = p.incarnation(w.topic)
	w.pending = nil
	if p.journal == nil {
		return nil
	}
	err := p.retry(ctx, "read intent log", func(ctx context.Context) error {
		var err error
		w.pending, err = p.journal.PendingBatches(ctx, p.cfg.GroupID, w.topic, int32(w.partition), from, w.incarnation)
		return err
	})
	if err != nil {
		return err
	}
	if len(w.pending) > 0 {
		p.log.Info("rebuilding recorded batches", "topic", w.topic, "partition", w.partition, "batches", len(w.pending), "from", w.pending[0].First, "to", w.pending[len(w.pending)-1].Last)
	}
	return nil
}

// regressed handles offsets that went back while consuming (the topic was
// deleted and created again, or the broker lost its log): what the batch
// holds came from the earlier log and is written as it is; what follows is
// another log, with its own incarnation and recorded ranges.
func (w *worker) regressed(ctx context.Context, m kafka.Message) error {
	p := w.p
	p.m.regressions.WithLabelValues(w.topic).Inc()
	p.log.Warn("offsets went back: the partition's log was replaced; storing its messages as new data",
		"topic", w.topic, "partition", w.partition, "offset", m.Offset, "previous_offset", w.last)
	if w.b.msgs > 0 {
		if err := w.flush(ctx); err != nil {
			return err
		}
	}
	return w.readPending(ctx, m.Offset)
}

// handle adds m to the batch, flushing before or after as the batch
// boundaries require.
func (w *worker) handle(ctx context.Context, m kafka.Message, timer *time.Timer) error {
	b := &w.b
	if m.Offset <= w.last {
		if err := w.regressed(ctx, m); err != nil {
			return err
		}
	}
	w.last = m.Offset
	if b.msgs > 0 {
		switch {
		case b.replay != nil && m.Offset > b.replay.Last:
			// Offsets missing at the end of the recorded range (compaction,
			// transaction markers): the batch holds what the log holds.
			if err := w.flush(ctx); err != nil {
				return err
			}
		case b.replay == nil && len(w.pending) > 0 && m.Offset >= w.pending[0].First:
			// Never let a new batch run into a recorded one.
			if err := w.flush(ctx); err != nil {
				return err
			}
		}
	}
	if b.msgs == 0 {
		// Drop recorded ranges entirely before m (already committed, or
		// their messages are gone).
		for len(w.pending) > 0 && w.pending[0].Last < m.Offset {
			w.pending = w.pending[1:]
		}
		b.first = m.Offset
		if len(w.pending) > 0 && w.pending[0].First <= m.Offset && m.Offset <= w.pending[0].Last {
			r := w.pending[0]
			b.replay = &r
		} else {
			timer.Reset(w.p.cfg.FlushInterval)
			w.round = w.p.rounds.join()
		}
	}
	w.p.add(b, m)
	switch {
	case b.replay != nil:
		if m.Offset >= b.replay.Last || m.Offset+1 >= m.HighWaterMark {
			return w.flush(ctx)
		}
	case b.msgs >= w.p.cfg.BatchRows || b.bytes >= w.p.cfg.BatchBytes:
		timer.Stop()
		return w.flush(ctx)
	}
	return nil
}

// add parses m into b, or quarantines it.
func (p *Pipeline) add(b *batch, m kafka.Message) {
	src := store.Source{Topic: m.Topic, Partition: int32(m.Partition), Offset: m.Offset}
	received := m.Time
	if received.IsZero() {
		received = time.Now()
	}
	// The message time, not the clock: a rebuilt batch carries the same rows.
	received = received.UTC().Truncate(time.Millisecond)
	b.last = m.Offset
	b.hwm = m.HighWaterMark
	b.msgs++
	b.bytes += len(m.Value)
	// The timestamp as Kafka gave it: a rebuilt batch hashes the same.
	binary.BigEndian.PutUint64(b.scratch[0:8], uint64(m.Offset))
	binary.BigEndian.PutUint64(b.scratch[8:16], uint64(m.Time.UnixMilli()))
	binary.BigEndian.PutUint32(b.scratch[16:20], uint32(len(m.Value)))
	b.digest.Write(b.scratch[:])
	b.digest.Write(m.Value)

	reason := p.reject(m.Value)
	if reason == "" {
		b.Hits = append(b.Hits, store.Hit{})
		h := &b.Hits[len(b.Hits)-1]
		// The fetcher copies every value into memory nothing writes
		// again, so the strings h aliases stay valid while the batch
		// holds them.
		err := p.parse(m.Topic, m.Value, h)
		if err == nil {
			h.Source = src
			h.Ingested = received
			return
		}
		b.Hits = b.Hits[:len(b.Hits)-1]
		reason = err.Error()
	}
	p.log.Debug("quarantined line", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "reason", reason)
	// Minimisation reaches quarantine: secrets are redacted from the raw
	// line as they would have been from the parsed one. RedactRaw copies
	// when it changes something; otherwise the message's bytes are kept
	// (the fetcher's copy, which nothing writes again, and the batch holds it).
	b.Quarantine = append(b.Quarantine, store.Quarantined{
		Source:   src,
		Received: received,
		Reason:   reason,
		Raw:      p.redactRaw(m.Value),
	})
}

// reject returns why a message is not even handed to the parser
// ([logline.CheckBytes]): too long, binary or not UTF-8.
func (p *Pipeline) reject(v []byte) string {
	return logline.CheckBytes(v, p.cfg.MaxLineBytes)
}

// flush writes the batch: records its range in the intent log (a new batch
// only; a rebuilt one is already recorded), writes it with its ID, retrying
// with capped exponential backoff until it succeeds or ctx is done, then
// commits the offset after it. A new batch is written in a round with the
// other partitions' (see rounds.go); a rebuilt one alone. On error nothing
// is committed and the batch is kept.
func (w *worker) flush(ctx context.Context) error {
	p, b := w.p, &w.b
	if b.msgs == 0 {
		return nil
	}
	// Batches are committed in order: the one in flight first (a new batch
	// for a round is sealed and prepared before, see below).
	if w.round == nil {
		if err := w.settle(); err != nil {
			return err
		}
	}
	digest := hex.EncodeToString(b.digest.Sum(nil))
	r := store.BatchRange{Group: p.cfg.GroupID, Topic: w.topic, Partition: int32(w.partition), First: b.first, Last: b.last,
		Incarnation: w.incarnation, Digest: digest}
	record := b.replay == nil
	if b.replay != nil {
		r = *b.replay
		if r.Digest != "" && r.Digest != digest {
			// The recorded range came back with other content: it is
			// new data, not a replay, and gets its own identity.
			p.m.regressions.WithLabelValues(w.topic).Inc()
			p.log.Warn("a recorded batch range came back with other content: storing it as new data",
				"topic", w.topic, "partition", w.partition, "first", r.First, "last", r.Last)
			r.First, r.Last, r.Digest, record = b.first, b.last, digest, true
		}
	}
	b.ID = r.ID()
	if !b.claimed {
		b.claimed = true
		w.dedupe()
	}
	if w.round != nil {
		// Sealed: prepared here, while the batch in flight is still being
		// written, then handed over once that one is settled.
		if p.preparer != nil {
			p.preparer.Prepare(&b.Batch)
		}
		if err := w.settle(); err != nil {
			return err
		}
		rd := w.round
		w.round = nil
		h := w.takeBatch()
		w.inflight, w.handed, w.handedRange = p.rounds.handOver(ctx, rd, h, r), h, r
		return nil
	}
	if record && p.journal != nil {
		if err := p.retry(ctx, "record batch "+b.ID, func(ctx context.Context) error { return p.journal.RecordBatches(ctx, r) }); err != nil {
			return err
		}
	}
	// A rebuilt batch may have been stored, wholly or in part, before the
	// crash or rebalance, alone or in a round: the store looks for its rows
	// and writes only the others, which alone are counted as stored.
	b.Rebuilt = !record
	var heldHits, heldQuar int
	if !record && p.journal != nil {
		if err := p.retry(ctx, "count stored rows of batch "+b.ID, func(ctx context.Context) error {
			var err error
			heldHits, heldQuar, err = p.journal.StoredRows(ctx, b.Batch)
			return err
		}); err != nil {
			return err
		}
	}
	if err := p.retry(ctx, "write batch "+b.ID, func(ctx context.Context) error {
		start := time.Now()
		err := p.sink.Write(ctx, b.Batch)
		p.m.writeDuration.Observe(time.Since(start).Seconds())
		return err
	}); err != nil {
		return err
	}
	if b.replay != nil {
		p.m.replayed.Inc()
		w.pending = w.pending[1:]
	}
	w.stored(b, r, heldHits, heldQuar)
	return nil
}

// stored accounts for b, the worker's batch sealed as r, once it is stored
// (of which heldHits hits and heldQuar quarantined messages were already),
// commits the offset after it and resets b.
func (w *worker) stored(b *batch, r store.BatchRange, heldHits, heldQuar int) {
	p := w.p
	p.m.batchRows.Observe(float64(b.msgs))
	p.m.batchBytes.Observe(float64(b.bytes))
	p.m.lines.WithLabelValues(w.topic, "stored").Add(float64(len(b.Hits) - heldHits))
	p.m.lines.WithLabelValues(w.topic, "quarantined").Add(float64(len(b.Quarantine) - heldQuar))
	if held := heldHits + heldQuar; held > 0 {
		p.m.lines.WithLabelValues(w.topic, "already_stored").Add(float64(held))
		p.log.Info("rebuilt batch: rows the store already held were dropped as duplicates", "batch", b.ID, "already_stored", held, "stored", b.msgs-b.dups-held)
	}
	if b.dups > 0 {
		p.m.lines.WithLabelValues(w.topic, "duplicate").Add(float64(b.dups))
	}
	if n := countRedacted(b.Hits); n > 0 {
		p.m.lines.WithLabelValues(w.topic, "redacted").Add(float64(n))
	}
	if len(b.Quarantine) > 0 {
		p.log.Warn("quarantined unparseable lines", "num_quarantined", len(b.Quarantine), "rows", b.msgs, "batch", b.ID)
	}
	p.observeSites(b.Hits)

	// The rows are stored: commit. A failed commit loses nothing (the
	// batch is rebuilt from the intent log and the sink drops it as a
	// duplicate), so it is logged, not returned.
	commitTo := r.Last + 1
	p.commitMu.Lock()
	err := w.gen.CommitOffsets(map[string]map[int]int64{w.topic: {w.partition: commitTo}})
	p.commitMu.Unlock()
	if err != nil {
		p.log.Warn("commit offset", "topic", w.topic, "partition", w.partition, "offset", commitTo, "err", err)
	} else {
		p.m.committed.WithLabelValues(w.labels...).Set(float64(commitTo))
		if b.hwm > 0 {
			p.m.lag.WithLabelValues(w.labels...).Set(float64(max(0, b.hwm-commitTo)))
		}
	}
	b.claimed = false // the ids are stored: keep them in the filter
	b.reset()
}

// dedupe drops the hits whose request id the filter has seen, once per
// batch (before the first write attempt, so that retries write the same rows).
func (w *worker) dedupe() {
	d, b := w.p.dedup, &w.b
	if d == nil {
		return
	}
	kept := b.Hits[:0]
	d.mu.Lock()
	for i := range b.Hits {
		h := b.Hits[i]
		if h.RequestID != "" {
			if d.has(h.RequestID) {
				b.dups++
				continue
			}
			d.add(h.RequestID)
			b.reqIDs = append(b.reqIDs, h.RequestID)
		}
		kept = append(kept, h)
	}
	d.mu.Unlock()
	clear(b.Hits[len(kept):])
	b.Hits = kept
}

// observeSites moves the last-event-time gauge of each configured site (the
// others count as "other": the site comes from the Host header, so an
// attacker could otherwise create any number of series).
func (p *Pipeline) observeSites(hits []store.Hit) {
	var other time.Time
	var last map[string]time.Time
	for i := range hits {
		h := &hits[i]
		if p.sites[h.Site] {
			if last == nil {
				last = map[string]time.Time{}
			}
			if h.EventTime.After(last[h.Site]) {
				last[h.Site] = h.EventTime
			}
		} else if h.EventTime.After(other) {
			other = h.EventTime
		}
	}
	for s, t := range last {
		p.m.setLastEvent(s, t)
	}
	if !other.IsZero() {
		p.m.setLastEvent(otherSite, other)
	}
}

// retry runs f until it succeeds, with capped exponential backoff, or until
// ctx is done.
func (p *Pipeline) retry(ctx context.Context, what string, f func(context.Context) error) error {
	backoff := p.cfg.RetryBackoff
	for attempt := 1; ; attempt++ {
		err := f(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, errors.Join(err, context.Cause(ctx)))
		}
		p.m.writeRetries.Inc()
		p.log.Warn("failed, retrying", "what", what, "attempt", attempt, "backoff", backoff, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w", what, errors.Join(err, ctx.Err()))
		}
		backoff = min(backoff*2, p.cfg.MaxRetryBackoff)
	}
}
