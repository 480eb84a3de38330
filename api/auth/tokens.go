package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// tokenPrefix makes connlog tokens recognisable, e.g. by secret scanners.
const tokenPrefix = "cl_"

// Token is one person's credential: a bearer token known only by its hash.
type Token struct {
	// Name identifies the person; it is the actor in the audit trail.
	Name string `yaml:"name"`
	// Role is one of analyst, officer, stats, auditor, admin.
	Role string `yaml:"role"`
	// SHA256 is the hex SHA-256 of the bearer token, as printed by [NewToken].
	SHA256 string `yaml:"sha256"`
	// Sites, if not empty, limits the token to these sites (exact host names).
	Sites []string `yaml:"sites"`
}

// ValidateTokens reports every problem of ts at once, joined with
// [errors.Join]: names empty or twice, unknown roles, hashes that are not
// a SHA-256 or shared by two people, empty or repeated sites.
func ValidateTokens(ts []Token) error {
	var errs []error
	names := map[string]bool{}
	hashes := map[string]string{}
	for i, t := range ts {
		where := fmt.Sprintf("api token %d (%q)", i, t.Name)
		if strings.TrimSpace(t.Name) == "" {
			errs = append(errs, fmt.Errorf("%s: name is empty", where))
		} else if names[t.Name] {
			errs = append(errs, fmt.Errorf("%s: duplicate name", where))
		}
		names[t.Name] = true
		if !slices.Contains(Roles, t.Role) {
			errs = append(errs, fmt.Errorf("%s: role %q: must be one of %s", where, t.Role, strings.Join(Roles, ", ")))
		}
		if h, err := parseHash(t.SHA256); err != nil {
			errs = append(errs, fmt.Errorf("%s: sha256: %w", where, err))
		} else if other, dup := hashes[h]; dup {
			// Two people sharing one token would make the audit trail lie.
			errs = append(errs, fmt.Errorf("%s: same sha256 as token %q", where, other))
		} else {
			hashes[h] = t.Name
		}
		seen := map[string]bool{}
		for _, s := range t.Sites {
			switch {
			case strings.TrimSpace(s) == "":
				errs = append(errs, fmt.Errorf("%s: empty site", where))
			case seen[s]:
				errs = append(errs, fmt.Errorf("%s: duplicate site %q", where, s))
			}
			seen[s] = true
		}
	}
	return errors.Join(errs...)
}

// emptyHash is the SHA-256 of the empty string: a token that would match an
// empty bearer token.
var emptyHash = sha256.Sum256(nil)

// parseHash checks that s is a hex SHA-256 and returns it in lower case.
func parseHash(s string) (string, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return "", fmt.Errorf("not hex: %w", err)
	}
	if len(b) != sha256.Size {
		return "", fmt.Errorf("%d bytes, want %d", len(b), sha256.Size)
	}
	if [sha256.Size]byte(b) == emptyHash {
		return "", errors.New("hash of the empty string")
	}
	return hex.EncodeToString(b), nil
}

// NewToken returns a new random bearer token (prefix "cl_", then 32 random
// bytes in URL-safe base64) and the hex SHA-256 to put in [Token.SHA256].
// Hand the token to its holder and keep only the hash.
func NewToken() (token, sha256hex string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("read random bytes: %w", err)
	}
	token = tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token), nil
}

// HashToken returns the hex SHA-256 of a bearer token: the form in which
// the configuration knows it.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// tokenSet is the configured tokens by the SHA-256 of their value.
type tokenSet map[[sha256.Size]byte]*Principal

func newTokenSet(ts []Token) tokenSet {
	set := make(tokenSet, len(ts))
	for _, t := range ts {
		h, err := parseHash(t.SHA256)
		if err != nil {
			continue // refused by ValidateTokens
		}
		b, _ := hex.DecodeString(h)
		set[[sha256.Size]byte(b)] = &Principal{Name: t.Name, Role: t.Role, Sites: t.Sites}
	}
	return set
}

// lookup returns the principal of a bearer token, nil if unknown. Keyed by
// hash: looking up a hash reveals nothing about the token, so a map lookup
// is as safe as a constant-time comparison here.
func (set tokenSet) lookup(token string) *Principal {
	return set[sha256.Sum256([]byte(token))]
}
