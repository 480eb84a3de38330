package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/connlog/connlog/api/auth"
	"github.com/connlog/connlog/internal/textcut"
	"github.com/connlog/connlog/store/audit"
)

// Bounds of a stated purpose, in characters after trimming spaces.
const (
	minPurpose = 3
	maxPurpose = 200
)

// authenticator is what the guard needs to know who the caller is;
// *auth.Authenticator satisfies it.
type authenticator interface {
	// Authenticate returns the principal of r's credential, or an
	// *auth.Error (possibly with the principal it refuses).
	Authenticate(r *http.Request) (*auth.Principal, error)
	// ChecksJWT reports whether authenticating r costs a check with the
	// identity provider.
	ChecksJWT(r *http.Request) bool
}

// call is one data request on its way through the guard: who asks, why, and
// what the audit row will say about it.
type call struct {
	who     *auth.Principal
	purpose string
	// filters is the canonical JSON of the request's filters, set by the
	// endpoint handler as soon as it has parsed them (or the raw ones, if
	// they were refused).
	filters string
	// rows is how many rows the answer carries.
	rows int
	// file, if set, is the answer: a file sent as is instead of JSON.
	file *fileBody
	// stream, if set, is written after the audit row instead of a JSON
	// body (api/stream.go).
	stream *stream
}

// dataHandler answers an authenticated, authorised data request that stated
// its purpose. It returns the JSON response body, or an error: an *apiError
// for the client, anything else is reported as internal. It must not write
// to the client: the guard does, after auditing.
type dataHandler func(r *http.Request, c *call) (any, error)

// data guards the data endpoint at route pattern endpoint: it authenticates
// the caller, checks its role and requires a purpose, runs h, writes the audit
// row, and only then writes the response. Role "" is for the catch-all of
// unknown routes: any caller, no purpose.
func (s *Server) data(endpoint, role string, h dataHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &call{}
		client, source := s.proxies.client(r)
		var body []byte
		var err error
		if s.authn.ChecksJWT(r) && !s.badLimiter.has(sourceKey(client), s.now()) {
			// Checking a JWT costs a signature check, and a key fetch
			// from the identity provider for an unknown key id: not for a
			// source already over its limit of bad credentials.
			err = &apiError{code: CodeUnauthenticated, msg: "identity token not checked", reason: "identity token not checked: the source is over its limit of bad credentials"}
		} else {
			body, err = s.guard(r, c, role, h)
		}
		var ae *apiError
		if err != nil && !errors.As(err, &ae) {
			s.logger.Error("data request", "endpoint", endpoint, "err", err)
			ae = &apiError{code: CodeInternal, msg: "internal error; the operators have been told", reason: err.Error()}
		}
		status := http.StatusOK
		if ae != nil {
			status = httpStatus(ae.code)
			body, c.rows = nil, 0 // nothing of a failed answer is sent
		}

		entry := audit.Entry{
			Time:     s.now().UTC(),
			Source:   source,
			Method:   r.Method,
			Endpoint: endpoint,
			Purpose:  c.purpose,
			Filters:  c.filters,
			Status:   status,
			Rows:     c.rows,
			Outcome:  outcome(status),
		}
		if c.who != nil {
			entry.Actor, entry.Role = c.who.Name, c.who.Role
		}
		if ae != nil {
			entry.Reason = ae.auditReason()
		}
		if ae != nil && c.who == nil && (ae.code == CodeUnauthenticated || ae.code == CodeUnavailable) {
			// Nobody to hold to account (no credential, an unknown one, or
			// a JWT that cannot be checked while the identity provider is
			// down): limited per source, and counted into one audit row
			// per source and window, without an fsync of its own
			// (api/badcreds.go).
			writeError(w, s.refuseBadCredential(entry, client, ae))
			return
		}
		// The audit row must be written even if the client has gone away.
		actx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), auditTimeout)
		aerr := s.store.Audit(actx, entry)
		cancel()
		if aerr != nil {
			s.metrics.auditFailures.WithLabelValues(endpoint).Inc()
			s.logger.Error("audit row not written; request refused", "endpoint", endpoint, "err", aerr)
			writeError(w, errorf(CodeAuditUnavailable, "the audit trail cannot be written, so no data can be served; try again later"))
			return
		}
		if ae != nil {
			writeError(w, ae)
			return
		}
		if c.file != nil {
			c.file.write(w)
			return
		}
		if c.stream != nil {
			s.runStream(w, r, c, entry)
			return
		}
		writeBody(w, status, body)
	})
}

// guard runs the checks common to every data endpoint, then h, and returns
// the encoded response body.
func (s *Server) guard(r *http.Request, c *call, role string, h dataHandler) (_ []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	// Record the purpose as stated, even if refused: the auditor wants to
	// see what was claimed. It is bounded and made valid UTF-8 first.
	raw := r.Header.Get("X-Purpose")
	if raw == "" {
		raw = r.URL.Query().Get("purpose")
	}
	raw = strings.TrimSpace(raw)
	c.purpose = textcut.ValidRunes(raw, maxPurpose)

	who, err := s.authn.Authenticate(r)
	c.who = who // may be set on a refusal too, for the audit row
	if err != nil {
		return nil, authError(err)
	}
	if err := s.rateLimit(who); err != nil {
		return nil, err
	}
	if role != "" && who.Role != role && who.Role != RoleAdmin {
		return nil, &apiError{
			code:   CodeForbidden,
			msg:    fmt.Sprintf("this endpoint needs the %s role", role),
			reason: fmt.Sprintf("role %s, endpoint needs %s", who.Role, role),
		}
	}
	if role != "" {
		if err := checkPurpose(raw); err != nil {
			return nil, err
		}
	}
	out, err := h(r, c)
	if err != nil {
		return nil, err
	}
	if st, ok := out.(*stream); ok {
		c.stream = st // written after the audit row
		return nil, nil
	}
	if f, ok := out.(*fileBody); ok {
		c.file = f // sent as is, after the audit row
		return f.data, nil
	}
	body, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode response: %w", err)
	}
	return body, nil
}

// checkPurpose checks a stated purpose, already trimmed.
func checkPurpose(p string) error {
	n := utf8.RuneCountInString(p)
	switch {
	case p == "":
		return errorf(CodeMissingPurpose, "state the purpose of this request (an incident or requisition reference) in the X-Purpose header or the purpose parameter")
	case !utf8.ValidString(p) || strings.IndexFunc(p, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return errorf(CodeMissingPurpose, "the purpose must be printable text")
	case n < minPurpose || n > maxPurpose:
		return errorf(CodeMissingPurpose, fmt.Sprintf("the purpose must be %d to %d characters long", minPurpose, maxPurpose))
	}
	return nil
}

// noRoute answers, after the guard, requests under /v1/ that match no data
// endpoint.
func (s *Server) noRoute(r *http.Request, c *call) (any, error) {
	what := textcut.ValidRunes(r.URL.Path, 200)
	if s.dataPaths[r.URL.Path] {
		return nil, &apiError{code: CodeMethodNotAllowed, msg: "this endpoint only answers GET", reason: "method " + r.Method}
	}
	return nil, &apiError{code: CodeNotFound, msg: "no such endpoint", reason: "no route for " + what}
}
