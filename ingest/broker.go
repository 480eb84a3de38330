package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/twmb/franz-go/pkg/kfake"
)

// DefaultBrokerAddr is the address the embedded broker listens on by default.
const DefaultBrokerAddr = "127.0.0.1:9092"

// BrokerConfig configures the embedded broker.
type BrokerConfig struct {
	// Addr is the "host:port" to listen on; port 0 picks a free port (see
	// [Broker.Addrs]). The broker advertises this address to clients, so
	// use one they can reach. Default: "127.0.0.1:9092".
	Addr string `yaml:"addr"`
	// Topics are created at start.
	Topics []string `yaml:"topics"`
	// Partitions is the partition count of the created topics and of topics
	// auto-created when a producer first writes to them. Default: 4.
	Partitions int `yaml:"partitions"`
}

// Broker is an embedded Kafka-protocol broker (franz-go's kfake) that any
// shipper, kcat or kafka-go client can publish to and connlog can consume
// from, with consumer groups and committed offsets.
//
// It is for evaluation, tests and small single-host setups only: it runs in
// this process on one host, keeps every message in memory (nothing survives
// a restart, and memory grows with what is published), and has no TLS,
// authentication or replication. Use real Kafka brokers in production.
// Its methods are safe for concurrent use.
type Broker struct {
	c *kfake.Cluster
}

// DefaultBrokerConfig returns the embedded broker's defaults: loopback port
// 9092, four partitions per topic.
func DefaultBrokerConfig() BrokerConfig {
	return BrokerConfig{Addr: DefaultBrokerAddr, Partitions: 4}
}

// Validate reports every problem in c at once.
func (c BrokerConfig) Validate() error {
	var errs []error
	if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			errs = append(errs, fmt.Errorf("embedded_kafka: addr %q: %w", c.Addr, err))
		}
	}
	if c.Partitions < 0 {
		errs = append(errs, fmt.Errorf("embedded_kafka: partitions %d: must be positive", c.Partitions))
	}
	return errors.Join(errs...)
}

// StartBroker starts an embedded broker listening on cfg.Addr. It stops when
// ctx is done or Close is called. logger receives the broker's warnings and
// errors (nil: discarded).
func StartBroker(ctx context.Context, cfg BrokerConfig, logger *slog.Logger) (*Broker, error) {
	if cfg.Addr == "" {
		cfg.Addr = DefaultBrokerAddr
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = 4
	}
	if cfg.Partitions < 0 {
		return nil, fmt.Errorf("start broker: partitions %d: must be positive", cfg.Partitions)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		// kfake listens on 127.0.0.1:<port>; listen on the configured address instead.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, cfg.Addr) }),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(cfg.Partitions),
		kfake.WithLogger(kfakeLogger{logger.With("component", "broker")}),
	}
	if len(cfg.Topics) > 0 {
		opts = append(opts, kfake.SeedTopics(int32(cfg.Partitions), cfg.Topics...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start broker on %s: %w", cfg.Addr, err)
	}
	b := &Broker{c: c}
	context.AfterFunc(ctx, b.Close)
	logger.Info("embedded kafka broker started (in memory, single host, evaluation only)", "addrs", b.Addrs(), "topics", cfg.Topics)
	return b, nil
}

// Addrs returns the addresses the broker listens on, for Config.Brokers.
func (b *Broker) Addrs() []string { return b.c.ListenAddrs() }

// Close stops the broker and drops its messages. It is idempotent.
func (b *Broker) Close() { b.c.Close() }

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
