// Package deploy holds what it takes to run connlog outside the embedded
// defaults, and the tests that keep it working:
//
//	nginx/       the recommended log_format (JSON, escape=json) and why
//	shippers/    rsyslog, syslog-ng, Vector, Fluent Bit and Filebeat configs
//	clickhouse/  single-node and two-site (replicated) server configs, users and grants
//	prometheus/  scrape config, alert rules and their promtool unit tests
//	grafana/     provisioned datasources and dashboards
//	compose/     files mounted by the root docker-compose.yml
//
// The package has no Go API: its tests run the real tools (promtool,
// docker-compose, rsyslog, syslog-ng, Prometheus) on these files. A missing
// tool skips its test with a loud reason, or fails it when
// CONNLOG_REQUIRE_TOOLS=1; scripts/install-test-deps.sh installs them all.
package deploy
