package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/connlog/connlog/api/auth"
)

// Code is a stable, machine-readable error code in an API error response.
type Code string

// Error codes. Clients may branch on them; their meaning does not change.
const (
	// CodeUnauthenticated means no bearer token, or an unknown one (401).
	CodeUnauthenticated Code = "unauthenticated"
	// CodeForbidden means the token's role or sites do not allow the request (403).
	CodeForbidden Code = "forbidden"
	// CodeMissingPurpose means no valid purpose was stated (400).
	CodeMissingPurpose Code = "missing_purpose"
	// CodeBadRequest means a parameter is missing, malformed or out of range (400).
	CodeBadRequest Code = "bad_request"
	// CodeWindowTooLarge means the time window exceeds the configured maximum (400).
	CodeWindowTooLarge Code = "window_too_large"
	// CodeNotFound means no endpoint at this path (404).
	CodeNotFound Code = "not_found"
	// CodeMethodNotAllowed means the endpoint exists but not for this method (405).
	CodeMethodNotAllowed Code = "method_not_allowed"
	// CodeUnavailable means the store cannot answer now, or is too slow (503).
	CodeUnavailable Code = "unavailable"
	// CodeAuditUnavailable means the audit row could not be written, so no data
	// is returned (503).
	CodeAuditUnavailable Code = "audit_unavailable"
	// CodeRateLimited means the credential sent too many requests; retry
	// after the seconds of the Retry-After header (429).
	CodeRateLimited Code = "rate_limited"
	// CodeInternal means a bug in connlog (500).
	CodeInternal Code = "internal"
)

// httpStatus is the one place that maps error codes to HTTP status.
func httpStatus(c Code) int {
	switch c {
	case CodeUnauthenticated:
		return http.StatusUnauthorized
	case CodeForbidden:
		return http.StatusForbidden
	case CodeMissingPurpose, CodeBadRequest, CodeWindowTooLarge:
		return http.StatusBadRequest
	case CodeNotFound:
		return http.StatusNotFound
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case CodeUnavailable, CodeAuditUnavailable:
		return http.StatusServiceUnavailable
	case CodeRateLimited:
		return http.StatusTooManyRequests
	default:
		return http.StatusInternalServerError
	}
}

// outcome is the audit outcome of a request answered with status.
func outcome(status int) string {
	switch {
	case status < 300:
		return "ok"
	case status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusTooManyRequests:
		return "denied"
	case status < 500:
		return "invalid"
	default:
		return "error"
	}
}

// apiError is a refusal or failure to report to the client.
type apiError struct {
	code Code
	// msg is the person-readable sentence sent to the client.
	msg string
	// reason, if set, is a more precise explanation for the audit trail;
	// it may name things the client must not learn (e.g. a store error).
	reason string
	// retryAfter is the Retry-After of a rate_limited error, in seconds.
	retryAfter int
}

func (e *apiError) Error() string { return string(e.code) + ": " + e.msg }

// auditReason is what the audit row says about e.
func (e *apiError) auditReason() string {
	if e.reason != "" {
		return e.reason
	}
	return e.msg
}

func errorf(code Code, msg string) *apiError { return &apiError{code: code, msg: msg} }

// authError is the refusal of a credential (package api/auth) as the API
// reports it; any other error is returned as is.
func authError(err error) error {
	var ae *auth.Error
	if !errors.As(err, &ae) {
		return err
	}
	code := CodeUnauthenticated
	switch ae.Kind {
	case auth.Forbidden:
		code = CodeForbidden
	case auth.Unavailable:
		code = CodeUnavailable
	}
	return &apiError{code: code, msg: ae.Msg, reason: ae.Reason}
}

// errorBody is the JSON shape of every error response.
type errorBody struct {
	Error struct {
		Code    Code   `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// writeError writes e as a JSON error response.
func writeError(w http.ResponseWriter, e *apiError) {
	var b errorBody
	b.Error.Code = e.code
	b.Error.Message = e.msg
	body, _ := json.Marshal(b) // cannot fail: two strings
	switch e.code {
	case CodeUnauthenticated:
		w.Header().Set("WWW-Authenticate", `Bearer realm="connlog"`)
	case CodeRateLimited:
		w.Header().Set("Retry-After", strconv.Itoa(max(1, e.retryAfter)))
	case CodeMethodNotAllowed:
		w.Header().Set("Allow", "GET, HEAD")
	}
	writeBody(w, httpStatus(e.code), body)
}

// writeBody writes a JSON body. Responses of this API are never cached: they
// carry personal data or short-lived state.
func writeBody(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n')) //nolint:gosec // G705: a JSON body marshalled by encoding/json (HTML-escaped) under nosniff, not HTML
}
