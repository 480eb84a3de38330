package store

import (
	"context"

	"github.com/connlog/connlog/store/retention"
)

// retentionHolds gives the retention enforcement and report the holds of s.
type retentionHolds struct{ s *Store }

func (h retentionHolds) ReleaseExpired(ctx context.Context) ([]string, error) {
	return h.s.ReleaseExpiredHolds(ctx)
}

func (h retentionHolds) List(ctx context.Context) ([]retention.Hold, error) {
	hs, err := h.s.ListHolds(ctx)
	out := make([]retention.Hold, 0, len(hs))
	for _, x := range hs {
		out = append(out, retention.Hold{ID: x.ID, Reference: x.Reference, Site: x.Selector.Site, Expires: x.Expires, Released: x.Released})
	}
	return out, err
}
