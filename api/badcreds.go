package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/connlog/connlog/store/audit"
)

// Requests that come without a credential, or with one connlog does not
// know, have nobody behind them to hold to account, and cost the sender
// nothing. Answering each with an fsynced audit row of its own would let
// anyone who reaches the port fill the disk and keep it busy syncing. So
// they are handled apart, before anything touches the disk:
//
//   - a token bucket per source (the client address; an IPv6 client's /64,
//     since one host holds a whole /64) limits them: past it, 429;
//   - their audit rows are counted in memory, one row per source, minute
//     (the window), endpoint, method, status and reason, with the number of
//     requests (column requests, migration 0012), and written when the
//     window closes, all rows of a window with one fsync; the last window is
//     written at shutdown. A crash loses at most the counts of the window
//     still open: never an authenticated request's row, which is written
//     before its answer as always.
//
// Both tables are bounded (MaxSources): a flood from more sources than that
// shares one bucket and one row per window and status ("*"), and so do the
// rows beyond maxGroupsPerSource per source on average (methods other than
// the standard ones count as "other"), so memory, rows and fsyncs per
// window stay bounded whatever the flood.

// Defaults of [BadCredentialsConfig].
const (
	DefaultBadCredentialsPerSecond = 1
	DefaultBadCredentialsBurst     = 10
	DefaultBadCredentialsWindow    = time.Minute
	DefaultBadCredentialsSources   = 10000
)

// overflowSource stands for every source beyond MaxSources.
const overflowSource = "*"

// BadCredentialsConfig limits and aggregates requests with a missing or
// unknown credential, per source (api/badcreds.go).
type BadCredentialsConfig struct {
	// RequestsPerSecond is the sustained rate of such requests allowed per
	// source; past it, and past Burst, they are answered 429. Zero: the
	// default (1); a negative value disables the limit.
	RequestsPerSecond float64 `yaml:"requests_per_second"`
	// Burst is how many such requests a source may send at once. Default: 10.
	Burst int `yaml:"burst"`
	// AuditWindow is how long their audit rows are counted before they are
	// written: one row per source, endpoint, method, status and reason and
	// window, with the number of requests. A crash loses at most the open
	// window's counts. Default: 1m.
	AuditWindow time.Duration `yaml:"audit_window"`
	// MaxSources bounds the sources tracked at once, by the rate limit and
	// by each audit window; beyond it, new sources share one bucket and one
	// audit row ("*"). Default: 10000.
	MaxSources int `yaml:"max_sources"`
}

func (c BadCredentialsConfig) withDefaults() BadCredentialsConfig {
	if c.RequestsPerSecond == 0 {
		c.RequestsPerSecond = DefaultBadCredentialsPerSecond
	}
	if c.Burst == 0 {
		c.Burst = DefaultBadCredentialsBurst
	}
	if c.AuditWindow == 0 {
		c.AuditWindow = DefaultBadCredentialsWindow
	}
	if c.MaxSources == 0 {
		c.MaxSources = DefaultBadCredentialsSources
	}
	return c
}

func (c BadCredentialsConfig) validate() []error {
	var errs []error
	if math.IsNaN(c.RequestsPerSecond) || math.IsInf(c.RequestsPerSecond, 0) {
		errs = append(errs, fmt.Errorf("api bad credentials requests per second %v: must be a number", c.RequestsPerSecond))
	}
	if c.Burst < 0 {
		errs = append(errs, fmt.Errorf("api bad credentials burst %d: must be positive", c.Burst))
	}
	if c.AuditWindow < 0 || (c.AuditWindow > 0 && c.AuditWindow < 100*time.Millisecond) || c.AuditWindow > time.Hour {
		errs = append(errs, fmt.Errorf("api bad credentials audit window %s: must be between 100ms and 1h", c.AuditWindow))
	}
	if c.MaxSources < 0 {
		errs = append(errs, fmt.Errorf("api bad credentials max sources %d: must be positive", c.MaxSources))
	}
	return errs
}

// sourceKey is what a source is counted by: the client address, or its
// /64 for a global IPv6 address. "" (no address, in tests) is one source.
func sourceKey(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "unknown"
	case a.Is6() && !a.IsLoopback():
		p, _ := a.Prefix(64)
		return p.String()
	default:
		return a.String()
	}
}

// sourceLimiter is a token bucket per source, bounded: buckets refilled to
// the brim are forgotten (a new bucket is the same), and while the table is
// full of busy sources, new ones share the overflow bucket.
type sourceLimiter struct {
	rate, burst float64
	max         int

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

func newSourceLimiter(c BadCredentialsConfig) *sourceLimiter {
	return &sourceLimiter{rate: c.RequestsPerSecond, burst: float64(c.Burst), max: c.MaxSources, buckets: map[string]*bucket{}}
}

// allow takes a token from key's bucket at time now; if there is none, it
// returns how long until there is.
func (l *sourceLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	if l.rate <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.max {
			l.sweep(now)
		}
		if len(l.buckets) >= l.max {
			key = overflowSource
			b = l.buckets[key]
		}
		if b == nil {
			b = &bucket{tokens: l.burst, last: now}
			l.buckets[key] = b
		}
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

// has reports whether key's bucket holds a token at time now, without
// taking it.
func (l *sourceLimiter) has(key string, now time.Time) bool {
	if l.rate <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) < l.max {
			return true
		}
		if b = l.buckets[overflowSource]; b == nil {
			return true
		}
	}
	return b.tokens+max(0, now.Sub(b.last).Seconds())*l.rate >= 1
}

// sweep forgets the buckets that are full again. It runs at most once a
// second, so that a table kept full does not cost a scan per request.
func (l *sourceLimiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < time.Second {
		return
	}
	l.lastSweep = now
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// refusalKey is what aggregated audit rows are grouped by.
type refusalKey struct {
	window           int64 // start of the window, Unix milliseconds
	source           string
	method, endpoint string
	status           int
	reason           string
}

// refusalGroup counts the requests of one key.
type refusalGroup struct {
	n           int
	first, last time.Time
	purpose     string // as stated by the first request
	purposes    bool   // the requests stated different purposes
}

// refusals counts the audit rows of bad-credential requests per window.
type refusals struct {
	window  time.Duration
	sources int // distinct sources per window before overflowSource

	mu      sync.Mutex
	groups  map[refusalKey]*refusalGroup
	perWin  map[int64]*windowUse
	writing sync.Mutex // one write at a time
}

// windowUse is what one window holds: its sources, and its rows.
type windowUse struct {
	sources map[string]bool
	groups  int
}

// maxGroupsPerSource bounds, with MaxSources, the rows of a window: a
// source may vary its method, endpoint and token (a JWT's error text is
// the reason), but not beyond this many rows.
const maxGroupsPerSource = 4

func newRefusals(c BadCredentialsConfig) *refusals {
	return &refusals{window: c.AuditWindow, sources: c.MaxSources, groups: map[refusalKey]*refusalGroup{}, perWin: map[int64]*windowUse{}}
}

// methods are the request methods kept in a counted row; any other (the
// catch-all route answers every method) is counted as "other".
var methods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

// add counts one refused request.
func (a *refusals) add(e audit.Entry, source string) {
	t := e.Time
	k := refusalKey{
		window: t.Truncate(a.window).UnixMilli(), source: source,
		method: e.Method, endpoint: e.Endpoint, status: e.Status, reason: e.Reason,
	}
	if !methods[k.method] {
		k.method = "other"
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	use := a.perWin[k.window]
	if use == nil {
		use = &windowUse{sources: map[string]bool{}}
		a.perWin[k.window] = use
	}
	if !use.sources[source] && len(use.sources) >= a.sources {
		// Too many sources this window to tell apart: one row for the
		// rest, whatever they asked.
		k = overflowKey(k)
	} else {
		use.sources[source] = true
	}
	if a.groups[k] == nil && k.source != overflowSource && use.groups >= a.sources*maxGroupsPerSource {
		k = overflowKey(k)
	}
	g := a.groups[k]
	if g == nil {
		g = &refusalGroup{first: t, purpose: e.Purpose}
		a.groups[k] = g
		use.groups++
	}
	g.n++
	g.first, g.last = minTime(g.first, t), maxTime(g.last, t)
	if e.Purpose != g.purpose {
		g.purposes = true
	}
}

// overflowKey is the row of k's window and status for everything beyond
// the bounds: a few per window, whatever comes.
func overflowKey(k refusalKey) refusalKey {
	return refusalKey{window: k.window, source: overflowSource, status: k.status, reason: "missing or unknown credential"}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// flush writes the rows of the windows closed at now (every window if all)
// to st, all at once, and forgets them once written. On failure they stay,
// for the next flush.
func (a *refusals) flush(ctx context.Context, st Store, now time.Time, all bool) error {
	a.writing.Lock()
	defer a.writing.Unlock()
	open := now.Truncate(a.window).UnixMilli()
	type part struct {
		k refusalKey
		n int
	}
	var parts []part
	var rows []audit.Entry
	a.mu.Lock()
	for k, g := range a.groups {
		if !all && k.window >= open {
			continue
		}
		parts = append(parts, part{k, g.n})
		rows = append(rows, g.entry(k))
	}
	a.mu.Unlock()
	if len(rows) == 0 {
		return nil
	}
	if err := auditMany(ctx, st, rows); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range parts {
		// Requests counted while writing stay, for the next flush.
		if g := a.groups[p.k]; g != nil {
			if g.n -= p.n; g.n <= 0 {
				delete(a.groups, p.k)
			}
		}
	}
	for w := range a.perWin {
		if all || w < open {
			delete(a.perWin, w)
		}
	}
	return nil
}

// entry is the audit row of a group.
func (g *refusalGroup) entry(k refusalKey) audit.Entry {
	e := audit.Entry{
		Time: g.first, Source: k.source, Method: k.method, Endpoint: k.endpoint,
		Status: k.status, Outcome: outcome(k.status), Reason: k.reason, Requests: g.n, Purpose: g.purpose,
	}
	if g.purposes {
		e.Purpose = ""
	}
	if g.n > 1 {
		e.Reason += fmt.Sprintf(" (%d requests counted together, the last at %s", g.n, g.last.UTC().Format(timeFormat))
		if g.purposes {
			e.Reason += ", with different purposes"
		}
		e.Reason += ")"
	}
	if k.source == overflowSource {
		e.Reason += "; more sources or kinds of request than api.bad_credentials.max_sources allows in a window: counted as one"
	}
	return e
}

// auditMany writes rows with one fsync if st can, one by one otherwise.
func auditMany(ctx context.Context, st Store, rows []audit.Entry) error {
	if m, ok := st.(interface {
		AuditMany(context.Context, []audit.Entry) error
	}); ok {
		return m.AuditMany(ctx, rows)
	}
	var errs []error
	for _, e := range rows {
		errs = append(errs, st.Audit(ctx, e))
	}
	return errors.Join(errs...)
}

// refuseBadCredential handles a request refused for a missing or unknown
// credential: counted for its source's audit row, and answered 429 instead
// of ae (401) once its source is over the limit.
func (s *Server) refuseBadCredential(entry audit.Entry, client netip.Addr, ae *apiError) *apiError {
	key := sourceKey(client)
	if ok, retry := s.badLimiter.allow(key, s.now()); !ok {
		secs := max(1, int(math.Ceil(retry.Seconds())))
		ae = &apiError{
			code:       CodeRateLimited,
			msg:        "too many requests without a valid credential from this address; retry in " + strconv.Itoa(secs) + "s",
			reason:     ae.auditReason() + "; over the per-source limit of bad credentials",
			retryAfter: secs,
		}
	}
	entry.Status = httpStatus(ae.code)
	entry.Outcome = outcome(entry.Status)
	entry.Reason = ae.auditReason()
	s.metrics.badCredentials.WithLabelValues(strconv.Itoa(entry.Status)).Inc()
	s.refusals.add(entry, key)
	return ae
}

// runRefusals writes the aggregated rows of each closed window, checking
// every tenth of a window (at most every second), until ctx ends; the
// caller flushes the rest (Serve does, after the last request).
func (s *Server) runRefusals(ctx context.Context) {
	t := time.NewTicker(min(time.Second, s.refusals.window/10))
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		actx, cancel := context.WithTimeout(ctx, auditTimeout)
		err := s.refusals.flush(actx, s.store, s.now(), false)
		cancel()
		if err != nil && !failing && ctx.Err() == nil {
			s.logger.Error("audit rows of refused bad credentials not written yet; retrying", "err", err)
		}
		failing = err != nil
	}
}

// FlushRefusals writes the counted audit rows of bad-credential requests,
// the open window's included. Serve calls it at shutdown; a caller serving
// [Server.Handler] itself calls it before closing the store.
func (s *Server) FlushRefusals(ctx context.Context) error {
	return s.refusals.flush(ctx, s.store, s.now(), true)
}
