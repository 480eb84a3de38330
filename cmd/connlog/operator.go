package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/connlog/connlog/api"
	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/integrity"
)

// The operator commands — retention, verify, key and token create — run
// where the store is: inside a running `connlog serve`, which answers them
// on its admin socket (adminsock.go) and audits each one, or, with no
// instance serving, in the command's own process, which opens the store
// directly as before.

// Operator command names, as sent on the admin socket and recorded in the
// audit row's endpoint ("connlog " + name).
const (
	opRetention   = "retention"
	opVerify      = "verify"
	opKey         = "key"
	opTokenCreate = "token create"
)

// defaultOpPurpose is the purpose recorded for an operator command run
// without -purpose.
const defaultOpPurpose = "operator command"

// opRequest is one operator command with its options, parsed by the client.
type opRequest struct {
	Command string `json:"command"`
	Purpose string `json:"purpose"`
	// JSON prints the result as JSON (retention, verify).
	JSON bool `json:"json,omitempty"`
	// Enforce runs an enforcement pass before the report (retention).
	Enforce bool `json:"enforce,omitempty"`
	// Keys are trusted public keys, PEM (verify); none: the registered keys.
	Keys []string `json:"keys,omitempty"`
	// Name, Role and Sites describe the token to create (token create).
	Name  string   `json:"name,omitempty"`
	Role  string   `json:"role,omitempty"`
	Sites []string `json:"sites,omitempty"`
}

// opEnv is what the operator commands run against: the serving instance's
// store and signing key, or those the command opened itself.
type opEnv struct {
	store  *store.Store      // retention, verify
	signer *integrity.Signer // key
}

// purposeFlag registers -purpose on fs.
func purposeFlag(fs *flag.FlagSet) *string {
	return fs.String("purpose", defaultOpPurpose, "why you run this command; recorded in the audit trail when a running connlog serve answers it")
}

// validate checks r before anything runs; the admin socket calls it on what
// it receives too.
func (r *opRequest) validate() error {
	switch r.Command {
	case opRetention, opVerify, opKey, opTokenCreate:
	default:
		return fmt.Errorf("unknown operator command %q", r.Command)
	}
	p := strings.TrimSpace(r.Purpose)
	n := utf8.RuneCountInString(p)
	switch {
	case !utf8.ValidString(p) || strings.IndexFunc(p, func(c rune) bool { return !unicode.IsPrint(c) }) >= 0:
		return errors.New("-purpose: must be printable text")
	case n < 3 || n > 200:
		return errors.New("-purpose: must be 3 to 200 characters long")
	}
	r.Purpose = p
	if r.Command == opTokenCreate {
		if _, err := r.token(); err != nil {
			return err
		}
	}
	for _, k := range r.Keys {
		if _, err := integrity.ParsePublicPEM([]byte(k)); err != nil {
			return fmt.Errorf("trusted key: %w", err)
		}
	}
	return nil
}

// token is the api.tokens entry that token create describes, without its
// hash; it fails as the configuration would.
func (r *opRequest) token() (api.Token, error) {
	t := api.Token{Name: r.Name, Role: r.Role, Sites: r.Sites, SHA256: strings.Repeat("0", 64)}
	cfg := api.DefaultConfig()
	cfg.Tokens = []api.Token{t}
	if err := cfg.Validate(); err != nil {
		return t, err
	}
	t.SHA256 = ""
	return t, nil
}

// filters is the audit row's filters: the command's options, canonical JSON
// (keys sorted), trusted keys by id. The token itself is never recorded.
func (r *opRequest) filters() string {
	f := map[string]any{}
	switch r.Command {
	case opRetention:
		f["json"], f["enforce"] = r.JSON, r.Enforce
	case opVerify:
		ids := []string{}
		for _, k := range r.Keys {
			if pub, err := integrity.ParsePublicPEM([]byte(k)); err == nil {
				ids = append(ids, integrity.KeyID(pub))
			}
		}
		f["json"], f["trusted_keys"] = r.JSON, ids
	case opTokenCreate:
		f["name"], f["role"], f["sites"] = r.Name, r.Role, r.Sites
	}
	b, _ := json.Marshal(f)
	return string(b)
}

// run runs r against env, writing what the command prints to stdout.
func (r *opRequest) run(ctx context.Context, env opEnv, stdout io.Writer) error {
	switch r.Command {
	case opRetention:
		return runRetention(ctx, env.store, r.JSON, r.Enforce, stdout)
	case opVerify:
		var trusted []ed25519.PublicKey
		for _, k := range r.Keys {
			pub, err := integrity.ParsePublicPEM([]byte(k))
			if err != nil {
				return fmt.Errorf("trusted key: %w", err)
			}
			trusted = append(trusted, pub)
		}
		return runVerify(ctx, env.store, trusted, r.JSON, stdout)
	case opKey:
		if _, err := stdout.Write(env.signer.PublicPEM()); err != nil {
			return err
		}
		_, err := fmt.Fprintf(stdout, "key id: %s\n", integrity.KeyID(env.signer.Public()))
		return err
	case opTokenCreate:
		return runTokenCreate(r, stdout)
	}
	return fmt.Errorf("unknown operator command %q", r.Command)
}

// runOperator runs r: through the instance serving the data directory of
// the configuration at path if there is one, else against the store and
// key this process opens itself.
func runOperator(ctx context.Context, path string, r opRequest, stdout io.Writer) error {
	if err := r.validate(); err != nil {
		return err
	}
	cfg, err := loadConfig(path, os.Environ())
	if err != nil {
		return err
	}
	if served, err := viaAdminSocket(ctx, adminSocketPath(cfg.DataDir), r, stdout); served {
		return err
	}
	// No instance is serving: open what the command needs.
	if r.Command == opTokenCreate {
		return r.run(ctx, opEnv{}, stdout) // needs nothing but randomness
	}
	if err := prepareDataDir(&cfg); err != nil {
		return err
	}
	var env opEnv
	switch r.Command {
	case opKey:
		kp := instanceKeyPath(&cfg)
		sg, created, err := integrity.LoadOrCreate(kp)
		if err != nil {
			return err
		}
		if created {
			fmt.Fprintf(os.Stderr, "connlog key: created a new instance key at %s\n", kp)
		}
		env.signer = sg
	case opRetention, opVerify:
		st, err := openStore(ctx, &cfg, newLogger("warn"))
		if err != nil {
			return err
		}
		defer st.close()
		// Read only: verify changes nothing, not even the schema. The
		// report needs the schema and the configured lifetimes (serve
		// applies both at start).
		if r.Command == opRetention {
			if _, err := st.Migrate(ctx); err != nil {
				return err
			}
			if _, err := st.ApplyRetention(ctx); err != nil {
				return err
			}
		}
		env.store = st.Store
	}
	return r.run(ctx, env, stdout)
}
