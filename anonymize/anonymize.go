package anonymize

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/dchest/siphash"
	"github.com/prometheus/client_golang/prometheus"
)

// Request is what the statistics read of one HTTP request. Its fields have
// the names and meaning of the same fields of store.Hit, so ingest fills it
// field by field; this package imports no storage code, and storage may
// import it for the [Audience] row type.
//
// Strings may alias the caller's buffers; Audience values filled from a
// Request alias it in turn.
type Request struct {
	// EventTime is the request time.
	EventTime time.Time
	// ClientIP is the real client address; it is used for geolocation and
	// inside the visitor hash only, and never leaves this package.
	ClientIP netip.Addr
	// Site is the virtual host.
	Site string
	// Path is the request path, possibly with a query string.
	Path string
	// Status is the HTTP status code.
	Status uint16
	// Referer and UserAgent are the request headers, "" if absent.
	Referer, UserAgent string
}

// Signals are the privacy headers of a request, when the log format records
// them: Sec-GPC: 1 sets GPC, DNT: 1 sets DNT. The zero value means "none
// sent or not logged".
type Signals struct {
	GPC bool
	DNT bool
}

// Audience is what the statistics keep of one hit: no address, only a
// truncated Network and a daily visitor hash, both meant to be aggregated
// on the way in (uniqCombined64 over Visitor) and never stored per row.
//
// Strings may alias the Hit they came from (Site, Path), so
// an Audience is valid as long as that Hit is.
type Audience struct {
	Site string
	// Time is the start of the UTC hour of the request.
	Time time.Time
	// Path is the request path without query string or fragment.
	Path string
	// Country is the ISO 3166-1 alpha-2 code, "" if unknown or without
	// geolocation database. Region (first-level subdivision ISO code) and
	// City (English name) are "" unless configured.
	Country, Region, City string
	// Browser and OS are families from a fixed list ("Other" otherwise);
	// Device is desktop, mobile, tablet or other.
	Browser, OS, Device string
	// ReferrerDomain is the registrable domain of the Referer, or
	// (direct), (internal), (ip), (invalid).
	ReferrerDomain string
	// StatusClass is "1xx" to "5xx", or "other".
	StatusClass string
	// Network is the client's truncated network.
	Network Network
	// Visitor is a keyed hash of site, full address and user agent with the
	// key of the request's UTC day: equal for one visitor on one site on one
	// day, unrelated otherwise. 0 means no key was available (the day's key
	// has been destroyed, the day has not started, or the KeyStore failed);
	// aggregate it with uniqCombined64If(Visitor, Visitor != 0).
	Visitor uint64
}

// Exclusion reasons, the values of the reason label of
// connlog_anonymize_excluded_total.
const (
	ReasonBot         = "bot"
	ReasonHealthCheck = "health_check"
	ReasonOptOut      = "opt_out"
)

// Anonymizer turns hits into Audience values. It is safe for concurrent
// use. Call Close to release the geolocation database.
type Anonymizer struct {
	cfg     Config
	keys    *Keys
	ua      *uaClassifier
	geo     *geoDB
	health  map[string]struct{}
	domains *domainCache
	metrics *metrics
	logger  *slog.Logger
}

type metrics struct {
	kept                prometheus.Counter
	bot, health, optOut prometheus.Counter
	uaHit, uaMiss       prometheus.Counter
	unkeyed             prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	excluded := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "connlog_anonymize_excluded_total",
		Help: "Hits left out of the audience statistics, by reason (bot, health_check, opt_out).",
	}, []string{"reason"})
	kept := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "connlog_anonymize_kept_total",
		Help: "Hits turned into audience data.",
	})
	ua := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "connlog_anonymize_user_agent_cache_lookups_total",
		Help: "User-agent classifications, by result (hit: from the cache, miss: parsed).",
	}, []string{"result"})
	unkeyed := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "connlog_anonymize_unkeyed_total",
		Help: "Hits kept without visitor hash because their day's key was unavailable or destroyed.",
	})
	for _, c := range []prometheus.Collector{excluded, kept, ua, unkeyed} {
		if reg == nil {
			break
		}
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register anonymize metrics: %w", err)
		}
	}
	return &metrics{
		kept:    kept,
		bot:     excluded.WithLabelValues(ReasonBot),
		health:  excluded.WithLabelValues(ReasonHealthCheck),
		optOut:  excluded.WithLabelValues(ReasonOptOut),
		uaHit:   ua.WithLabelValues("hit"),
		uaMiss:  ua.WithLabelValues("miss"),
		unkeyed: unkeyed,
	}, nil
}

// New returns an Anonymizer. keys provides the daily visitor keys; reg
// receives the connlog_anonymize_* metrics (nil: not registered); logger
// (nil: discarded) never receives an address, a user agent or a key. A
// configured GeoDatabase that cannot be opened is an error; without one,
// Country, Region and City stay "".
func New(cfg Config, keys *Keys, reg prometheus.Registerer, logger *slog.Logger) (*Anonymizer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if keys == nil {
		return nil, errors.New("anonymize: nil Keys")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	ua, err := newUAClassifier(cfg.UserAgentCacheSize, cfg.HealthCheckUserAgents)
	if err != nil {
		return nil, fmt.Errorf("user agent cache: %w", err)
	}
	a := &Anonymizer{
		cfg:     cfg,
		keys:    keys,
		ua:      ua,
		domains: newDomainCache(),
		health:  make(map[string]struct{}, len(cfg.HealthCheckPaths)),
		metrics: m,
		logger:  logger.With("component", "anonymize"),
	}
	for _, p := range cfg.HealthCheckPaths {
		a.health[p] = struct{}{}
	}
	if cfg.GeoDatabase != "" {
		if a.geo, err = openGeo(cfg.GeoDatabase, cfg.GeoLevel, cfg.GeoCacheSize); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Close releases the geolocation database.
func (a *Anonymizer) Close() error { return a.geo.close() }

// Network truncates addr as configured: IPv4 (and IPv4-mapped IPv6) to
// Config.IPv4PrefixLen bits, IPv6 to Config.IPv6PrefixLen bits. An invalid
// addr gives the zero Network.
func (a *Anonymizer) Network(addr netip.Addr) Network {
	return truncate(addr, a.cfg.IPv4PrefixLen, a.cfg.IPv6PrefixLen)
}

var statusClasses = [6]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

// Audience fills out from h and reports whether the hit belongs in the
// statistics. It returns false, and counts the reason, for health checks
// (configured paths and probe user agents), bots, crawlers, scripts and
// monitoring probes, and, when Config.OptOut is on, requests with sig.GPC
// or sig.DNT. out is overwritten either way; when Audience returns false
// its content is unspecified.
//
// Geolocation happens before truncation; the full address is then used
// only inside the visitor hash and dropped. With warm caches Audience does
// not allocate. It may block up to Config.KeyTimeout on the first hit of a
// new day while the day's key is fetched or created.
func (a *Anonymizer) Audience(h *Request, sig Signals, out *Audience) (keep bool) {
	path := h.Path
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	if path == "" {
		path = "/"
	}
	if _, ok := a.health[path]; ok {
		a.metrics.health.Inc()
		return false
	}
	info, cached := a.ua.classify(h.UserAgent)
	if cached {
		a.metrics.uaHit.Inc()
	} else {
		a.metrics.uaMiss.Inc()
	}
	if info.probe {
		a.metrics.health.Inc()
		return false
	}
	if info.bot || h.UserAgent == "" {
		a.metrics.bot.Inc()
		return false
	}
	if a.cfg.OptOut && (sig.GPC || sig.DNT) {
		a.metrics.optOut.Inc()
		return false
	}

	addr := h.ClientIP.Unmap()
	pl := a.geo.lookup(addr)
	*out = Audience{
		Site:           h.Site,
		Time:           h.EventTime.UTC().Truncate(time.Hour),
		Path:           path,
		Country:        pl.country,
		Region:         pl.region,
		City:           pl.city,
		Browser:        info.browser,
		OS:             info.os,
		Device:         info.device,
		ReferrerDomain: referrerDomain(h.Referer, h.Site, a.domains),
		StatusClass:    statusClasses[statusIndex(h.Status)],
		Network:        truncate(addr, a.cfg.IPv4PrefixLen, a.cfg.IPv6PrefixLen),
		Visitor:        a.visitor(h, addr),
	}
	a.metrics.kept.Inc()
	return true
}

func statusIndex(s uint16) int {
	if s < 100 || s > 599 {
		return 0
	}
	return int(s / 100)
}

// visitor hashes site, address and user agent with the key of the hit's
// UTC day, or returns 0 without key.
func (a *Anonymizer) visitor(h *Request, addr netip.Addr) uint64 {
	day := DayOf(h.EventTime)
	k0, k1, ok := a.keys.cached(day, a.keys.now())
	if !ok {
		var err error
		if k0, k1, err = a.slowKey(day); err != nil {
			a.metrics.unkeyed.Inc()
			if !errors.Is(err, ErrKeyExpired) && !errors.Is(err, errKeyStoreBackoff) {
				a.logger.Warn("visitor key unavailable, hits kept without visitor hash", "day", day.String(), "err", err)
			}
			return 0
		}
	}
	// Site is length-prefixed so that ("ab", "c…") and ("a", "bc…") differ;
	// the address is always 16 bytes (IPv4 as IPv4-mapped).
	var buf [384]byte
	b := buf[:0]
	b = binary.LittleEndian.AppendUint16(b, uint16(min(len(h.Site), 0xffff)))
	b = append(b, h.Site...)
	a16 := addr.As16()
	b = append(b, a16[:]...)
	b = append(b, h.UserAgent...)
	v := siphash.Hash(k0, k1, b)
	if v == 0 {
		v = 1
	}
	return v
}

func (a *Anonymizer) slowKey(day Day) (uint64, uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.KeyTimeout)
	defer cancel()
	return a.keys.halves(ctx, day)
}
