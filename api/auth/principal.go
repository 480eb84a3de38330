package auth

import (
	"slices"
)

// Roles a credential may carry. A role names what its holder may read;
// admin may do everything.
const (
	// RoleAnalyst may search the access log (SOC analysts).
	RoleAnalyst = "analyst"
	// RoleOfficer may search connection records and handle requisitions and holds.
	RoleOfficer = "officer"
	// RoleStats may read audience statistics.
	RoleStats = "stats"
	// RoleAuditor may read the audit trail and the retention report.
	RoleAuditor = "auditor"
	// RoleAdmin may do everything the other roles may.
	RoleAdmin = "admin"
)

// Roles are the roles, in the order messages list them.
var Roles = []string{RoleAnalyst, RoleOfficer, RoleStats, RoleAuditor, RoleAdmin}

// Principal is an authenticated caller: who they are (the actor of the
// audit trail), their role, and the sites they are limited to (none: every
// site). A Principal is not changed once returned.
type Principal struct {
	Name  string
	Role  string
	Sites []string
}

// SitesAllowed reports whether p may read site.
func (p *Principal) SitesAllowed(site string) bool {
	return len(p.Sites) == 0 || slices.Contains(p.Sites, site)
}

// Kind is what a refusal means to the client.
type Kind int

// Kinds of [Error].
const (
	// Unauthenticated: no credential, or one that names nobody (401).
	Unauthenticated Kind = iota + 1
	// Forbidden: the credential names someone, who may not be let in
	// this way (no role, several roles, a session cookie without its
	// CSRF token) (403).
	Forbidden
	// Unavailable: the credential cannot be checked now (the identity
	// provider is down, too many sessions or sign-ins) (503).
	Unavailable
)

// Error is a refusal of a credential.
type Error struct {
	Kind Kind
	// Msg is the person-readable sentence for the client.
	Msg string
	// Reason, if set, is a more precise explanation for the audit trail.
	Reason string
	// err, if set, is a sentinel the refusal wraps (ErrProviderDown).
	err error
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns the sentinel the refusal wraps, if any.
func (e *Error) Unwrap() error { return e.err }

func refuse(kind Kind, msg, reason string) *Error {
	return &Error{Kind: kind, Msg: msg, Reason: reason}
}
