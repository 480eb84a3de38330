package api

import (
	"context"
	"net/http"

	"github.com/connlog/connlog/store/retention"
)

// RetentionReporter is the part of the store that answers GET
// /v1/retention; *store.Store satisfies it. A Store without it answers 503.
type RetentionReporter interface {
	// RetentionReport describes what is stored against each lifetime.
	RetentionReport(ctx context.Context) (retention.Report, error)
}

// retentionParams are the query parameters /v1/retention accepts: purpose
// only.
var retentionParams = paramSet{endpoint: "/v1/retention"}

// retention answers GET /v1/retention (auditor): the retention report as
// JSON, the same as `connlog retention --json`. It reads only retention
// metadata (the operations database, table sizes and the time range of each
// class), never a record. The report covers every site, so a token limited
// to some sites is refused, as for the audit trail.
func (s *Server) retention(r *http.Request, c *call) (any, error) {
	params := r.URL.Query()
	c.filters = retentionParams.raw(params)
	if err := retentionParams.check(params); err != nil {
		return nil, err
	}
	if len(c.who.Sites) > 0 {
		return nil, &apiError{code: CodeForbidden, msg: "the retention report covers every site; a token limited to some sites cannot read it", reason: "site-limited token on the retention report"}
	}
	rr, ok := s.store.(RetentionReporter)
	if !ok {
		return nil, errorf(CodeUnavailable, "this server has no retention report")
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.QueryTimeout)
	defer cancel()
	rep, err := rr.RetentionReport(ctx)
	if err != nil {
		return nil, storeError(r.Context(), err)
	}
	c.rows = len(rep.Entries)
	return rep, nil
}
