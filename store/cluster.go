package store

import (
	"regexp"
	"strings"

	"github.com/connlog/connlog/store/internal/chsql"
)

// Cluster mode: when Config.Cluster names a ClickHouse cluster, every DDL
// statement of the migrations and of ApplyRetention runs ON CLUSTER, the
// MergeTree tables become ReplicatedMergeTree (one replica per site, see
// deploy/clickhouse), insert deduplication uses the replicated window, and a
// Distributed table <table>_all is created beside each table for reads that
// must span shards.

// ReplicaPath is the Keeper path of a replicated table; {shard}, {replica}
// come from each server's macros, {database} and {table} from ClickHouse.
const ReplicaPath = "/clickhouse/tables/{shard}/{database}/{table}"

var (
	createDatabase = regexp.MustCompile(`^(?is)(CREATE\s+DATABASE\s+(?:IF\s+NOT\s+EXISTS\s+)?[A-Za-z0-9_]+)`)
	createTable    = regexp.MustCompile(`^(?is)(CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([A-Za-z0-9_]+)\.([A-Za-z0-9_]+))`)
	createView     = regexp.MustCompile(`^(?is)(CREATE\s+MATERIALIZED\s+VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?[A-Za-z0-9_]+\.[A-Za-z0-9_]+)`)
	alterTable     = regexp.MustCompile(`^(?is)(ALTER\s+TABLE\s+[A-Za-z0-9_]+\.[A-Za-z0-9_]+)`)
	dropView       = regexp.MustCompile(`^(?is)(DROP\s+VIEW\s+(?:IF\s+EXISTS\s+)?[A-Za-z0-9_]+\.[A-Za-z0-9_]+)`)
	engineClause   = regexp.MustCompile(`(?m)^ENGINE\s*=\s*(Replacing|Summing|Aggregating|Collapsing|VersionedCollapsing)?MergeTree(\(([^)]*)\))?`)
	nonReplWindow  = regexp.MustCompile(`non_replicated_deduplication_window`)
)

// ClusterStatements rewrites migration statements for the cluster named
// cluster: ON CLUSTER on CREATE DATABASE / CREATE TABLE / CREATE
// MATERIALIZED VIEW / ALTER TABLE / DROP VIEW,
// Replicated*MergeTree engines with the ReplicaPath, the replicated
// deduplication window, and a Distributed <table>_all after each CREATE
// TABLE. With cluster "" the statements are returned unchanged.
func ClusterStatements(cluster string, stmts []string) []string {
	if cluster == "" {
		return stmts
	}
	on := chsql.OnCluster(cluster)
	out := make([]string, 0, len(stmts))
	for _, st := range stmts {
		switch {
		case createDatabase.MatchString(st):
			st = createDatabase.ReplaceAllString(st, "${1}"+on)
			out = append(out, st)
		case createTable.MatchString(st):
			m := createTable.FindStringSubmatch(st)
			db, table := m[2], m[3]
			st = createTable.ReplaceAllString(st, "${1}"+on)
			st = engineClause.ReplaceAllStringFunc(st, func(e string) string {
				sm := engineClause.FindStringSubmatch(e)
				args := "'" + ReplicaPath + "', '{replica}'"
				if strings.TrimSpace(sm[3]) != "" {
					args += ", " + sm[3]
				}
				return "ENGINE = Replicated" + sm[1] + "MergeTree(" + args + ")"
			})
			st = nonReplWindow.ReplaceAllString(st, "replicated_deduplication_window")
			out = append(out, st)
			if strings.Contains(st, "MergeTree(") {
				out = append(out, "CREATE TABLE IF NOT EXISTS "+db+"."+table+"_all"+on+" AS "+db+"."+table+
					" ENGINE = Distributed("+chsql.Quote(cluster)+", "+db+", "+table+")")
			}
		case createView.MatchString(st):
			out = append(out, createView.ReplaceAllString(st, "${1}"+on))
		case alterTable.MatchString(st):
			st = alterTable.ReplaceAllString(st, "${1}"+on)
			out = append(out, nonReplWindow.ReplaceAllString(st, "replicated_deduplication_window"))
		case dropView.MatchString(st):
			out = append(out, dropView.ReplaceAllString(st, "${1}"+on))
		default:
			out = append(out, st)
		}
	}
	return out
}
