package api

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the API's Prometheus metrics. Labels are bounded: endpoint is a
// route pattern, code an HTTP status; never an address or a raw path.
type metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	auditFailures *prometheus.CounterVec
	// badCredentials counts the requests refused for a missing or unknown
	// credential, by status: 401 (503: a JWT that cannot be checked), or
	// 429 past the per-source limit.
	badCredentials *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connlog_api_requests_total",
			Help: "HTTP requests answered, by route pattern and HTTP status code.",
		}, []string{"endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "connlog_api_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"endpoint"}),
		auditFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connlog_api_audit_failures_total",
			Help: "Data requests refused with 503 because their audit row could not be written.",
		}, []string{"endpoint"}),
		badCredentials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connlog_api_bad_credentials_total",
			Help: "Requests refused for a missing or unknown credential, by status: 401 (503 when a JWT cannot be checked, the identity provider being down), or 429 past the per-source limit. Their audit rows are counted per source and window (api.bad_credentials).",
		}, []string{"code"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.auditFailures, m.badCredentials} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register api metrics: %w", err)
		}
	}
	return m, nil
}
