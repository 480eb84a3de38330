package api

import (
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/connlog/connlog/api/auth"
)

// Defaults of [RateLimitConfig].
const (
	DefaultRequestsPerSecond = 20
	DefaultBurst             = 40
)

// RateLimitConfig limits how fast each credential may call the data
// endpoints: a token bucket per person, refilled at RequestsPerSecond, that
// holds at most Burst requests. A request over the limit is refused with 429
// "rate_limited" and a Retry-After header, and audited like any refusal.
type RateLimitConfig struct {
	// RequestsPerSecond is the sustained rate. Zero: the default (20); a
	// negative value disables the limit (e.g. for benchmarks).
	RequestsPerSecond float64 `yaml:"requests_per_second"`
	// Burst is how many requests may come at once. Default: 40.
	Burst int `yaml:"burst"`
}

func (c RateLimitConfig) withDefaults() RateLimitConfig {
	if c.RequestsPerSecond == 0 {
		c.RequestsPerSecond = DefaultRequestsPerSecond
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	return c
}

func (c RateLimitConfig) validate() []error {
	var errs []error
	if math.IsNaN(c.RequestsPerSecond) || math.IsInf(c.RequestsPerSecond, 0) {
		errs = append(errs, fmt.Errorf("api rate limit requests per second %v: must be a number", c.RequestsPerSecond))
	}
	if c.Burst < 0 {
		errs = append(errs, fmt.Errorf("api rate limit burst %d: must be positive", c.Burst))
	}
	return errs
}

// limiter holds one token bucket per credential name. Credentials are few
// (one per person), so buckets are never evicted.
type limiter struct {
	rate  float64 // tokens per second; <= 0: unlimited
	burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(c RateLimitConfig) *limiter {
	c = c.withDefaults()
	return &limiter{rate: c.RequestsPerSecond, burst: float64(c.Burst), buckets: map[string]*bucket{}}
}

// allow takes a token from who's bucket at time now. If there is none, it
// returns how long until there is.
func (l *limiter) allow(who string, now time.Time) (ok bool, retry time.Duration) {
	if l == nil || l.rate <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[who]
	if b == nil {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[who] = b
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(l.burst, b.tokens+d.Seconds()*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// rateLimit refuses p's request if p is over its rate limit.
func (s *Server) rateLimit(p *auth.Principal) error {
	ok, retry := s.limiter.allow(p.Name, time.Now())
	if ok {
		return nil
	}
	secs := max(1, int(math.Ceil(retry.Seconds())))
	return &apiError{
		code:       CodeRateLimited,
		msg:        "too many requests from this credential; retry in " + strconv.Itoa(secs) + "s",
		reason:     "rate limit exceeded",
		retryAfter: secs,
	}
}
