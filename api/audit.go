package api

import (
	"context"
	"net/http"
	"net/netip"
	"time"

	"github.com/connlog/connlog/api/auth"
	"github.com/connlog/connlog/store/audit"
)

// auditParams are the query parameters /v1/audit accepts.
var auditParams = paramSet{endpoint: "/v1/audit", paged: true, filters: []string{
	"from", "to", "actor", "role", "endpoint", "outcome", "purpose_contains",
}}

// auditResponse is the body of GET /v1/audit.
type auditResponse struct {
	Rows []auditRow `json:"rows"`
	pageEnd
}

// auditRow is one audit row as the auditor sees it.
type auditRow struct {
	Time     string `json:"time"`
	Actor    string `json:"actor"`
	Role     string `json:"role"`
	Source   string `json:"source"`
	Method   string `json:"method"`
	Endpoint string `json:"endpoint"`
	Purpose  string `json:"purpose"`
	// Filters is the canonical JSON of the request's filters, as a string.
	Filters string `json:"filters"`
	Status  int    `json:"status"`
	Rows    int    `json:"rows"`
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"`
	// Requests is how many requests the row stands for: 1, or more for the
	// refusals of bad or missing credentials, counted per source and window.
	Requests int `json:"requests"`
}

// auditSearch answers GET /v1/audit (role auditor): who looked at what,
// when and why, oldest first, with keyset pagination.
func (s *Server) auditSearch(r *http.Request, c *call) (any, error) {
	params := r.URL.Query()
	c.filters = auditParams.raw(params)
	if err := auditParams.check(params); err != nil {
		return nil, err
	}
	if err := wholeTrail(c.who); err != nil {
		return nil, err
	}
	var q audit.Query
	var err error
	if q.From, q.To, err = parseRange(params.Get("from"), params.Get("to"), s.cfg.Search.AuditMaxWindow); err != nil {
		return nil, err
	}
	for _, p := range []struct {
		name string
		dst  *string
		max  int
	}{{"actor", &q.Actor, 200}, {"role", &q.Role, 20}, {"endpoint", &q.Endpoint, 200}, {"outcome", &q.Outcome, 20}, {"purpose_contains", &q.Purpose, maxPurpose}} {
		if *p.dst, err = parseText(p.name, params.Get(p.name), p.max); err != nil {
			return nil, err
		}
	}
	f := map[string]any{
		"from": q.From.Format(time.RFC3339Nano), "to": q.To.Format(time.RFC3339Nano),
		"actor": q.Actor, "role": q.Role, "endpoint": q.Endpoint, "outcome": q.Outcome, "purpose_contains": q.Purpose,
	}
	pg, err := openPage[audit.Cursor](s, c, params, "/v1/audit", f, "")
	if err != nil {
		return nil, err
	}
	q.Limit, q.After = pg.fetch(), pg.after
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.QueryTimeout)
	defer cancel()
	recs, err := s.store.SearchAudit(ctx, q)
	if err != nil {
		s.logger.Warn("search audit trail", "err", err)
		return nil, storeError(r.Context(), err)
	}
	recs, end := cut(pg, recs, (*audit.Record).Cursor)
	resp := auditResponse{Rows: make([]auditRow, 0, len(recs)), pageEnd: end}
	for _, a := range recs {
		resp.Rows = append(resp.Rows, auditRow{
			Time: a.Time.UTC().Format(timeFormat), Actor: a.Actor, Role: a.Role, Source: a.Source, Method: a.Method,
			Endpoint: a.Endpoint, Purpose: a.Purpose, Filters: a.Filters, Status: a.Status, Rows: a.Rows,
			Outcome: a.Outcome, Reason: a.Reason, Requests: max(a.Requests, 1),
		})
	}
	c.rows = resp.Count
	return resp, nil
}

// wholeTrail refuses credentials limited to some sites: the audit trail is
// not divided by site, so reading it is for unlimited auditors only.
func wholeTrail(p *auth.Principal) error {
	if len(p.Sites) == 0 {
		return nil
	}
	return &apiError{code: CodeForbidden, msg: "the audit trail covers every site; a token limited to some sites cannot read it", reason: "site-limited token on the audit trail"}
}

// subjectParams are the query parameters /v1/audit/subject accepts.
var subjectParams = paramSet{endpoint: "/v1/audit/subject", paged: true, filters: []string{"ip", "from", "to"}}

// subjectResponse is the body of GET /v1/audit/subject.
type subjectResponse struct {
	IP            string         `json:"ip"`
	Consultations []consultation `json:"consultations"`
	pageEnd
}

// consultation is one data request that touched the subject's address:
// its date and purpose, never who made it.
type consultation struct {
	Date     string `json:"date"`
	Purpose  string `json:"purpose"`
	Endpoint string `json:"endpoint"`
	Rows     uint64 `json:"rows"`
}

// subject answers GET /v1/audit/subject?ip= (role auditor): the dates and
// purposes of the answered data requests whose filters covered the
// address, for a data subject's access request (CJEU C-579/21). Staff
// identities, roles and source addresses are left out. Without from and to,
// the whole audit lifetime is searched.
func (s *Server) subject(r *http.Request, c *call) (any, error) {
	params := r.URL.Query()
	c.filters = subjectParams.raw(params)
	if err := subjectParams.check(params); err != nil {
		return nil, err
	}
	if err := wholeTrail(c.who); err != nil {
		return nil, err
	}
	var q audit.SubjectQuery
	a, err := netip.ParseAddr(params.Get("ip"))
	if err != nil || a.Zone() != "" || a.Unmap().IsUnspecified() {
		return nil, errorf(CodeBadRequest, "ip is required: one IP address, e.g. 203.0.113.7")
	}
	q.Addr = a.Unmap()
	if params.Get("from") == "" && params.Get("to") == "" {
		q.To = s.now().UTC().Add(time.Minute)
		q.From = q.To.Add(-s.cfg.Search.AuditMaxWindow)
	} else if q.From, q.To, err = parseRange(params.Get("from"), params.Get("to"), s.cfg.Search.AuditMaxWindow); err != nil {
		return nil, err
	}
	f := map[string]any{"ip": q.Addr.String(), "from": q.From.Format(time.RFC3339Nano), "to": q.To.Format(time.RFC3339Nano)}
	pg, err := openPage[audit.Cursor](s, c, params, "/v1/audit/subject", f, "")
	if err != nil {
		return nil, err
	}
	q.Limit, q.After = pg.fetch(), pg.after
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.QueryTimeout)
	defer cancel()
	cs, err := s.store.SubjectConsultations(ctx, q)
	if err != nil {
		s.logger.Warn("search audit trail for a subject", "err", err)
		return nil, storeError(r.Context(), err)
	}
	cs, end := cut(pg, cs, (*audit.Consultation).Cursor)
	resp := subjectResponse{IP: q.Addr.String(), Consultations: make([]consultation, 0, len(cs)), pageEnd: end}
	for _, x := range cs {
		resp.Consultations = append(resp.Consultations, consultation{
			Date: x.Time.UTC().Format(time.DateOnly), Purpose: x.Purpose, Endpoint: x.Endpoint, Rows: x.Rows,
		})
	}
	c.rows = resp.Count
	return resp, nil
}
