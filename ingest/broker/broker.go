package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/connlog/connlog/ingest/kafkaclient"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DefaultAddr is the address the embedded broker listens on by default.
const DefaultAddr = "127.0.0.1:9092"

// DefaultGroupID is the consumer group whose commits the broker honours
// when [Config].GroupID is empty: the pipeline's default (ingest's
// DefaultGroupID, which a test keeps equal).
const DefaultGroupID = "connlog"

// Defaults of the embedded broker's memory bounds.
const (
	DefaultBrokerRetainBytes = 64 << 20
	DefaultBrokerRetainAge   = 10 * time.Minute
	DefaultBrokerMaxBytes    = 256 << 20
)

// trimInterval is how often the broker measures what it holds, drops
// committed messages and switches produce refusal on or off.
const trimInterval = 200 * time.Millisecond

// Config configures the embedded broker.
type Config struct {
	// Addr is the "host:port" to listen on; port 0 picks a free port (see
	// [Broker.Addrs]). The broker advertises this address to clients, so
	// use one they can reach. Default: "127.0.0.1:9092".
	Addr string `yaml:"addr"`
	// Topics are created at start; they are the only topics that exist (no
	// topic is created on demand). Default: kafka.topics.
	Topics []string `yaml:"topics"`
	// Partitions is the partition count of each topic. Default: 4.
	Partitions int `yaml:"partitions"`
	// RetainBytes bounds what the broker keeps of messages connlog's
	// consumer group has already committed: once it holds more than this
	// many bytes, every committed message is dropped. Messages not yet
	// committed are never dropped. Default: 67108864 (64 MiB).
	RetainBytes int64 `yaml:"retain_bytes"`
	// RetainAge drops committed messages once they are older than this.
	// Default: 10m.
	RetainAge time.Duration `yaml:"retain_age"`
	// MaxBytes bounds the broker's memory: a produce request that would
	// take it past this many bytes of messages (all of them uncommitted,
	// since committed ones are dropped past RetainBytes) is refused with the
	// retriable KAFKA_STORAGE_ERROR, so shippers keep their lines and retry
	// (back-pressure) until connlog has stored and committed enough. Must
	// not be below RetainBytes. Default: 268435456 (256 MiB).
	MaxBytes int64 `yaml:"max_bytes"`

	// GroupID is the consumer group that Users.Consumer may use and whose
	// commits say what may be dropped. Default: [DefaultGroupID].
	GroupID string `yaml:"-"`
	// Users are the SASL identities. Zero: random passwords, valid until
	// the broker closes (tests); connlog serve passes the ones it keeps in
	// its data directory ([LoadOrCreateUsers]).
	Users Users `yaml:"-"`
}

// Users are the embedded broker's two SASL identities. Their
// mechanism is SCRAM-SHA-512. Nobody else can connect: there is no
// anonymous access and no administrator.
type Users struct {
	// Shipper may write to the broker's topics and do nothing else: no
	// fetch, no consumer group, no other topic, no topic creation.
	Shipper kafkaclient.SASL
	// Consumer is connlog's own identity: it may read the topics and use
	// the consumer group, and not write.
	Consumer kafkaclient.SASL
}

// Broker is an embedded Kafka-protocol broker (franz-go's kfake) that
// shippers, kcat and kafka-go clients can publish to with the shipper
// identity and connlog consumes from with its own, with consumer groups and
// committed offsets. Every connection must authenticate (SASL
// SCRAM-SHA-512, see [Users]); only the configured topics exist.
//
// It is for evaluation, tests and small single-host setups only: it runs in
// this process on one host without TLS or replication, and keeps messages
// in memory (nothing survives a restart). Memory is bounded by
// Config.MaxBytes: committed messages are dropped (RetainBytes,
// RetainAge) and producers are pushed back beyond it. Use real Kafka
// brokers in production. Its methods are safe for concurrent use.
type Broker struct {
	c      *kfake.Cluster
	cfg    Config
	addrs  []string
	log    *slog.Logger
	held   atomic.Int64 // bytes at the last measurement
	refuse *kfake.FaultHandle
	gate   produceGate
	// refusing is whether produce was refused during the last trim period.
	refusing bool
	refused  int

	// seen are, per partition, the high watermarks observed and when: the
	// messages below a mark were produced before its time (for RetainAge).
	seen map[topicPartition][]mark

	stop      chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once
}

type topicPartition struct {
	topic     string
	partition int32
}

type mark struct {
	at     time.Time
	offset int64
}

// DefaultConfig returns the embedded broker's defaults: loopback port
// 9092, four partitions per topic, 64 MiB or 10 minutes of committed
// messages kept, 256 MiB at most.
func DefaultConfig() Config {
	return Config{
		Addr: DefaultAddr, Partitions: 4,
		RetainBytes: DefaultBrokerRetainBytes, RetainAge: DefaultBrokerRetainAge, MaxBytes: DefaultBrokerMaxBytes,
	}
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Addr == "" {
		c.Addr = d.Addr
	}
	if c.Partitions == 0 {
		c.Partitions = d.Partitions
	}
	if c.RetainBytes == 0 {
		c.RetainBytes = d.RetainBytes
	}
	if c.RetainAge == 0 {
		c.RetainAge = d.RetainAge
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = max(d.MaxBytes, c.RetainBytes)
	}
	if c.GroupID == "" {
		c.GroupID = DefaultGroupID
	}
	return c
}

// Validate reports every problem in c at once. Zero fields mean their
// defaults.
func (c Config) Validate() error {
	var errs []error
	if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			errs = append(errs, fmt.Errorf("embedded_kafka: addr %q: %w", c.Addr, err))
		}
	}
	if c.Partitions < 0 {
		errs = append(errs, fmt.Errorf("embedded_kafka: partitions %d: must be positive", c.Partitions))
	}
	if c.RetainBytes < 0 || c.MaxBytes < 0 || c.RetainAge < 0 {
		errs = append(errs, errors.New("embedded_kafka: retain_bytes, retain_age and max_bytes must not be negative"))
	}
	if d := c.withDefaults(); d.MaxBytes < d.RetainBytes {
		errs = append(errs, fmt.Errorf("embedded_kafka: max_bytes (%d) must not be below retain_bytes (%d)", d.MaxBytes, d.RetainBytes))
	}
	for i, t := range c.Topics {
		if t == "" {
			errs = append(errs, fmt.Errorf("embedded_kafka: topics[%d]: empty topic name", i))
		}
	}
	return errors.Join(errs...)
}

// Start starts an embedded broker listening on cfg.Addr with the
// topics cfg.Topics (at least one). It stops when ctx is done or Close is
// called. Its metrics are registered with reg (nil: not exported):
// connlog_broker_held_bytes and connlog_broker_produce_refused_total.
// logger receives the broker's warnings and errors (nil: discarded); it
// never receives a password.
func Start(ctx context.Context, cfg Config, reg prometheus.Registerer, logger *slog.Logger) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}
	cfg = cfg.withDefaults()
	if len(cfg.Topics) == 0 {
		return nil, errors.New("start broker: no topic")
	}
	if cfg.Users == (Users{}) {
		users, err := newUsers()
		if err != nil {
			return nil, fmt.Errorf("start broker: %w", err)
		}
		cfg.Users = users
	}
	if err := cfg.Users.validate(); err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "broker")
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		// kfake listens on 127.0.0.1:<port>; listen on the configured address instead.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, cfg.Addr) }),
		// No kfake.AllowAutoTopicCreation: the seeded topics are all there is.
		kfake.SeedTopics(int32(cfg.Partitions), cfg.Topics...),
		kfake.WithLogger(kfakeLogger{logger}),
		kfake.EnableSASL(),
		kfake.EnableACLs(),
		kfake.User(kafkaclient.MechanismSCRAMSHA512, cfg.Users.Shipper.Username, string(cfg.Users.Shipper.Password), shipperACLs(cfg.Topics)...),
		kfake.User(kafkaclient.MechanismSCRAMSHA512, cfg.Users.Consumer.Username, string(cfg.Users.Consumer.Password), consumerACLs(cfg.Topics, cfg.GroupID)...),
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start broker on %s: %w", cfg.Addr, err)
	}
	b := &Broker{
		c: c, cfg: cfg, addrs: c.ListenAddrs(), log: logger,
		seen: map[topicPartition][]mark{}, stop: make(chan struct{}), stopped: make(chan struct{}),
	}
	// Back-pressure: a produce that would take the broker past MaxBytes is
	// answered with a retriable error. Faults apply after authentication.
	b.gate.max = cfg.MaxBytes
	b.refuse = c.Fault(kfake.Fault{
		Keys:  []kmsg.Key{kmsg.Produce},
		Err:   kerr.KafkaStorageError,
		Count: -1,
		When:  b.gate.refuse,
	})
	if err := b.advertiseSASLHandshakeV0(ctx); err != nil {
		b.c.Close()
		return nil, fmt.Errorf("start broker: %w", err)
	}
	if reg != nil {
		if err := registerMetrics(reg, b); err != nil {
			b.c.Close()
			return nil, fmt.Errorf("start broker: %w", err)
		}
	}
	go b.run()
	context.AfterFunc(ctx, b.Close)
	logger.Info("embedded kafka broker started (in memory, single host, evaluation only; SASL SCRAM-SHA-512 required)",
		"addrs", b.addrs, "topics", cfg.Topics, "shipper_user", cfg.Users.Shipper.Username,
		"max_bytes", cfg.MaxBytes, "retain_bytes", cfg.RetainBytes, "retain_age", cfg.RetainAge.String())
	return b, nil
}

// advertiseSASLHandshakeV0 makes the broker's ApiVersions answer list
// SaslHandshake from version 0, as Kafka does. kfake serves only v1 (the
// one followed by SaslAuthenticate, which every current client uses) and
// says so; librdkafka (rsyslog, syslog-ng, Vector, Fluent Bit, kcat) then
// concludes the broker has no SASL handshake at all and refuses to
// authenticate. The answer is kfake's own, fetched once, with that one
// range widened; a client that really sends a v0 handshake is still
// refused by kfake.
func (b *Broker) advertiseSASLHandshakeV0(ctx context.Context) error {
	var base atomic.Pointer[kmsg.ApiVersionsResponse]
	b.c.ControlKey(int16(kmsg.ApiVersions), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		b.c.KeepControl()
		req, ok := kreq.(*kmsg.ApiVersionsRequest)
		have := base.Load()
		// kfake's own answer for what it would treat specially: versions
		// it does not serve, and v5's cluster check (KIP-1242).
		if !ok || have == nil || req.Version > have.Version || (req.Version >= 5 && (req.ClusterID != nil || req.NodeID != -1)) {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
		resp.ApiKeys = slices.Clone(have.ApiKeys)
		for i := range resp.ApiKeys {
			if resp.ApiKeys[i].ApiKey == int16(kmsg.SASLHandshake) {
				resp.ApiKeys[i].MinVersion = 0
			}
		}
		resp.SupportedFeatures = slices.Clone(have.SupportedFeatures)
		resp.FinalizedFeatures = slices.Clone(have.FinalizedFeatures)
		resp.FinalizedFeaturesEpoch = have.FinalizedFeaturesEpoch
		return resp, nil, true
	})
	// ApiVersions needs no authentication.
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addrs...))
	if err != nil {
		return err
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(rctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		return fmt.Errorf("read the broker's API versions: %w", err)
	}
	base.Store(resp)
	return nil
}

// shipperACLs let the shipper write to the topics (Write implies Describe,
// which metadata needs, and lets an idempotent producer get its producer
// ID) and nothing else.
func shipperACLs(topics []string) []kfake.ACL {
	var acls []kfake.ACL
	for _, t := range topics {
		acls = append(acls, kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: t,
			Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationWrite, Allow: true})
	}
	return acls
}

// consumerACLs let connlog read the topics and use its consumer group
// (Read implies Describe: metadata, offsets, coordinator lookup).
func consumerACLs(topics []string, group string) []kfake.ACL {
	acls := []kfake.ACL{{Resource: kmsg.ACLResourceTypeGroup, Name: group,
		Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationRead, Allow: true}}
	for _, t := range topics {
		acls = append(acls, kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: t,
			Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationRead, Allow: true})
	}
	return acls
}

func registerMetrics(reg prometheus.Registerer, b *Broker) error {
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "connlog_broker_held_bytes",
			Help: "Bytes of messages the embedded Kafka broker holds in memory (measured every 200ms); produce that would exceed embedded_kafka.max_bytes is refused.",
		}, func() float64 { return float64(b.held.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "connlog_broker_produce_refused_total",
			Help: "Produce requests (counted per topic and partition) the embedded Kafka broker refused because they would exceed embedded_kafka.max_bytes (back-pressure: shippers retry).",
		}, func() float64 { return float64(b.refuse.Hits()) }),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register broker metrics: %w", err)
		}
	}
	return nil
}

// Addrs returns the addresses the broker listens on, for ingest.Config.Brokers.
func (b *Broker) Addrs() []string { return slices.Clone(b.addrs) }

// Shipper returns the produce-only identity, for shippers and
// `connlog publish`.
func (b *Broker) Shipper() kafkaclient.SASL { return b.cfg.Users.Shipper }

// Consumer returns connlog's own consumer identity, for ingest.Config.SASL.
func (b *Broker) Consumer() kafkaclient.SASL { return b.cfg.Users.Consumer }

// Cluster returns the kfake cluster the broker runs, for tests that reshape
// topics (delete and create one again) or read partition state; connlog
// serve does not use it.
func (b *Broker) Cluster() *kfake.Cluster { return b.c }

// Topics returns the broker's topics (Config.Topics).
func (b *Broker) Topics() []string { return slices.Clone(b.cfg.Topics) }

// HeldBytes returns the bytes of messages the broker held at its last
// measurement (at most 200ms ago).
func (b *Broker) HeldBytes() int64 { return b.held.Load() }

// Close stops the broker and drops its messages. It is idempotent.
func (b *Broker) Close() {
	b.closeOnce.Do(func() {
		close(b.stop)
		<-b.stopped // the trim loop talks to the cluster: stop it first
		b.c.Close()
	})
}

// run measures and trims until Close.
func (b *Broker) run() {
	defer close(b.stopped)
	t := time.NewTicker(trimInterval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case now := <-t.C:
			b.trim(now)
		}
	}
}

// trim drops the committed messages past RetainBytes or RetainAge, then
// records what is held and whether produce must be refused. Only messages
// below the consumer group's committed offset are ever dropped: connlog
// commits an offset after the store acknowledged the lines before it.
func (b *Broker) trim(now time.Time) {
	counted := b.gate.pending.Load()
	var commits map[string]map[int32]kfake.GroupCommit
	if g := b.c.GroupInfo(b.cfg.GroupID); g != nil {
		commits = g.Commits
	}
	type part struct {
		topic string
		info  *kfake.PartitionInfo
	}
	var parts []part
	var held int64
	for _, t := range b.cfg.Topics {
		for _, p := range b.c.PartitionInfos(t) {
			parts = append(parts, part{t, p})
			held += p.NumBytes
		}
	}
	overRetain := held > b.cfg.RetainBytes
	cutoff := now.Add(-b.cfg.RetainAge)
	trimmed := false
	for _, p := range parts {
		key := topicPartition{p.topic, p.info.Partition}
		b.seen[key] = observe(b.seen[key], now, cutoff, p.info.HighWatermark)
		c, ok := commits[p.topic][p.info.Partition]
		if !ok || c.Offset <= p.info.LogStartOffset {
			continue
		}
		to := c.Offset
		if !overRetain {
			to = min(to, producedBefore(b.seen[key], cutoff))
		}
		if to <= p.info.LogStartOffset {
			continue
		}
		if err := b.c.DeleteRecords(p.topic, p.info.Partition, to); err != nil {
			b.log.Warn("drop committed messages", "topic", p.topic, "partition", p.info.Partition, "offset", to, "err", err)
			continue
		}
		trimmed = true
	}
	if trimmed {
		held = 0
		for _, t := range b.cfg.Topics {
			for _, p := range b.c.PartitionInfos(t) {
				held += p.NumBytes
			}
		}
	}
	b.held.Store(held)
	b.gate.measured(held, counted)
	refused := b.refuse.Hits()
	switch now := refused > b.refused; {
	case now && !b.refusing:
		b.log.Warn("embedded kafka broker full: refusing produce (retriable) until connlog has stored and committed more", "held_bytes", held, "max_bytes", b.cfg.MaxBytes)
	case !now && b.refusing:
		b.log.Info("embedded kafka broker accepts produce again", "held_bytes", held, "max_bytes", b.cfg.MaxBytes)
	}
	b.refusing, b.refused = refused > b.refused, refused
}

// produceGate decides, for each produce request, whether it would take the
// broker past its bound: held bytes at the last measurement plus what was
// let through since. It errs on the side of refusing (a request let
// through but then refused by an ACL still counts until the next
// measurement).
type produceGate struct {
	max     int64
	held    atomic.Int64 // at the last measurement
	pending atomic.Int64 // let through since
	// last and lastRefused are only used on kfake's cluster goroutine: a
	// fault's When runs there, once per topic and partition of a request.
	last        kmsg.Request
	lastRefused bool
}

// refuse is the Fault's When: it runs on the cluster goroutine, must not
// block and must not call into the cluster.
func (g *produceGate) refuse(req kmsg.Request) bool {
	if req == g.last {
		return g.lastRefused
	}
	g.last = req
	var size int64
	if pr, ok := req.(*kmsg.ProduceRequest); ok {
		for _, t := range pr.Topics {
			for _, p := range t.Partitions {
				size += int64(len(p.Records))
			}
		}
	}
	now := g.held.Load() + g.pending.Load()
	// An empty broker takes any request, so one bigger than max cannot
	// block producers forever.
	g.lastRefused = now > 0 && now+size > g.max
	if !g.lastRefused {
		g.pending.Add(size)
	}
	return g.lastRefused
}

// measured records a measurement of held bytes; counted is what pending
// was before it (those requests are in held now: produce requests and
// measurements are serialised on the cluster goroutine).
func (g *produceGate) measured(held, counted int64) {
	g.held.Store(held)
	g.pending.Add(-counted)
}

// observe appends the high watermark hw seen at now (when it moved) and
// forgets marks that no longer matter: of those at or before cutoff, only
// the newest is kept.
func observe(marks []mark, now, cutoff time.Time, hw int64) []mark {
	if len(marks) == 0 || marks[len(marks)-1].offset != hw {
		marks = append(marks, mark{at: now, offset: hw})
	}
	i := 0
	for i+1 < len(marks) && !marks[i+1].at.After(cutoff) {
		i++
	}
	return marks[i:]
}

// producedBefore returns an offset below which every message was produced
// at or before cutoff: the high watermark last seen by then, 0 if none.
func producedBefore(marks []mark, cutoff time.Time) int64 {
	if len(marks) == 0 || marks[0].at.After(cutoff) {
		return 0
	}
	return marks[0].offset
}

// kfakeLogger forwards kfake's warnings and errors to slog; its info and
// debug messages (one per request) go to Debug.
type kfakeLogger struct{ l *slog.Logger }

func (k kfakeLogger) Logf(level kfake.LogLevel, msg string, args ...any) {
	var lvl slog.Level
	switch level {
	case kfake.LogLevelError:
		lvl = slog.LevelError
	case kfake.LogLevelWarn:
		lvl = slog.LevelWarn
	default:
		lvl = slog.LevelDebug
	}
	if k.l.Enabled(context.Background(), lvl) {
		k.l.Log(context.Background(), lvl, fmt.Sprintf(msg, args...))
	}
}
