package ingest

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// otherSite is the site label of every site not listed in Config.Sites.
const otherSite = "other"

// metrics are the Pipeline's Prometheus metrics. Labels are bounded: topic,
// partition, result, and site only for the sites listed in the
// configuration (the Host header is attacker-controlled). No label carries
// an address, a path or a user agent.
type metrics struct {
	lines         *prometheus.CounterVec
	batchRows     prometheus.Histogram
	batchBytes    prometheus.Histogram
	writeDuration prometheus.Histogram
	writeRetries  prometheus.Counter
	replayed      prometheus.Counter
	regressions   *prometheus.CounterVec
	committed     *prometheus.GaugeVec
	lag           *prometheus.GaugeVec
	queued        prometheus.Gauge
	partitions    prometheus.Gauge
	lastEvent     *prometheus.GaugeVec

	lastMu sync.Mutex
	last   map[string]float64
}

func newMetrics(reg prometheus.Registerer, sites []string) (*metrics, error) {
	m := &metrics{
		lines: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connlog_ingest_lines_total",
			Help: "Messages handled, by topic and result: stored (rows the store did not hold yet), quarantined (likewise, in quarantine), already_stored (rows of a batch rebuilt after a crash or rebalance that the store already held, dropped as duplicates), duplicate (request id already stored, not written again); redacted counts stored lines in which a secret was redacted.",
		}, []string{"topic", "result"}),
		batchRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "connlog_ingest_batch_rows",
			Help:    "Messages per written batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
		batchBytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "connlog_ingest_batch_bytes",
			Help:    "Message bytes per written batch.",
			Buckets: prometheus.ExponentialBuckets(1024, 4, 9),
		}),
		writeDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "connlog_ingest_write_duration_seconds",
			Help:    "Duration of one sink write attempt (the inserts of one batch).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}),
		writeRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "connlog_ingest_write_retries_total",
			Help: "Store operations (intent log, batch writes) that failed and were retried.",
		}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "connlog_ingest_rebuilt_batches_total",
			Help: "Batches rebuilt from the intent log after a crash or rebalance and written again (the store drops what was already inserted).",
		}),
		regressions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connlog_ingest_offset_regressions_total",
			Help: "Times a partition's offsets came back with other data: a recorded range rebuilt with other content (topic deleted and created again, log truncated), or offsets going back while consuming. The data is stored as new.",
		}, []string{"topic"}),
		committed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "connlog_ingest_committed_offset",
			Help: "Next offset committed for the consumer group, per partition; -1 until the first commit.",
		}, []string{"topic", "partition"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "connlog_ingest_lag_messages",
			Help: "Messages in the partition after the last committed one (high watermark at fetch time), for partitions this instance consumes.",
		}, []string{"topic", "partition"}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "connlog_ingest_queued_messages",
			Help: "Fetched messages waiting for their partition's batcher (at most queue_messages per assigned partition).",
		}),
		partitions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "connlog_ingest_partitions",
			Help: "Partitions assigned to this instance.",
		}),
		lastEvent: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "connlog_ingest_last_event_timestamp_seconds",
			Help: "Newest request time stored, per site listed in kafka.sites (0: none yet); every other site counts as \"other\".",
		}, []string{"site"}),
	}
	for _, s := range sites {
		m.lastEvent.WithLabelValues(s).Set(0)
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.lines, m.batchRows, m.batchBytes, m.writeDuration, m.writeRetries, m.replayed, m.regressions, m.committed, m.lag, m.queued, m.partitions, m.lastEvent} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	return m, nil
}

// setLastEvent raises the site's last-event gauge to t (never lowers it:
// batches of different partitions finish in any order).
func (m *metrics) setLastEvent(site string, t time.Time) {
	g := m.lastEvent.WithLabelValues(site)
	v := float64(t.UnixMilli()) / 1000
	m.lastMu.Lock()
	defer m.lastMu.Unlock()
	if m.last == nil {
		m.last = map[string]float64{}
	}
	if v > m.last[site] {
		m.last[site] = v
		g.Set(v)
	}
}
