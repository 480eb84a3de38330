package api

import (
	"context"

	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/audit"
)

// The search methods of fakeStore: the access log streams its hits; the
// other searches find nothing. searchErr fails them all.

func (f *fakeStore) EachAccess(ctx context.Context, q store.AccessQuery, fn func(*store.Hit) error) error {
	hits, err := f.SearchAccess(ctx, q)
	if err != nil {
		return err
	}
	for i := range hits {
		if err := fn(&hits[i]); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeStore) failure() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.searchErr
}

func (f *fakeStore) SearchConnections(context.Context, store.ConnectionQuery) ([]store.ConnectionRecord, error) {
	return nil, f.failure()
}

func (f *fakeStore) EachConnection(context.Context, store.ConnectionQuery, func(*store.ConnectionRecord) error) error {
	return f.failure()
}

func (f *fakeStore) SummarizeIP(context.Context, store.AccessQuery) (store.IPSummary, error) {
	return store.IPSummary{}, f.failure()
}

func (f *fakeStore) SearchAudit(context.Context, audit.Query) ([]audit.Record, error) {
	return nil, f.failure()
}

func (f *fakeStore) SubjectConsultations(context.Context, audit.SubjectQuery) ([]audit.Consultation, error) {
	return nil, f.failure()
}
