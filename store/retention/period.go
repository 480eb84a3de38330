package retention

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Period is a lifetime: a number of months or of days. Its text form is
// "12mo", "6mo", "30d", "2w" or "3y" (years and weeks are converted to
// months and days).
type Period struct {
	Months int
	Days   int
}

// Months returns a Period of n months.
func Months(n int) Period { return Period{Months: n} }

// Days returns a Period of n days.
func Days(n int) Period { return Period{Days: n} }

// IsZero reports whether p is unset.
func (p Period) IsZero() bool { return p.Months == 0 && p.Days == 0 }

// String returns the text form, e.g. "12mo".
func (p Period) String() string {
	switch {
	case p.IsZero():
		return ""
	case p.Days == 0:
		return strconv.Itoa(p.Months) + "mo"
	case p.Months == 0:
		return strconv.Itoa(p.Days) + "d"
	}
	return strconv.Itoa(p.Months) + "mo" + strconv.Itoa(p.Days) + "d"
}

// MarshalText implements encoding.TextMarshaler.
func (p Period) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

var periodText = regexp.MustCompile(`^([0-9]{1,4})(mo|d|w|y)$`)

// UnmarshalText parses "12mo", "30d", "2w" or "3y".
func (p *Period) UnmarshalText(b []byte) error {
	m := periodText.FindStringSubmatch(strings.TrimSpace(string(b)))
	if m == nil {
		return fmt.Errorf("lifetime %q: want a number followed by mo, d, w or y (e.g. 12mo, 30d)", b)
	}
	n, _ := strconv.Atoi(m[1])
	switch m[2] {
	case "mo":
		*p = Period{Months: n}
	case "y":
		*p = Period{Months: 12 * n}
	case "w":
		*p = Period{Days: 7 * n}
	default:
		*p = Period{Days: n}
	}
	return nil
}

// AddTo returns t plus the period, as ClickHouse's date arithmetic does it
// up to the end-of-month clamping (a difference of at most three days).
func (p Period) AddTo(t time.Time) time.Time { return t.AddDate(0, p.Months, p.Days) }

// interval renders the period as a ClickHouse interval expression.
func (p Period) interval() string {
	switch {
	case p.Days == 0:
		return "toIntervalMonth(" + strconv.Itoa(p.Months) + ")"
	case p.Months == 0:
		return "toIntervalDay(" + strconv.Itoa(p.Days) + ")"
	}
	return "toIntervalMonth(" + strconv.Itoa(p.Months) + ") + toIntervalDay(" + strconv.Itoa(p.Days) + ")"
}
