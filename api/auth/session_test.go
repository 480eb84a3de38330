package auth

import (
	"net/http/httptest"
	"testing"
)

// With https, the session cookie is Secure and __Host- prefixed.
func TestOIDCSessionCookieUnderTLS(t *testing.T) {
	a := &Authenticator{secureCookies: true}
	rec := httptest.NewRecorder()
	a.SetSessionCookie(rec, "x")
	c := rec.Result().Cookies()[0]
	if c.Name != "__Host-connlog-session" || !c.Secure || !c.HttpOnly {
		t.Errorf("cookie under TLS %+v", c)
	}
}
