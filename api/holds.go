package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/connlog/connlog/api/auth"
	"github.com/connlog/connlog/internal/textcut"
	"github.com/connlog/connlog/store/legal"
)

// HoldStore is what the legal-hold endpoints need from storage;
// *store.Store satisfies it.
type HoldStore interface {
	// CreateHold copies the matching records into hold storage and
	// registers the hold.
	CreateHold(ctx context.Context, h legal.Hold) (legal.Hold, error)
	// ListHolds returns every hold, active and released.
	ListHolds(ctx context.Context) ([]legal.Hold, error)
	// ReleaseHold deletes the held copies and records the release; errors
	// wrap legal.ErrHoldNotFound or legal.ErrHoldReleased when they apply.
	ReleaseHold(ctx context.Context, id, by string) error
}

// WithHolds serves legal holds (/v1/holds) from hs.
func WithHolds(hs HoldStore) Option {
	return func(s *Server) { s.holds = hs }
}

// maxHold bounds a hold's lifetime; it can be renewed by a new hold.
const maxHold = 3 * 366 * 24 * time.Hour

// holdInput is the body of POST /v1/holds: a selector, or a requisition
// whose selectors are held (one hold per selector).
type holdInput struct {
	Reference     string         `json:"reference"`
	Expires       string         `json:"expires"`
	Selector      *selectorInput `json:"selector"`
	RequisitionID string         `json:"requisition_id"`
}

// holdView is a hold as the API shows it.
type holdView struct {
	ID         string     `json:"id"`
	Reference  string     `json:"reference"`
	IP         string     `json:"ip"`
	Port       uint16     `json:"port,omitempty"`
	Site       string     `json:"site,omitempty"`
	From       time.Time  `json:"from"`
	To         time.Time  `json:"to"`
	Expires    time.Time  `json:"expires"`
	CreatedBy  string     `json:"created_by"`
	Created    time.Time  `json:"created_at"`
	Released   *time.Time `json:"released_at,omitempty"`
	ReleasedBy string     `json:"released_by,omitempty"`
	Rows       uint64     `json:"rows"`
	Active     bool       `json:"active"`
}

func newHoldView(h *legal.Hold) holdView {
	v := holdView{
		ID: h.ID, Reference: h.Reference, IP: h.Selector.Network.String(), Port: h.Selector.Port, Site: h.Selector.Site,
		From: h.Selector.From.UTC(), To: h.Selector.To.UTC(), Expires: h.Expires.UTC(), CreatedBy: h.CreatedBy,
		Created: h.Created.UTC(), ReleasedBy: h.ReleasedBy, Rows: h.Rows, Active: h.Released.IsZero(),
	}
	if p := h.Selector.Network; p.IsValid() && p.Bits() == p.Addr().BitLen() {
		v.IP = p.Addr().String()
	}
	if !h.Released.IsZero() {
		t := h.Released.UTC()
		v.Released = &t
	}
	return v
}

// holdList is the body of GET and POST /v1/holds.
type holdList struct {
	Holds []holdView `json:"holds"`
	Count int        `json:"count"`
}

// holdRoutes registers the hold endpoints, if the server has a hold store.
func (s *Server) holdRoutes(mux *http.ServeMux) {
	if s.holds == nil {
		return
	}
	mux.Handle("POST /v1/holds", s.instrument("/v1/holds", s.data("/v1/holds", RoleOfficer, s.createHold)))
	mux.Handle("GET /v1/holds", s.instrument("/v1/holds", s.data("/v1/holds", RoleOfficer, s.listHolds)))
	mux.Handle("DELETE /v1/holds/{id}", s.instrument("/v1/holds/{id}", s.data("/v1/holds/{id}", RoleOfficer, s.releaseHold)))
}

// holdVisible reports whether p may see or release h.
func holdVisible(p *auth.Principal, h *legal.Hold) bool {
	return len(p.Sites) == 0 || h.Selector.Site != "" && p.SitesAllowed(h.Selector.Site)
}

// createHold answers POST /v1/holds.
func (s *Server) createHold(r *http.Request, c *call) (any, error) {
	if err := noParams(r); err != nil {
		return nil, err
	}
	var in holdInput
	if err := decodeBody(r, &in); err != nil {
		return nil, err
	}
	c.filters = canonical(map[string]any{"reference": textcut.Runes(in.Reference, 100), "requisition": textcut.Runes(in.RequisitionID, 100)})
	now := s.now().UTC()
	expires, err := parseTime("expires", in.Expires)
	if err != nil {
		return nil, err
	}
	if !expires.After(now) || expires.Sub(now) > maxHold {
		return nil, errorf(CodeBadRequest, fmt.Sprintf("expires must be in the future, at most %d days ahead", int(maxHold.Hours()/24)))
	}
	var sels []legal.Selector
	switch {
	case (in.Selector == nil) == (in.RequisitionID == ""):
		return nil, errorf(CodeBadRequest, "give either a selector or a requisition_id")
	case in.Selector != nil:
		sel, err := s.parseSelector(*in.Selector, c.who, maxRequisitionWindow)
		if err != nil {
			return nil, err
		}
		sels = append(sels, sel)
	default:
		if s.requisitions == nil {
			return nil, errorf(CodeBadRequest, "requisitions are not served here: give a selector")
		}
		r.SetPathValue("id", in.RequisitionID)
		req, err := s.loadRequisition(r, c)
		if err != nil {
			return nil, err
		}
		sels = req.Selectors
		if in.Reference == "" {
			in.Reference = req.ProcedureRef
		}
	}
	if err := checkText("reference", in.Reference, true); err != nil {
		return nil, err
	}
	out := holdList{Holds: []holdView{}}
	for i, sel := range sels {
		if len(c.who.Sites) > 0 && sel.Site == "" {
			return nil, &apiError{code: CodeForbidden, msg: "your credential is limited to some sites: each selector must name one", reason: fmt.Sprintf("selector %d without site", i+1)}
		}
		if sel.Site != strings.ToLower(sel.Site) {
			return nil, errorf(CodeBadRequest, "site must be a lower-case host name")
		}
	}
	for _, sel := range sels {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.QueryTimeout)
		h, err := s.holds.CreateHold(ctx, legal.Hold{
			Reference: in.Reference,
			Selector:  sel,
			Expires:   expires,
			CreatedBy: c.who.Name,
		})
		cancel()
		if err != nil {
			return nil, storeError(r.Context(), err)
		}
		out.Holds = append(out.Holds, newHoldView(&h))
		c.rows += int(h.Rows)
	}
	out.Count = len(out.Holds)
	ids := make([]string, 0, len(out.Holds))
	for _, h := range out.Holds {
		ids = append(ids, h.ID)
	}
	c.filters = canonical(map[string]any{"reference": textcut.Runes(in.Reference, 100), "requisition": textcut.Runes(in.RequisitionID, 100), "holds": strings.Join(ids, ",")})
	return out, nil
}

// listHolds answers GET /v1/holds.
func (s *Server) listHolds(r *http.Request, c *call) (any, error) {
	if err := noParams(r); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.QueryTimeout)
	defer cancel()
	hs, err := s.holds.ListHolds(ctx)
	if err != nil {
		return nil, storeError(r.Context(), err)
	}
	out := holdList{Holds: []holdView{}}
	for i := range hs {
		if holdVisible(c.who, &hs[i]) {
			out.Holds = append(out.Holds, newHoldView(&hs[i]))
		}
	}
	out.Count = len(out.Holds)
	c.rows = out.Count
	return out, nil
}

// releaseHold answers DELETE /v1/holds/{id}.
func (s *Server) releaseHold(r *http.Request, c *call) (any, error) {
	if err := noParams(r); err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	c.filters = canonical(map[string]any{"hold": textcut.ValidRunes(id, 100)})
	notFound := &apiError{code: CodeNotFound, msg: "no such hold", reason: "hold " + textcut.Runes(id, 100) + " not found"}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.QueryTimeout)
	defer cancel()
	hs, err := s.holds.ListHolds(ctx)
	if err != nil {
		return nil, storeError(r.Context(), err)
	}
	var h *legal.Hold
	for i := range hs {
		if hs[i].ID == id {
			h = &hs[i]
		}
	}
	switch {
	case h == nil:
		return nil, notFound
	case !holdVisible(c.who, h):
		notFound.reason = "hold " + id + " outside the credential's sites"
		return nil, notFound
	case !h.Released.IsZero():
		return nil, errorf(CodeBadRequest, "this hold was already released on "+h.Released.UTC().Format(time.RFC3339))
	}
	err = s.holds.ReleaseHold(ctx, id, c.who.Name)
	switch {
	case errors.Is(err, legal.ErrHoldNotFound):
		return nil, notFound
	case errors.Is(err, legal.ErrHoldReleased):
		return nil, errorf(CodeBadRequest, "this hold was already released")
	case err != nil:
		return nil, storeError(r.Context(), err)
	}
	v := newHoldView(h)
	now := s.now().UTC()
	v.Released, v.ReleasedBy, v.Active = &now, c.who.Name, false
	c.rows = 1
	return v, nil
}
