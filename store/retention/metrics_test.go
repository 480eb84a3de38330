package retention

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestOverdueGaugeCountsOverdueEntriesPerClass(t *testing.T) {
	m, err := NewEnforcementMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	m.observeReport(Report{Entries: []ReportEntry{
		{Class: ClassConnections, Site: "a", Overdue: true},
		{Class: ClassConnections, Site: "b", Overdue: true},
		{Class: ClassAccess, Site: "a"},
	}})
	if got := testutil.ToFloat64(m.overdue.WithLabelValues(ClassConnections)); got != 2 {
		t.Errorf("connections overdue = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.overdue.WithLabelValues(ClassAccess)); got != 0 {
		t.Errorf("access overdue = %v, want 0", got)
	}
	// fixed: a later report without problems brings the gauge back to 0
	m.observeReport(Report{Entries: []ReportEntry{{Class: ClassConnections, Site: "a"}}})
	if got := testutil.ToFloat64(m.overdue.WithLabelValues(ClassConnections)); got != 0 {
		t.Errorf("connections overdue after the fix = %v, want 0", got)
	}
}
