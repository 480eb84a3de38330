package api

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

const goodHash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" // sha256("test")

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr []string // substrings; nil means valid
	}{
		{"zero config is valid", Config{}, nil},
		{"token with known role is valid", Config{Tokens: []Token{{Name: "alice", Role: RoleAnalyst, SHA256: goodHash, Sites: []string{"a.example"}}}}, nil},
		{"upper-case hash is valid", Config{Tokens: []Token{{Name: "alice", Role: RoleAdmin, SHA256: strings.ToUpper(goodHash)}}}, nil},
		{"unknown role is refused", Config{Tokens: []Token{{Name: "alice", Role: "root", SHA256: goodHash}}}, []string{`role "root"`}},
		{"short hash is refused", Config{Tokens: []Token{{Name: "alice", Role: RoleAnalyst, SHA256: "abcd"}}}, []string{"sha256: 2 bytes"}},
		{"non-hex hash is refused", Config{Tokens: []Token{{Name: "alice", Role: RoleAnalyst, SHA256: "zz"}}}, []string{"not hex"}},
		{"hash of empty token is refused", Config{Tokens: []Token{{Name: "alice", Role: RoleAnalyst, SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}}}, []string{"empty string"}},
		{"empty name is refused", Config{Tokens: []Token{{Role: RoleAnalyst, SHA256: goodHash}}}, []string{"name is empty"}},
		{"duplicate name and shared hash are both reported", Config{Tokens: []Token{
			{Name: "alice", Role: RoleAnalyst, SHA256: goodHash},
			{Name: "alice", Role: RoleOfficer, SHA256: goodHash},
		}}, []string{"duplicate name", `same sha256 as token "alice"`}},
		{"duplicate site is refused", Config{Tokens: []Token{{Name: "a", Role: RoleAnalyst, SHA256: goodHash, Sites: []string{"x", "x"}}}}, []string{`duplicate site "x"`}},
		{"every problem is reported at once", Config{Listen: "nope", MaxLimit: -1, MaxWindow: -1}, []string{"listen", "max limit", "max window"}},
		{"default limit above max limit is refused", Config{DefaultLimit: 500, MaxLimit: 100}, []string{"above max limit"}},
		{"small max limit lowers the default limit", Config{MaxLimit: 100}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate: no error")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestNewToken(t *testing.T) {
	tok, hash, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, "cl_") || len(tok) != len("cl_")+43 {
		t.Errorf("token %q: want cl_ and 43 base64 characters", tok)
	}
	sum := sha256.Sum256([]byte(tok))
	if hash != hex.EncodeToString(sum[:]) {
		t.Errorf("hash %s is not the token's SHA-256", hash)
	}
	tok2, _, _ := NewToken()
	if tok2 == tok {
		t.Error("two tokens are equal")
	}
	if err := (Config{Tokens: []Token{{Name: "a", Role: RoleAnalyst, SHA256: hash}}}).Validate(); err != nil {
		t.Errorf("NewToken hash does not validate: %v", err)
	}
}
