// Package retention keeps each data class for its lifetime and no longer:
// the lifetimes of the configuration (Config, Period, per-site overrides),
// the TTL expressions that ClickHouse enforces on each table (Tables,
// Table.Expiry), the enforcement pass that removes what expired and
// releases expired legal holds (Enforcer.Enforce, RunEnforcement), the
// record of every lifetime change and pass (retention_changes,
// retention_runs), and the retention report that auditors read
// (Enforcer.RetentionReport).
//
// store.Store embeds the Enforcer of its databases, so that the store's
// callers (connlog serve, connlog retention, the API's /v1/retention) keep
// one handle; the legal holds reach it through the small Holds interface.
package retention
