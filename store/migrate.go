package store

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/connlog/connlog/store/internal/chsql"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one versioned schema change.
type Migration struct {
	Version    int
	Name       string
	Statements []string
	// Checksum is the SHA-256 of the file, recorded so that an edited
	// migration that was already applied is noticed.
	Checksum string
}

// Migrations returns the embedded migrations in version order, with the
// database names of cfg substituted.
func Migrations(cfg Config) ([]Migration, error) {
	db := cfg.databases()
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	repl := strings.NewReplacer("${connections}", db.Connections, "${access}", db.Access, "${ops}", db.Ops, "${stats}", db.Stats)
	var out []Migration
	for _, name := range names {
		raw, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		base := strings.TrimSuffix(path.Base(name), ".sql")
		num, label, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must be NNNN_label.sql", name)
		}
		sum := sha256.Sum256(raw)
		out = append(out, Migration{
			Version:    v,
			Name:       label,
			Statements: ClusterStatements(cfg.Cluster, splitStatements(repl.Replace(string(raw)))),
			Checksum:   hex.EncodeToString(sum[:]),
		})
	}
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("migrations: version %d appears twice", out[i].Version)
		}
	}
	return out, nil
}

// splitStatements splits a migration file on ';' at the end of a line and
// drops "--" comment lines. Migrations are our own files, so this simple
// rule is enough; it does not try to parse SQL.
func splitStatements(sql string) []string {
	var stmts []string
	var cur strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			if s := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"); s != "" {
				stmts = append(stmts, s)
			}
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		stmts = append(stmts, s)
	}
	return stmts
}

// SchemaVersion returns the highest applied migration version, 0 for an
// empty store.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	applied, err := s.appliedMigrations(ctx)
	if err != nil {
		return 0, err
	}
	v := 0
	for a := range applied {
		v = max(v, a)
	}
	return v, nil
}

func (s *Store) appliedMigrations(ctx context.Context) (map[int]bool, error) {
	if err := s.bootstrap(ctx); err != nil {
		return nil, err
	}
	rows, err := s.conn.Query(ctx, "SELECT DISTINCT version FROM "+s.db.Ops+".schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	defer rows.Close()
	applied := map[int]bool{}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("read applied migrations: %w", err)
		}
		applied[int(v)] = true
	}
	return applied, rows.Err()
}

func (s *Store) bootstrap(ctx context.Context) error {
	for _, stmt := range []string{
		"CREATE DATABASE IF NOT EXISTS " + s.db.Ops,
		`CREATE TABLE IF NOT EXISTS ` + s.db.Ops + `.schema_migrations
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY version`,
	} {
		if err := s.conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("create migrations table: %w", err)
		}
	}
	return nil
}

// Migrate applies every embedded migration not yet recorded, in version
// order, recording each one. Statements are idempotent (IF NOT EXISTS), so
// a migration interrupted half-way is simply applied again. It returns the
// versions applied.
func (s *Store) Migrate(ctx context.Context) ([]int, error) {
	migs, err := Migrations(s.cfg)
	if err != nil {
		return nil, err
	}
	done, err := s.appliedMigrations(ctx)
	if err != nil {
		return nil, err
	}
	known := map[int]bool{}
	for _, m := range migs {
		known[m.Version] = true
	}
	for v := range done {
		if !known[v] {
			return nil, fmt.Errorf("store has schema migration %d that this connlog does not know: upgrade connlog", v)
		}
	}
	var applied []int
	// The tables may change: the insert column types are described again.
	defer s.types.forget()
	for _, m := range migs {
		if done[m.Version] {
			continue
		}
		for i, stmt := range m.Statements {
			if err := s.conn.Exec(ctx, stmt); err != nil {
				return applied, fmt.Errorf("migration %04d_%s statement %d: %w", m.Version, m.Name, i+1, err)
			}
		}
		pctx := chsql.WithParams(ctx, map[string]string{
			"v": strconv.Itoa(m.Version), "n": chsql.Escape(m.Name), "c": m.Checksum, "t": chsql.Time(time.Now()),
		})
		err := s.conn.Exec(pctx, "INSERT INTO "+s.db.Ops+".schema_migrations (version, name, checksum, applied_at) VALUES ({v:UInt32}, {n:String}, {c:String}, {t:DateTime64(3, 'UTC')})")
		if err != nil {
			return applied, fmt.Errorf("record migration %04d: %w", m.Version, err)
		}
		s.logger.Info("schema migration applied", "version", m.Version, "name", m.Name)
		applied = append(applied, m.Version)
	}
	return applied, nil
}
