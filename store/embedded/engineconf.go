package embedded

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// The engine's own configuration, written into the data directory at every
// Open and passed to chDB with --config-file. It does three things that no
// statement can undo:
//
//   - Access control: the engine's only user may not use any source
//     (REVOKE SOURCES: the file, url, remote, s3, hdfs, mysql, postgresql,
//     executable, … table functions and INSERT INTO FUNCTION) nor create
//     tables with an engine outside the MergeTree family and Null
//     (table_engines_require_grant: no URL, File, Distributed, MySQL, …
//     tables), dictionaries (whose sources reach the network) or backups
//     (which write files). ClickHouse checks these grants itself, whatever
//     the statement's text looks like.
//   - A time limit for every statement: the profile sets
//     max_execution_time to MaxQueryTime and a constraint keeps it between
//     1 second and MaxQueryTime, so neither a URL parameter nor a SETTINGS
//     clause can lift it (0, "no limit", is refused).
//   - Logging: the engine's log goes to a file that connlog follows and
//     passes on to its own structured logger (enginelog.go); nothing goes
//     to the console.
//
// What grants do not cover — the scalar file() function and the INTO
// OUTFILE / FROM INFILE clauses, which chDB serves as clickhouse-local does —
// is refused by the adapter before the engine sees the statement (guard.go).
const (
	engineConfigFile = "connlog-engine.xml"
	usersConfigFile  = "connlog-users.xml"
	engineLogFile    = "connlog-engine.log"
	// insertFilePattern names the files that hold the data of an INSERT
	// while it runs (see Engine.insert).
	insertFilePattern = "connlog-insert-*.data"
)

// tableEngines are the table engines connlog's schema uses in embedded mode.
var tableEngines = []string{
	"MergeTree", "ReplacingMergeTree", "AggregatingMergeTree", "SummingMergeTree",
	"CollapsingMergeTree", "VersionedCollapsingMergeTree", "Null",
}

// fileSettings are settings whose value is a path the engine reads; the
// profile fixes them at their defaults.
var fileSettings = []string{"format_schema", "format_template_resultset", "format_template_row"}

// writeEngineConfig writes the engine's configuration files into dir and
// returns the path of the main one.
func writeEngineConfig(dir string, maxQueryTime time.Duration, logLevel string) (string, error) {
	secs := strconv.FormatInt(maxQuerySeconds(maxQueryTime), 10)
	var users bytes.Buffer
	users.WriteString("<clickhouse>\n  <profiles>\n    <default>\n")
	users.WriteString("      <max_execution_time>" + secs + "</max_execution_time>\n")
	users.WriteString("      <constraints>\n        <max_execution_time><min>1</min><max>" + secs + "</max></max_execution_time>\n")
	// Settings that name a file the engine would read: template and
	// schema files of the Template, Protobuf and CapnProto formats.
	for _, name := range fileSettings {
		users.WriteString("        <" + name + "><readonly/></" + name + ">\n")
	}
	users.WriteString("      </constraints>\n")
	users.WriteString("    </default>\n  </profiles>\n  <users>\n    <default>\n      <password></password>\n")
	users.WriteString("      <networks><ip>::/0</ip></networks>\n      <profile>default</profile>\n      <quota>default</quota>\n")
	users.WriteString("      <grants>\n")
	grants := []string{"GRANT ALL ON *.*", "REVOKE SOURCES ON *.*", "REVOKE TABLE ENGINE ON *"}
	for _, e := range tableEngines {
		grants = append(grants, "GRANT TABLE ENGINE ON "+e)
	}
	grants = append(grants, "REVOKE BACKUP, CREATE DICTIONARY, dictGet, INTROSPECTION ON *.*")
	for _, g := range grants {
		users.WriteString("        <query>" + xmlText(g) + "</query>\n")
	}
	users.WriteString("      </grants>\n    </default>\n  </users>\n  <quotas><default/></quotas>\n</clickhouse>\n")

	usersPath := filepath.Join(dir, usersConfigFile)
	main := "<clickhouse>\n" +
		"  <users_config>" + xmlText(usersPath) + "</users_config>\n" +
		// The default (2 threads where chDB sees 2 cores) is too small
		// for connlog's tables: their tasks queue and the engine warns
		// "Temporarily pause scheduling of tasks" hundreds of times.
		"  <background_schedule_pool_size>16</background_schedule_pool_size>\n" +
		"  <access_control_improvements><table_engines_require_grant>true</table_engines_require_grant></access_control_improvements>\n" +
		"  <logger>\n" +
		"    <level>" + logLevel + "</level>\n" +
		"    <log>" + xmlText(filepath.Join(dir, engineLogFile)) + "</log>\n" +
		"    <console>0</console>\n" +
		"    <size>" + strconv.Itoa(engineLogMaxSize>>20) + "M</size>\n" +
		"    <count>1</count>\n" +
		"    <compress>false</compress>\n" +
		"  </logger>\n" +
		"</clickhouse>\n"
	mainPath := filepath.Join(dir, engineConfigFile)
	if err := os.WriteFile(usersPath, users.Bytes(), 0o600); err != nil {
		return "", fmt.Errorf("write engine users config: %w", err)
	}
	if err := os.WriteFile(mainPath, []byte(main), 0o600); err != nil {
		return "", fmt.Errorf("write engine config: %w", err)
	}
	return mainPath, nil
}

// maxQuerySeconds is d in whole seconds, at least 1.
func maxQuerySeconds(d time.Duration) int64 {
	return max(int64(d.Round(time.Second)/time.Second), 1)
}

func xmlText(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// accessProbe marks the statement of checkAccessControl; the engine's log
// line about its refusal is expected and logged at debug level only.
const accessProbe = "connlog-access-control-probe"

// checkAccessControl proves that the configuration took effect: file()
// must be refused for lack of a grant (SHOW GRANTS is no proof: it lists
// FILE, URL, … even after REVOKE SOURCES). If chDB ever ignored the users
// configuration, Open fails instead of running with every source open.
func (e *Engine) checkAccessControl() error {
	err := e.db.query("SELECT count() FROM file('/dev/null/"+accessProbe+"', 'LineAsString', 'line String')", "TSV", nil, nil)
	var ee *EngineError
	if errors.As(err, &ee) && ee.Code == codeAccessDenied {
		return nil
	}
	if err == nil {
		return errors.New("the engine's access control is not in effect: file() was allowed")
	}
	return fmt.Errorf("the engine's access control is not in effect: file() was not refused for lack of a grant: %w", err)
}

// codeAccessDenied is ClickHouse's ACCESS_DENIED.
const codeAccessDenied = 497
