package legal

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/connlog/connlog/store/internal/chsql"
)

// ErrHoldNotFound is returned for a hold id that does not exist.
var ErrHoldNotFound = errors.New("no such hold")

// ErrHoldReleased is returned when releasing a hold already released.
var ErrHoldReleased = errors.New("hold already released")

var holdID = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// heldRecords is the table (db.table) of the held copies of connection
// records: the columns of connection_records plus hold_id.
func (s *Register) heldRecords() string { return s.db.Connections + ".held_records" }

// CreateHold freezes the connection records matching h.Selector: they are
// copied into hold storage, which no TTL touches, under a new hold id, and
// the hold is entered in the register. h.Reference, h.CreatedBy, the
// selector's network and time window and a future h.Expires are required.
// It returns the hold with its id, creation time and the number of copied
// records.
func (s *Register) CreateHold(ctx context.Context, h Hold) (Hold, error) {
	var errs []error
	if strings.TrimSpace(h.Reference) == "" {
		errs = append(errs, errors.New("reference is required"))
	}
	if strings.TrimSpace(h.CreatedBy) == "" {
		errs = append(errs, errors.New("created_by is required"))
	}
	if !h.Selector.Network.IsValid() {
		errs = append(errs, errors.New("selector network is required"))
	}
	if h.Selector.From.IsZero() || h.Selector.To.IsZero() || !h.Selector.From.Before(h.Selector.To) {
		errs = append(errs, errors.New("selector time window must be non-empty, from before to"))
	}
	if h.Selector.Site != "" && (len(h.Selector.Site) > 253 || !chsql.SiteName.MatchString(h.Selector.Site)) {
		errs = append(errs, fmt.Errorf("selector site %q is not a lower-case host name", h.Selector.Site))
	}
	now := time.Now().UTC()
	if !h.Expires.After(now) {
		errs = append(errs, errors.New("expiry must be in the future"))
	}
	if h.ID == "" {
		h.ID = chsql.NewID()
	} else if !holdID.MatchString(h.ID) {
		errs = append(errs, fmt.Errorf("hold id %q: lower-case letters, digits and -", h.ID))
	}
	if err := errors.Join(errs...); err != nil {
		return Hold{}, fmt.Errorf("create hold: %w", err)
	}
	h.Created = now
	h.Released, h.ReleasedBy = time.Time{}, ""
	lo, hi := chsql.PrefixRange(h.Selector.Network)
	pctx := chsql.WithParams(ctx, map[string]string{
		"id": h.ID, "lo": lo.String(), "hi": hi.String(),
		"from": chsql.Time(h.Selector.From), "to": chsql.Time(h.Selector.To),
		"port": strconv.Itoa(int(h.Selector.Port)), "site": chsql.Escape(h.Selector.Site),
	})
	err := s.conn.Exec(pctx, "INSERT INTO "+s.heldRecords()+" (hold_id, "+s.recordColumns+") SELECT {id:String}, "+s.recordColumns+
		" FROM "+s.db.Connections+".connection_records WHERE client_ip BETWEEN {lo:IPv6} AND {hi:IPv6}"+
		" AND event_time >= {from:DateTime64(3, 'UTC')} AND event_time < {to:DateTime64(3, 'UTC')}"+
		" AND ({port:UInt16} = 0 OR client_port = {port:UInt16}) AND ({site:String} = '' OR site = {site:String})")
	if err != nil {
		return Hold{}, fmt.Errorf("create hold %s: copy records: %w", h.ID, err)
	}
	if err := s.conn.QueryRow(chsql.WithParams(ctx, map[string]string{"id": h.ID}),
		"SELECT count() FROM "+s.heldRecords()+" WHERE hold_id = {id:String}").Scan(&h.Rows); err != nil {
		return Hold{}, fmt.Errorf("create hold %s: count copies: %w", h.ID, err)
	}
	if err := s.writeHold(ctx, h, 1); err != nil {
		return Hold{}, err
	}
	s.logger.Info("legal hold created", "hold", h.ID, "rows", h.Rows, "expires", h.Expires)
	return h, nil
}

func (s *Register) writeHold(ctx context.Context, h Hold, version uint64) error {
	bt, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.db.Ops+".holds (id, version, reference, network, port, site, from_time, to_time, expires, created_by, created_at, released_at, released_by, rows)")
	if err != nil {
		return fmt.Errorf("register hold %s: %w", h.ID, err)
	}
	defer bt.Abort() //nolint:errcheck // no-op once sent
	if err := bt.Append(h.ID, version, h.Reference, h.Selector.Network.String(), h.Selector.Port, h.Selector.Site,
		h.Selector.From, h.Selector.To, h.Expires, h.CreatedBy, h.Created, h.Released, h.ReleasedBy, h.Rows); err != nil {
		return fmt.Errorf("register hold %s: %w", h.ID, err)
	}
	if err := bt.Send(); err != nil {
		return fmt.Errorf("register hold %s: %w", h.ID, err)
	}
	return nil
}

// ListHolds returns every hold, active and released, oldest first.
func (s *Register) ListHolds(ctx context.Context) ([]Hold, error) {
	return s.queryHolds(ctx, "", nil)
}

func (s *Register) queryHolds(ctx context.Context, where string, params map[string]string) ([]Hold, error) {
	if params != nil {
		ctx = chsql.WithParams(ctx, params)
	}
	rows, err := s.conn.Query(ctx, "SELECT id, reference, network, port, site, from_time, to_time, expires, created_by, created_at, released_at, released_by, rows FROM "+
		s.db.Ops+".holds FINAL "+where+" ORDER BY created_at, id")
	if err != nil {
		return nil, fmt.Errorf("list holds: %w", err)
	}
	defer rows.Close()
	var out []Hold
	for rows.Next() {
		var h Hold
		var network string
		if err := rows.Scan(&h.ID, &h.Reference, &network, &h.Selector.Port, &h.Selector.Site, &h.Selector.From, &h.Selector.To,
			&h.Expires, &h.CreatedBy, &h.Created, &h.Released, &h.ReleasedBy, &h.Rows); err != nil {
			return nil, fmt.Errorf("list holds: %w", err)
		}
		h.Selector.Network, _ = netip.ParsePrefix(network)
		if h.Released.Unix() <= 0 {
			h.Released = time.Time{}
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// ReleaseHold deletes the held copies of hold id and records who released
// it and when. The register entry stays (for the audit lifetime).
func (s *Register) ReleaseHold(ctx context.Context, id, by string) error {
	if !holdID.MatchString(id) {
		return fmt.Errorf("release hold %q: %w", id, ErrHoldNotFound)
	}
	if strings.TrimSpace(by) == "" {
		return fmt.Errorf("release hold %s: who releases it is required", id)
	}
	hs, err := s.queryHolds(ctx, "WHERE id = {id:String}", map[string]string{"id": id})
	if err != nil {
		return err
	}
	if len(hs) == 0 {
		return fmt.Errorf("release hold %s: %w", id, ErrHoldNotFound)
	}
	h := hs[0]
	if !h.Released.IsZero() {
		return fmt.Errorf("release hold %s: %w", id, ErrHoldReleased)
	}
	// One partition per hold: releasing drops it, no mutation needed.
	if err := s.conn.Exec(ctx, "ALTER TABLE "+s.heldRecords()+s.onCluster()+" DROP PARTITION "+chsql.Quote(id)); err != nil {
		return fmt.Errorf("release hold %s: delete copies: %w", id, err)
	}
	h.Released, h.ReleasedBy = time.Now().UTC(), by
	if err := s.writeHold(ctx, h, 2); err != nil {
		return err
	}
	s.logger.Info("legal hold released", "hold", id, "by", by)
	return nil
}

// ReleaseExpiredHolds releases the active holds whose expiry has passed.
func (s *Register) ReleaseExpiredHolds(ctx context.Context) ([]string, error) {
	hs, err := s.queryHolds(ctx, "WHERE released_at <= toDateTime64(0, 3, 'UTC') AND expires <= now64(3)", nil)
	if err != nil {
		return nil, err
	}
	var released []string
	var errs []error
	for _, h := range hs {
		if err := s.ReleaseHold(ctx, h.ID, "retention: expired"); err != nil {
			errs = append(errs, err)
			continue
		}
		released = append(released, h.ID)
	}
	return released, errors.Join(errs...)
}
