package main

import (
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"
)

// calls returns an fn for latencies that returns, call after call, the
// latencies of els (a negative one fails) and the call's number.
func calls(els ...time.Duration) func() (int, time.Duration, error) {
	c := 0
	return func() (int, time.Duration, error) {
		c++
		if el := els[c-1]; el >= 0 {
			return c, el, nil
		}
		return c, 0, errors.New("failed call " + strconv.Itoa(c))
	}
}

func TestLatenciesSkipsTheWarmUpAndCountsFailures(t *testing.T) {
	ms := time.Millisecond
	// Two warm-up calls (one slow, one failing) count for nothing.
	s, got := latencies(5, 2, calls(900*ms, -1, 3*ms, -1, 1*ms, -1, 2*ms))
	if s.Errors != 2 || s.FirstErr != "failed call 4" {
		t.Errorf("errors %d, first %q; want 2, %q", s.Errors, s.FirstErr, "failed call 4")
	}
	if !slices.Equal(got, []int{3, 5, 7}) {
		t.Errorf("got %v, want the results of calls 3, 5 and 7 in run order", got)
	}
	if s.P50 != 2*ms || s.P99 != 3*ms || s.Max != 3*ms {
		t.Errorf("p50 %s p99 %s max %s, want 2ms 3ms 3ms", s.P50, s.P99, s.Max)
	}
	// Indexes are positions in the measured sequence, failed calls counted.
	if want := []string{"#0 3ms", "#4 2ms", "#2 1ms"}; !slices.Equal(s.Slowest, want) {
		t.Errorf("slowest %q, want %q", s.Slowest, want)
	}
}

func TestLatenciesPercentilesByNearestRank(t *testing.T) {
	for _, c := range []struct {
		k             int
		p50, p99, max time.Duration // of latencies 1..k ms
	}{
		{1, 1, 1, 1},
		{2, 2, 2, 2},
		{99, 50, 99, 99},
		{100, 51, 99, 100},
		{101, 51, 100, 101},
		{200, 101, 198, 200},
	} {
		els := make([]time.Duration, c.k)
		for i := range els {
			// Reverse order, so that the sort matters.
			els[i] = time.Duration(c.k-i) * time.Millisecond
		}
		s, got := latencies(c.k, 0, calls(els...))
		if len(got) != c.k || s.Errors != 0 {
			t.Fatalf("k=%d: %d results, %d errors", c.k, len(got), s.Errors)
		}
		if s.P50 != c.p50*time.Millisecond || s.P99 != c.p99*time.Millisecond || s.Max != c.max*time.Millisecond {
			t.Errorf("k=%d: p50 %s p99 %s max %s, want %dms %dms %dms", c.k, s.P50, s.P99, s.Max, c.p50, c.p99, c.max)
		}
	}
}

func TestLatenciesOfNoSuccessIsZero(t *testing.T) {
	s, got := latencies(2, 1, calls(time.Millisecond, -1, -1))
	if got != nil || s.P50 != 0 || s.P99 != 0 || s.Max != 0 || s.Slowest != nil || s.Errors != 2 {
		t.Errorf("got %v, spread %+v; want nothing measured and 2 errors", got, s)
	}
}
