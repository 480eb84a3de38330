package store

import (
	"context"
	"fmt"

	"github.com/connlog/connlog/store/internal/chsql"
)

// RoleUsers holds the passwords of the per-role ClickHouse users. A role
// whose password is empty gets no user.
type RoleUsers struct {
	// Ingest is the password of <prefix>_ingest (inserts, lifetimes).
	Ingest Secret `yaml:"ingest"`
	// Analyst is the password of <prefix>_analyst (reads the access log).
	Analyst Secret `yaml:"analyst"`
	// Officer is the password of <prefix>_officer (reads connection records).
	Officer Secret `yaml:"officer"`
	// Stats is the password of <prefix>_stats (reads audience statistics).
	Stats Secret `yaml:"stats"`
	// Auditor is the password of <prefix>_auditor (reads the audit trail
	// and retention metadata).
	Auditor Secret `yaml:"auditor"`
}

// RoleUser is one role's ClickHouse user and what it may do.
type RoleUser struct {
	Role   string
	User   string
	Grants []string // GRANT statements without the "TO user" part
}

// RoleUsersFor lists the ClickHouse user of each role and its grants, for
// the databases of cfg. Each role reads only its own database:
//
//	ingest   inserts everywhere, reads only what it needs (the manifest
//	         chains, holds, lifetimes), runs migrations and enforcement
//	analyst  the access log
//	officer  the connection records and held copies, the hold register
//	stats    audience statistics
//	auditor  the audit trail, retention metadata, manifests, table sizes
func RoleUsersFor(cfg Config) []RoleUser {
	db := cfg.databases()
	p := cfg.DatabasePrefix
	all := []string{db.Connections, db.Access, db.Ops, db.Stats}
	var ingest []string
	for _, d := range all {
		ingest = append(ingest, "GRANT CREATE TABLE, CREATE DATABASE, CREATE VIEW, ALTER, INSERT, OPTIMIZE, SHOW ON "+d+".*")
	}
	// What ingest itself reads: counts and expiry for enforcement, the
	// chain heads, the registers.
	ingest = append(ingest,
		"GRANT SELECT ON "+db.Ops+".*",
		"GRANT SELECT(event_time, site, client_ip, client_port, kafka_topic, kafka_partition, kafka_offset) ON "+db.Connections+".connection_records",
		"GRANT SELECT ON "+db.Connections+".held_records",
		"GRANT SELECT(event_time, site, kafka_topic, kafka_partition, kafka_offset) ON "+db.Access+".access_log",
		"GRANT SELECT ON "+db.Stats+".*",
		"GRANT SELECT ON system.parts",
	)
	return []RoleUser{
		{Role: "ingest", User: p + "_ingest", Grants: ingest},
		{Role: "analyst", User: p + "_analyst", Grants: []string{"GRANT SELECT ON " + db.Access + ".*"}},
		{Role: "officer", User: p + "_officer", Grants: []string{
			"GRANT SELECT ON " + db.Connections + ".*",
			"GRANT SELECT ON " + db.Ops + ".holds",
			"GRANT SELECT ON " + db.Ops + ".requisitions",
		}},
		{Role: "stats", User: p + "_stats", Grants: []string{"GRANT SELECT ON " + db.Stats + ".*"}},
		{Role: "auditor", User: p + "_auditor", Grants: []string{
			"GRANT SELECT ON " + db.Ops + ".audit",
			"GRANT SELECT ON " + db.Ops + ".retention_changes",
			"GRANT SELECT ON " + db.Ops + ".retention_runs",
			"GRANT SELECT ON " + db.Ops + ".manifests",
			"GRANT SELECT ON " + db.Ops + ".instance_keys",
			"GRANT SELECT ON " + db.Ops + ".holds",
			"GRANT SELECT ON " + db.Ops + ".schema_migrations",
			"GRANT SELECT ON system.parts",
		}},
	}
}

func (r RoleUsers) password(role string) Secret {
	switch role {
	case "ingest":
		return r.Ingest
	case "analyst":
		return r.Analyst
	case "officer":
		return r.Officer
	case "stats":
		return r.Stats
	case "auditor":
		return r.Auditor
	}
	return ""
}

// RoleSQL returns the statements that create the role users of cfg whose
// password is configured and grant each only its database. Passwords are
// stored by ClickHouse as SHA-256 (sha256_password). The statements carry
// the passwords: never log them.
func RoleSQL(cfg Config) []string {
	on := chsql.OnCluster(cfg.Cluster)
	var out []string
	for _, u := range RoleUsersFor(cfg) {
		pw := cfg.RoleUsers.password(u.Role)
		if pw == "" {
			continue
		}
		user := chsql.QuoteIdent(u.User)
		out = append(out,
			"CREATE USER IF NOT EXISTS "+user+on+" IDENTIFIED WITH sha256_password BY "+chsql.Quote(string(pw)),
			"ALTER USER "+user+on+" IDENTIFIED WITH sha256_password BY "+chsql.Quote(string(pw)),
			"REVOKE"+on+" ALL ON *.* FROM "+user,
		)
		for _, g := range u.Grants {
			out = append(out, grantOn(g, on)+" TO "+user)
		}
	}
	return out
}

// grantOn inserts ON CLUSTER after GRANT.
func grantOn(grant, on string) string {
	if on == "" {
		return grant
	}
	return "GRANT" + on + grant[len("GRANT"):]
}

// ApplyRoles creates or updates the role users on a ClickHouse server
// (RoleSQL). The embedded engine has no access management: there, it does
// nothing and the API enforces the separation itself. Run it after Migrate
// with an account that may manage users.
func (s *Store) ApplyRoles(ctx context.Context) error {
	stmts := RoleSQL(s.cfg)
	if len(stmts) == 0 {
		return nil
	}
	for i, st := range stmts {
		if err := s.conn.Exec(ctx, st); err != nil {
			// the statement holds a password: name it by position only
			return fmt.Errorf("apply role users, statement %d of %d: %w", i+1, len(stmts), err)
		}
	}
	s.logger.Info("role users applied", "statements", len(stmts))
	return nil
}

// ForRole returns the configuration that connects as role's ClickHouse user
// (RoleUsersFor), for a caller that wants each request's queries to run
// with the least privilege (the API, per request role). ok is false when
// no password is configured for role or in embedded mode, where the
// engine has no users: use c itself then.
func (c Config) ForRole(role string) (_ Config, ok bool) {
	pw := c.RoleUsers.password(role)
	if pw == "" || c.Embedded() {
		return c, false
	}
	for _, u := range RoleUsersFor(c) {
		if u.Role == role {
			c.Username, c.Password = u.User, pw
			return c, true
		}
	}
	return c, false
}
