package ingest

import (
	"errors"
	"fmt"
	"time"

	"github.com/connlog/connlog/ingest/kafkaclient"
	"github.com/connlog/connlog/ingest/logline"
)

// Defaults applied by [New] to zero Config fields.
const (
	DefaultGroupID         = "connlog"
	DefaultFormat          = logline.FormatAuto
	DefaultBatchRows       = 25000
	DefaultBatchBytes      = 16 << 20
	DefaultFlushInterval   = time.Second
	DefaultMaxLineBytes    = 64 << 10
	DefaultQueueMessages   = 1000
	DefaultShutdownTimeout = 10 * time.Second
	DefaultSessionTimeout  = 10 * time.Second
	DefaultRetryBackoff    = 100 * time.Millisecond
	DefaultMaxRetryBackoff = 30 * time.Second
	// DefaultFetchMaxBytes: a partition's fetcher holds a whole fetch
	// until its messages are in the inbox; 1 MiB (a few thousand lines)
	// held half the memory 4 MiB did, at no more CPU per line (the Kafka
	// floor of bench/e2e, BENCHMARKS.md).
	DefaultFetchMaxBytes   = 1 << 20
	DefaultDedupRequestIDs = 100000
)

// Config configures a [Pipeline]. A zero numeric or duration field means its
// default; negative values are invalid.
type Config struct {
	// Brokers are the Kafka bootstrap addresses, "host:port". Required.
	Brokers []string `yaml:"brokers"`
	// Topics are consumed together by one consumer group. Required.
	Topics []string `yaml:"topics"`
	// GroupID is the Kafka consumer group; instances with the same GroupID
	// share the partitions. Default: "connlog".
	GroupID string `yaml:"group_id"`
	// Format names the line format of every topic not listed in
	// Parse.Formats (the "*" entry of Parse.Formats wins over it): auto,
	// combined, main, common, apache_combined, json or log_format.
	// Default: "auto".
	Format string `yaml:"format"`
	// Parse configures the parsers: formats per topic, nginx log_format,
	// JSON field names, trusted proxies, redaction, operation rules. See
	// [logline.Config]; zero fields take its defaults.
	Parse logline.Config `yaml:"parse"`
	// BatchRows is the number of messages of one partition after which its
	// batch is written. The batches of every partition an instance consumes
	// are written together (a write round: one insert per table), so an
	// insert holds up to BatchRows times the partitions assigned. With four
	// partitions, 25,000 stored as many lines/s as 50,000 per partition
	// written apart did, with 14 % less CPU and about half the parts
	// (BENCHMARKS.md). Default: 25000.
	BatchRows int `yaml:"batch_rows"`
	// BatchBytes is the total message size, in bytes, after which a batch is
	// written; with the batch itself it bounds memory per assigned
	// partition. Default: 16 MiB.
	BatchBytes int `yaml:"batch_bytes"`
	// FlushInterval is the longest a message waits in a partial batch.
	// Default: 1s.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// MaxLineBytes is the longest message, in bytes, that is parsed; longer
	// ones go to quarantine. Default: 64 KiB.
	MaxLineBytes int `yaml:"max_line_bytes"`
	// QueueMessages bounds the number of fetched messages of one partition
	// waiting for its batcher; when full, fetching that partition pauses
	// (back-pressure). The batcher takes them all at once, so memory per
	// assigned partition is bounded by twice QueueMessages, one fetch of
	// FetchMaxBytes and one batch (BatchRows, BatchBytes).
	// Default: 1000.
	QueueMessages int `yaml:"queue_messages"`
	// FetchMaxBytes is the most a fetch from one partition returns. It must
	// exceed MaxLineBytes. Default: 1 MiB, or twice MaxLineBytes if that is
	// more.
	FetchMaxBytes int `yaml:"fetch_max_bytes"`
	// DedupRequestIDs is how many request ids ($request_id) of stored lines
	// are remembered, process-wide, so that a line the shipper sent twice is
	// stored once. 0: the default; negative: disabled. Default: 100000.
	DedupRequestIDs int `yaml:"dedup_request_ids"`
	// Sites are the sites (Host header values) that get their own
	// connlog_ingest_last_event_timestamp_seconds series, to alert on a site
	// gone silent; every other site is counted as "other". Default: none.
	Sites []string `yaml:"sites"`
	// ShutdownTimeout bounds the final flush and commit after Run's context
	// is cancelled, and every offset commit. Not a configuration key:
	// connlog derives it from its own shutdown_timeout. Default: 10s.
	ShutdownTimeout time.Duration `yaml:"-"`
	// SessionTimeout is how long the group coordinator waits for a silent
	// member (a crashed or killed instance) before giving its partitions to
	// the others. Brokers accept 6s to 300s by default. Default: 10s.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// RetryBackoff is the first wait after a failed sink write; it doubles
	// per failure up to MaxRetryBackoff. Defaults: 100ms and 30s.
	RetryBackoff time.Duration `yaml:"retry_backoff"`
	// MaxRetryBackoff caps the wait between sink write retries. Default: 30s.
	MaxRetryBackoff time.Duration `yaml:"max_retry_backoff"`
	// SASL authenticates connlog to the brokers. With no brokers (the
	// embedded broker) connlog uses the broker's own consumer identity
	// instead. Default: none.
	SASL kafkaclient.SASL `yaml:"sasl"`
	// TLS encrypts the connections to the brokers. Default: off.
	TLS kafkaclient.TLS `yaml:"tls"`
}

// DefaultConfig returns the configuration with every default filled in,
// consuming the topic "nginx" and no broker yet.
func DefaultConfig() Config {
	return Config{Topics: []string{"nginx"}}.withDefaults()
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.GroupID == "" {
		c.GroupID = DefaultGroupID
	}
	def(&c.BatchRows, DefaultBatchRows)
	def(&c.BatchBytes, DefaultBatchBytes)
	def(&c.MaxLineBytes, DefaultMaxLineBytes)
	def(&c.QueueMessages, DefaultQueueMessages)
	def(&c.FetchMaxBytes, max(DefaultFetchMaxBytes, 2*c.MaxLineBytes))
	def(&c.DedupRequestIDs, DefaultDedupRequestIDs)
	defDur(&c.FlushInterval, DefaultFlushInterval)
	defDur(&c.ShutdownTimeout, DefaultShutdownTimeout)
	defDur(&c.SessionTimeout, DefaultSessionTimeout)
	defDur(&c.RetryBackoff, DefaultRetryBackoff)
	defDur(&c.MaxRetryBackoff, DefaultMaxRetryBackoff)
	return c
}

// Validate reports every problem in c at once (errors.Join). Zero fields
// are valid: they mean the default. No brokers is valid too: connlog serve
// then starts the embedded broker and fills them in; New requires them.
func (c Config) Validate() error {
	var errs []error
	for i, b := range c.Brokers {
		if b == "" {
			errs = append(errs, fmt.Errorf("ingest: brokers[%d]: empty address", i))
		}
	}
	if len(c.Topics) == 0 {
		errs = append(errs, errors.New("ingest: topics: at least one topic is required"))
	}
	for i, t := range c.Topics {
		if t == "" {
			errs = append(errs, fmt.Errorf("ingest: topics[%d]: empty topic name", i))
		}
	}
	if c.Format != "" {
		if err := logline.CheckFormat(c.Format); err != nil {
			errs = append(errs, fmt.Errorf("ingest: unknown log format: %w", err))
		}
	}
	if err := c.parseConfig().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("ingest: parse: %w", err))
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"batch_rows", int64(c.BatchRows)},
		{"batch_bytes", int64(c.BatchBytes)},
		{"max_line_bytes", int64(c.MaxLineBytes)},
		{"queue_messages", int64(c.QueueMessages)},
		{"fetch_max_bytes", int64(c.FetchMaxBytes)},
		{"flush_interval", int64(c.FlushInterval)},
		{"shutdown_timeout", int64(c.ShutdownTimeout)},
		{"session_timeout", int64(c.SessionTimeout)},
		{"retry_backoff", int64(c.RetryBackoff)},
		{"max_retry_backoff", int64(c.MaxRetryBackoff)},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("ingest: %s: must not be negative", f.name))
		}
	}
	maxLine := c.MaxLineBytes
	if maxLine == 0 {
		maxLine = DefaultMaxLineBytes
	}
	if c.FetchMaxBytes > 0 && c.FetchMaxBytes <= maxLine {
		errs = append(errs, errors.New("ingest: fetch_max_bytes: must exceed max_line_bytes"))
	}
	for i, s := range c.Sites {
		if s == "" || s == otherSite {
			errs = append(errs, fmt.Errorf("ingest: sites[%d]: %q is not a site name", i, s))
		}
	}
	if c.RetryBackoff > 0 && c.MaxRetryBackoff > 0 && c.RetryBackoff > c.MaxRetryBackoff {
		errs = append(errs, errors.New("ingest: retry_backoff: must not exceed max_retry_backoff"))
	}
	if err := c.SASL.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("ingest: %w", err))
	}
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("ingest: %w", err))
	}
	return errors.Join(errs...)
}

// parseConfig returns c.Parse with Format folded in: Format applies to every
// topic unless Parse.Formats has a "*" entry; with neither, auto-detection.
func (c Config) parseConfig() logline.Config {
	pc := c.Parse
	if _, ok := pc.Formats[logline.DefaultTopic]; !ok {
		f := c.Format
		if f == "" {
			f = DefaultFormat
		}
		formats := make(map[string]string, len(pc.Formats)+1)
		for k, v := range pc.Formats {
			formats[k] = v
		}
		formats[logline.DefaultTopic] = f
		pc.Formats = formats
	}
	return pc
}
