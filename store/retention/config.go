package retention

import (
	"errors"
	"fmt"
	"time"

	"github.com/connlog/connlog/store/internal/chsql"
)

// Config sets the lifetime of each data class. Zero fields take
// the defaults of Default.
type Config struct {
	// Connections: connection records (legal obligation). Default 12mo.
	Connections Period `yaml:"connections"`
	// Access: the security access log. Default 6mo.
	Access Period `yaml:"access"`
	// AccessDetail, if set, blanks the access log's query string, referer,
	// user agent and forwarded-for chain after this lifetime (a column TTL);
	// the rest of the record stays for Access. Default: unset.
	AccessDetail Period `yaml:"access_detail"`
	// Quarantine: unparsable lines. Default 30d.
	Quarantine Period `yaml:"quarantine"`
	// Audit: the audit trail. Default 3y.
	Audit Period `yaml:"audit"`
	// Statistics: audience statistics (no IP). Default 25mo.
	Statistics Period `yaml:"statistics"`
	// Sites overrides the lifetimes of connection records and access log
	// for some sites (exact host names).
	Sites []Site `yaml:"sites"`
	// EnforceInterval is how often the enforcement pass runs. Default 1h.
	EnforceInterval time.Duration `yaml:"enforce_interval"`
	// Grace is how long past its lifetime a record may still be stored
	// before the retention report flags it (daily partitions, lazy merges).
	// Default 1 day.
	Grace time.Duration `yaml:"grace"`
}

// Site overrides lifetimes for one site; zero fields inherit.
type Site struct {
	// Site is the host name (the Host header, exactly) the lifetimes apply to.
	Site string `yaml:"site"`
	// Connections is the site's lifetime of connection records. Default: retention.connections.
	Connections Period `yaml:"connections"`
	// Access is the site's lifetime of the access log. Default: retention.access.
	Access Period `yaml:"access"`
}

// Default returns the lifetimes of PRODUCT.md.
func Default() Config {
	return Config{
		Connections:     Months(12),
		Access:          Months(6),
		Quarantine:      Days(30),
		Audit:           Months(36),
		Statistics:      Months(25),
		EnforceInterval: time.Hour,
		Grace:           24 * time.Hour,
	}
}

// WithDefaults returns r with every unset lifetime, the enforcement
// interval and the grace period taken from Default.
func (r Config) WithDefaults() Config {
	d := Default()
	for _, f := range []struct{ p, def *Period }{
		{&r.Connections, &d.Connections}, {&r.Access, &d.Access}, {&r.Quarantine, &d.Quarantine},
		{&r.Audit, &d.Audit}, {&r.Statistics, &d.Statistics},
	} {
		if f.p.IsZero() {
			*f.p = *f.def
		}
	}
	if r.EnforceInterval == 0 {
		r.EnforceInterval = d.EnforceInterval
	}
	if r.Grace == 0 {
		r.Grace = d.Grace
	}
	return r
}

// siteName is what a site override may be called: a lower-case host name.
// The name ends up quoted in a TTL expression, so it is also checked.

// Validate reports every problem with the lifetimes.
func (r Config) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		p    Period
	}{{"connections", r.Connections}, {"access", r.Access}, {"quarantine", r.Quarantine}, {"audit", r.Audit}, {"statistics", r.Statistics}} {
		if f.p.Months < 0 || f.p.Days < 0 {
			errs = append(errs, fmt.Errorf("store.retention.%s: negative lifetime", f.name))
		}
	}
	ref := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	if r.AccessDetail.Months < 0 || r.AccessDetail.Days < 0 {
		errs = append(errs, errors.New("store.retention.access_detail: negative lifetime"))
	} else if acc := r.WithDefaults().Access; !r.AccessDetail.IsZero() && acc.AddTo(ref).Before(r.AccessDetail.AddTo(ref)) {
		errs = append(errs, fmt.Errorf("store.retention.access_detail: %s is longer than the access log's lifetime %s", r.AccessDetail, acc))
	}
	if r.EnforceInterval < 0 || r.Grace < 0 {
		errs = append(errs, errors.New("store.retention: enforce_interval and grace must not be negative"))
	}
	seen := map[string]bool{}
	for i, s := range r.Sites {
		if len(s.Site) > 253 || !chsql.SiteName.MatchString(s.Site) {
			errs = append(errs, fmt.Errorf("store.retention.sites[%d]: %q is not a lower-case host name", i, s.Site))
		}
		if seen[s.Site] {
			errs = append(errs, fmt.Errorf("store.retention.sites[%d]: %q appears twice", i, s.Site))
		}
		seen[s.Site] = true
		if s.Connections.Months < 0 || s.Connections.Days < 0 || s.Access.Months < 0 || s.Access.Days < 0 {
			errs = append(errs, fmt.Errorf("store.retention.sites[%d]: negative lifetime", i))
		}
	}
	return errors.Join(errs...)
}
