package main

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// spread is what latencies measured of a run of calls.
type spread struct {
	Errors   int    // measured calls that failed
	FirstErr string // the first one's error
	// P50 is the median (the upper one of an even count), P99 the 99th
	// percentile by nearest rank (the ⌈0.99·k⌉-th fastest of the k calls
	// that succeeded), Max the slowest; all zero when none succeeded.
	P50, P99, Max time.Duration
	// Slowest are the 3 slowest calls that succeeded, slowest first, as
	// "#index duration" (index in the measured sequence, failed calls
	// counted), to tell a slow start from scattered spikes.
	Slowest []string
}

// latencies calls fn warmup+n times, one at a time, and measures the last
// n: warm-up calls count for nothing, failed ones only in Errors. fn returns
// what it got, the latency of what it times (it may leave its own
// bookkeeping out) and its error. got is what the measured calls that
// succeeded returned, in run order.
func latencies[T any](n, warmup int, fn func() (T, time.Duration, error)) (s spread, got []T) {
	type timed struct {
		i  int
		el time.Duration
	}
	var times []timed
	for i := range warmup + n {
		v, el, err := fn()
		if i < warmup {
			continue
		}
		if err != nil {
			s.Errors++
			if s.FirstErr == "" {
				s.FirstErr = err.Error()
			}
			continue
		}
		times = append(times, timed{i - warmup, el})
		got = append(got, v)
	}
	k := len(times)
	if k == 0 {
		return s, nil
	}
	// Stable: of equal latencies, the later call is listed first in Slowest.
	slices.SortStableFunc(times, func(a, b timed) int { return cmp.Compare(a.el, b.el) })
	s.P50 = times[k/2].el
	s.P99 = times[(k*99+99)/100-1].el // index ⌈0.99·k⌉-1
	s.Max = times[k-1].el
	for j := k - 1; j >= max(0, k-3); j-- {
		s.Slowest = append(s.Slowest, fmt.Sprintf("#%d %s", times[j].i, times[j].el.Round(100*time.Microsecond)))
	}
	return s, got
}
