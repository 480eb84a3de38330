package ingest

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Pipeline's Prometheus metrics. Labels are bounded: topic,
// partition and result only.
type metrics struct {
	lines         *prometheus.CounterVec
	batchRows     prometheus.Histogram
	writeDuration prometheus.Histogram
	writeRetries  prometheus.Counter
	committed     *prometheus.GaugeVec
	lag           *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		lines: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connlog_ingest_lines_total",
			Help: "Messages handed to the sink, by topic and result (stored or quarantined).",
		}, []string{"topic", "result"}),
		batchRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "connlog_ingest_batch_rows",
			Help:    "Messages per written batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
		writeDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "connlog_ingest_write_duration_seconds",
			Help:    "Duration of one sink write attempt.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}),
		writeRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "connlog_ingest_write_retries_total",
			Help: "Sink writes that failed and were retried.",
		}),
		committed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "connlog_ingest_committed_offset",
			Help: "Next offset committed for the consumer group, per partition; -1 until the first commit.",
		}, []string{"topic", "partition"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "connlog_ingest_lag_messages",
			Help: "Messages in the partition after the last written one (high watermark at fetch time).",
		}, []string{"topic", "partition"}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.lines, m.batchRows, m.writeDuration, m.writeRetries, m.committed, m.lag} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	return m, nil
}
