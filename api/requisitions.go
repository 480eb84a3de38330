package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/connlog/connlog/api/auth"
	"github.com/connlog/connlog/internal/textcut"
	"github.com/connlog/connlog/store/integrity"
	"github.com/connlog/connlog/store/legal"
	"github.com/connlog/connlog/store/legal/export"
)

// RequisitionStore is what the requisition endpoints need from storage;
// *store.Store satisfies it.
type RequisitionStore interface {
	// CreateRequisition records r in the register with a new ID.
	CreateRequisition(ctx context.Context, r legal.Requisition) (legal.Requisition, error)
	// Requisitions returns the register, newest first.
	Requisitions(ctx context.Context) ([]legal.Requisition, error)
	// Requisition returns one entry, or an error wrapping legal.ErrNoRequisition.
	Requisition(ctx context.Context, id string) (legal.Requisition, error)
	// MarkRequisitionAnswered records that the answer was sent.
	MarkRequisitionAnswered(ctx context.Context, id, by string, at, sentAt time.Time, how, exportSHA256 string) error
	// export.Store: the records a run selects and the packages kept, for
	// the requisition packages built in store/legal/export.
	export.Store
}

// Option configures optional parts of a [Server] in [New].
type Option func(*Server)

// WithRequisitions serves the requisition register (/v1/requisitions):
// requisitions are kept in rs, export packages (built by
// store/legal/export) are signed with signer and name software (the
// connlog version) in their manifest.
func WithRequisitions(rs RequisitionStore, signer *integrity.Signer, software string) Option {
	return func(s *Server) {
		s.requisitions = rs
		s.packages = export.NewPackager(rs, signer, software, s.cfg.QueryTimeout, func() time.Time { return s.now() })
	}
}

// Articles of the code de procédure pénale a requisition may invoke; "other"
// needs an explanation in article_text.
var articles = []string{"60-1", "60-2", "77-1-1", "77-1-2", "99-3", "99-4", "other"}

// Bounds of requisition input.
const (
	maxBody              = 64 << 10
	maxText              = 500
	maxSelectors         = 20
	maxRequisitionWindow = 366 * 24 * time.Hour
)

// requisitionInput is the body of POST /v1/requisitions.
type requisitionInput struct {
	Authority      string          `json:"authority"`
	OfficerName    string          `json:"officer_name"`
	OfficerService string          `json:"officer_service"`
	Article        string          `json:"article"`
	ArticleText    string          `json:"article_text"`
	ProcedureRef   string          `json:"procedure_reference"`
	DateReceived   string          `json:"date_received"`
	DateDue        string          `json:"date_due"`
	Selectors      []selectorInput `json:"selectors"`
}

// selectorInput is one selector of a requisition or a hold.
type selectorInput struct {
	IP   string `json:"ip"`
	Port uint16 `json:"port"`
	Site string `json:"site"`
	From string `json:"from"`
	To   string `json:"to"`
}

// requisitionRoutes registers the requisition endpoints, if the server
// has a requisition store.
func (s *Server) requisitionRoutes(mux *http.ServeMux) {
	if s.requisitions == nil {
		return
	}
	for _, d := range []struct{ method, path string }{
		{http.MethodPost, "/v1/requisitions"},
		{http.MethodGet, "/v1/requisitions"},
		{http.MethodGet, "/v1/requisitions/{id}"},
		{http.MethodPost, "/v1/requisitions/{id}/run"},
		{http.MethodGet, "/v1/requisitions/{id}/export"},
		{http.MethodPost, "/v1/requisitions/{id}/answered"},
	} {
		var h dataHandler
		switch d.method + " " + d.path {
		case "POST /v1/requisitions":
			h = s.createRequisition
		case "GET /v1/requisitions":
			h = s.listRequisitions
		case "GET /v1/requisitions/{id}":
			h = s.showRequisition
		case "POST /v1/requisitions/{id}/run":
			h = s.runRequisition
		case "GET /v1/requisitions/{id}/export":
			h = s.downloadExport
		case "POST /v1/requisitions/{id}/answered":
			h = s.answerRequisition
		}
		mux.Handle(d.method+" "+d.path, s.instrument(d.path, s.data(d.path, RoleOfficer, h)))
	}
}

// decodeBody reads a JSON body of at most maxBody bytes into v, refusing
// unknown fields.
func decodeBody(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return errorf(CodeBadRequest, "send the body as application/json")
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &apiError{code: CodeBadRequest, msg: "the body must be one JSON object with the documented fields", reason: "body: " + textcut.Runes(err.Error(), 200)}
	}
	if dec.More() {
		return errorf(CodeBadRequest, "the body must be one JSON object")
	}
	return nil
}

// checkText checks a required free-text field.
func checkText(name, v string, required bool) error {
	switch {
	case required && strings.TrimSpace(v) == "":
		return errorf(CodeBadRequest, name+" is required")
	case len(v) > maxText:
		return errorf(CodeBadRequest, fmt.Sprintf("%s is longer than %d bytes", name, maxText))
	case strings.IndexFunc(v, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return errorf(CodeBadRequest, name+" must be printable text on one line")
	}
	return nil
}

// parseSelector checks one selector against the caller's sites.
func (s *Server) parseSelector(in selectorInput, who *auth.Principal, maxWindow time.Duration) (legal.Selector, error) {
	var sel legal.Selector
	var err error
	if sel.Network, err = parseNetwork(in.IP); err != nil {
		return sel, err
	}
	if sel.From, err = parseTime("from", in.From); err != nil {
		return sel, err
	}
	if sel.To, err = parseTime("to", in.To); err != nil {
		return sel, err
	}
	if !sel.From.Before(sel.To) {
		return sel, errorf(CodeBadRequest, "from must be before to")
	}
	if w := sel.To.Sub(sel.From); w > maxWindow {
		return sel, errorf(CodeWindowTooLarge, fmt.Sprintf("the time window (%s) exceeds the maximum of %s; split it", w, maxWindow))
	}
	sel.Port, sel.Site = in.Port, in.Site
	if len(sel.Site) > maxSite || strings.ContainsFunc(sel.Site, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return sel, errorf(CodeBadRequest, "site must be a host name")
	}
	if sel.Site != "" && !who.SitesAllowed(sel.Site) {
		return sel, &apiError{code: CodeForbidden, msg: "your credential does not allow this site", reason: fmt.Sprintf("site %q outside the credential's sites", sel.Site)}
	}
	return sel, nil
}

// createRequisition answers POST /v1/requisitions.
func (s *Server) createRequisition(r *http.Request, c *call) (any, error) {
	var in requisitionInput
	if err := decodeBody(r, &in); err != nil {
		return nil, err
	}
	c.filters = canonical(map[string]any{"procedure_reference": textcut.Runes(in.ProcedureRef, 100), "article": textcut.Runes(in.Article, 20), "selectors": len(in.Selectors)})
	for _, f := range []struct {
		name, v  string
		required bool
	}{
		{"authority", in.Authority, true}, {"officer_name", in.OfficerName, true}, {"officer_service", in.OfficerService, true},
		{"procedure_reference", in.ProcedureRef, true}, {"article_text", in.ArticleText, in.Article == "other"},
	} {
		if err := checkText(f.name, f.v, f.required); err != nil {
			return nil, err
		}
	}
	if !slices.Contains(articles, in.Article) {
		return nil, errorf(CodeBadRequest, "article must be one of "+strings.Join(articles, ", "))
	}
	received, err := time.Parse(time.DateOnly, in.DateReceived)
	if err != nil {
		return nil, errorf(CodeBadRequest, "date_received is required, as YYYY-MM-DD")
	}
	if received.After(s.now().UTC().Add(24 * time.Hour)) {
		return nil, errorf(CodeBadRequest, "date_received is in the future")
	}
	var due *time.Time
	if in.DateDue != "" {
		d, err := time.Parse(time.DateOnly, in.DateDue)
		if err != nil {
			return nil, errorf(CodeBadRequest, "date_due must be a date, as YYYY-MM-DD")
		}
		if d.Before(received) {
			return nil, errorf(CodeBadRequest, "date_due ("+in.DateDue+") is before date_received ("+in.DateReceived+")")
		}
		due = &d
	}
	if len(in.Selectors) == 0 || len(in.Selectors) > maxSelectors {
		return nil, errorf(CodeBadRequest, fmt.Sprintf("give 1 to %d selectors (ip, port, site, from, to)", maxSelectors))
	}
	req := legal.Requisition{
		Authority: in.Authority, OfficerName: in.OfficerName, OfficerService: in.OfficerService,
		Article: in.Article, ArticleText: in.ArticleText, ProcedureRef: in.ProcedureRef, Received: received, Due: due,
		Purpose: c.purpose, CreatedBy: c.who.Name, Created: s.now().UTC(),
	}
	for i, si := range in.Selectors {
		sel, err := s.parseSelector(si, c.who, maxRequisitionWindow)
		if err != nil {
			var ae *apiError
			if errors.As(err, &ae) {
				ae.msg = fmt.Sprintf("selector %d: %s", i+1, ae.msg)
			}
			return nil, err
		}
		req.Selectors = append(req.Selectors, sel)
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.QueryTimeout)
	defer cancel()
	req, err = s.requisitions.CreateRequisition(ctx, req)
	if err != nil {
		return nil, storeError(r.Context(), err)
	}
	c.filters = canonical(map[string]any{"requisition": req.ID, "procedure_reference": textcut.Runes(req.ProcedureRef, 100), "article": req.Article, "selectors": len(req.Selectors)})
	return s.view(req), nil
}

// requisitionView is a requisition as the API shows it: the register entry
// and whether its answer is late.
type requisitionView struct {
	legal.Requisition
	// Overdue reports a requisition not answered yet whose due date has
	// passed (today, by the server's clock in UTC, is after it).
	Overdue bool `json:"overdue"`
}

// view returns q as the API shows it, judged against the server's clock.
func (s *Server) view(q legal.Requisition) requisitionView {
	today := s.now().UTC().Truncate(24 * time.Hour)
	return requisitionView{Requisition: q, Overdue: q.Answer == nil && q.Due != nil && today.After(*q.Due)}
}

// visible reports whether p may see requisition q: a credential limited to
// some sites sees the requisitions whose selectors all name one of them.
func visible(p *auth.Principal, q *legal.Requisition) bool {
	if len(p.Sites) == 0 {
		return true
	}
	for _, sel := range q.Selectors {
		if sel.Site == "" || !p.SitesAllowed(sel.Site) {
			return false
		}
	}
	return true
}

// requisitionList is the body of GET /v1/requisitions.
type requisitionList struct {
	Requisitions []requisitionView `json:"requisitions"`
	Count        int               `json:"count"`
}

// listRequisitions answers GET /v1/requisitions.
func (s *Server) listRequisitions(r *http.Request, c *call) (any, error) {
	if err := noParams(r); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.QueryTimeout)
	defer cancel()
	all, err := s.requisitions.Requisitions(ctx)
	if err != nil {
		return nil, storeError(r.Context(), err)
	}
	out := requisitionList{Requisitions: []requisitionView{}}
	for i := range all {
		if visible(c.who, &all[i]) {
			out.Requisitions = append(out.Requisitions, s.view(all[i]))
		}
	}
	out.Count = len(out.Requisitions)
	c.rows = out.Count
	return out, nil
}

// noParams refuses query parameters other than purpose.
func noParams(r *http.Request) error {
	for name := range r.URL.Query() {
		if name != "purpose" {
			return errorf(CodeBadRequest, fmt.Sprintf("unknown parameter %q", textcut.Runes(name, 40)))
		}
	}
	return nil
}

// loadRequisition reads the requisition named by the path, checking that
// the caller may see it.
func (s *Server) loadRequisition(r *http.Request, c *call) (legal.Requisition, error) {
	id := r.PathValue("id")
	c.filters = canonical(map[string]any{"requisition": textcut.ValidRunes(id, 100)})
	notFound := &apiError{code: CodeNotFound, msg: "no such requisition", reason: "requisition " + textcut.Runes(id, 100) + " not found"}
	if len(id) > 100 {
		return legal.Requisition{}, notFound
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.QueryTimeout)
	defer cancel()
	req, err := s.requisitions.Requisition(ctx, id)
	switch {
	case errors.Is(err, legal.ErrNoRequisition):
		return req, notFound
	case err != nil:
		return req, storeError(r.Context(), err)
	case !visible(c.who, &req):
		// As if absent: a scoped credential learns nothing of other sites.
		notFound.reason = "requisition " + id + " outside the credential's sites"
		return req, notFound
	}
	return req, nil
}

// showRequisition answers GET /v1/requisitions/{id}.
func (s *Server) showRequisition(r *http.Request, c *call) (any, error) {
	if err := noParams(r); err != nil {
		return nil, err
	}
	req, err := s.loadRequisition(r, c)
	if err != nil {
		return nil, err
	}
	c.rows = 1
	return s.view(req), nil
}

// runResult is the body of POST /v1/requisitions/{id}/run.
type runResult struct {
	Requisition  string `json:"requisition"`
	ExportSHA256 string `json:"export_sha256"`
	Rows         int    `json:"rows"`
	KeyID        string `json:"key_id"`
	Download     string `json:"download"`
}

// runRequisition answers POST /v1/requisitions/{id}/run: store/legal/export
// selects the records, builds and keeps the signed package, and records the
// run.
func (s *Server) runRequisition(r *http.Request, c *call) (any, error) {
	if err := noParams(r); err != nil {
		return nil, err
	}
	req, err := s.loadRequisition(r, c)
	if err != nil {
		return nil, err
	}
	run, err := s.packages.Run(r.Context(), &req, c.who.Name, c.who.Sites)
	var se *export.StoreError
	switch {
	case errors.Is(err, export.ErrTooManyRecords):
		return nil, errorf(CodeBadRequest, "the selectors match more than "+strconv.Itoa(export.MaxRecords)+" records; split the requisition")
	case errors.As(err, &se):
		return nil, storeError(r.Context(), se.Err)
	case err != nil:
		return nil, err
	}
	c.rows = run.Rows
	c.filters = canonical(map[string]any{"requisition": req.ID, "export_sha256": run.SHA256})
	return runResult{
		Requisition: req.ID, ExportSHA256: run.SHA256, Rows: run.Rows,
		KeyID: run.KeyID, Download: "/v1/requisitions/" + req.ID + "/export",
	}, nil
}

// downloadExport answers GET /v1/requisitions/{id}/export with the package
// of the latest run, or of the run named by ?sha256=, as store/legal/export
// kept it.
func (s *Server) downloadExport(r *http.Request, c *call) (any, error) {
	want := ""
	for name, vs := range r.URL.Query() {
		switch name {
		case "purpose":
		case "sha256":
			want = strings.ToLower(vs[0])
		default:
			return nil, errorf(CodeBadRequest, fmt.Sprintf("unknown parameter %q", textcut.Runes(name, 40)))
		}
	}
	req, err := s.loadRequisition(r, c)
	if err != nil {
		return nil, err
	}
	pkg, run, err := s.packages.Kept(r.Context(), &req, want)
	var se *export.StoreError
	switch {
	case errors.Is(err, export.ErrNoSuchPackage):
		return nil, errorf(CodeNotFound, "no export of this requisition has that SHA-256")
	case errors.Is(err, export.ErrNotRun):
		return nil, errorf(CodeNotFound, "this requisition has not been run yet: POST /v1/requisitions/{id}/run")
	case errors.Is(err, legal.ErrNoRequisition):
		return nil, &apiError{code: CodeNotFound, msg: "the package of this run is no longer kept (12 months); its SHA-256 remains in the register", reason: err.Error()}
	case errors.As(err, &se):
		return nil, storeError(r.Context(), se.Err)
	case err != nil:
		return nil, err
	}
	c.rows = int(run.Rows)
	c.filters = canonical(map[string]any{"requisition": req.ID, "export_sha256": run.ExportSHA256})
	name := fmt.Sprintf("requisition-%s-%s.zip", req.ID, run.ExportSHA256[:12])
	return &fileBody{contentType: "application/zip", filename: name, sha256: run.ExportSHA256, data: pkg}, nil
}

// answerInput is the body of POST /v1/requisitions/{id}/answered.
type answerInput struct {
	SentAt string `json:"sent_at"`
	How    string `json:"how"`
}

// answerRequisition answers POST /v1/requisitions/{id}/answered: it records
// when and how the latest package was sent.
func (s *Server) answerRequisition(r *http.Request, c *call) (any, error) {
	if err := noParams(r); err != nil {
		return nil, err
	}
	var in answerInput
	if err := decodeBody(r, &in); err != nil {
		return nil, err
	}
	req, err := s.loadRequisition(r, c)
	if err != nil {
		return nil, err
	}
	if err := checkText("how", in.How, true); err != nil {
		return nil, err
	}
	sent, err := parseTime("sent_at", in.SentAt)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	if sent.After(now.Add(time.Minute)) {
		return nil, errorf(CodeBadRequest, "sent_at is in the future")
	}
	if req.Answer != nil {
		return nil, errorf(CodeBadRequest, "this requisition is already recorded as answered on "+req.Answer.SentAt.Format(time.RFC3339))
	}
	if len(req.Runs) == 0 {
		return nil, errorf(CodeBadRequest, "run the requisition before recording its answer")
	}
	sum := req.Runs[len(req.Runs)-1].ExportSHA256
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.QueryTimeout)
	defer cancel()
	if err := s.requisitions.MarkRequisitionAnswered(ctx, req.ID, c.who.Name, now, sent, in.How, sum); err != nil {
		return nil, storeError(r.Context(), err)
	}
	req.Answer = &legal.RequisitionAnswer{Recorded: now.Truncate(time.Millisecond), By: c.who.Name, SentAt: sent, How: in.How, ExportSHA256: sum}
	c.filters = canonical(map[string]any{"requisition": req.ID, "export_sha256": sum})
	c.rows = 1
	return s.view(req), nil
}
