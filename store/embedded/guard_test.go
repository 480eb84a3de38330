package embedded

import (
	"log/slog"
	"strings"
	"testing"
)

func TestGuardStatement(t *testing.T) {
	refused := []string{
		"SELECT file('/etc/passwd')",
		"SELECT FILE ('/etc/passwd')",
		"SELECT `file`('/etc/passwd')",
		`SELECT "file"('/etc/passwd')`,
		"SELECT file/* c */('/etc/passwd')",
		"SELECT file -- c\n('/etc/passwd')",
		"SELECT * FROM url('http://127.0.0.1:8080/readyz', 'LineAsString')",
		"SELECT * FROM remote('127.0.0.1:9000', system.one)",
		"SELECT * FROM s3('http://x/y')",
		"INSERT INTO FUNCTION file('/tmp/x') SELECT 1",
		"SELECT 1 INTO OUTFILE '/tmp/x'",
		"INSERT INTO t FROM INFILE '/etc/passwd' FORMAT CSV",
		"SELECT 1 # no comment for the guard\n, file('/x')",
		"SELECT $$x$$, file('/x')",
		"SELECT 1 /* /* nested */ file('/x') */",
	}
	for _, q := range refused {
		if err := guardStatement(q); err == nil {
			t.Errorf("guardStatement(%q) = nil, want a refusal", q)
		}
	}
	allowed := []string{
		"SELECT 'file(''/etc/passwd'')'",
		"SELECT 'url(x)', \"path\" FROM t",
		"SELECT count() FROM connlog_access.access_log WHERE path LIKE '/file(%' FORMAT TSV",
		"-- file('/x')\nSELECT 1",
		"/* url('x') */ SELECT 1",
		"INSERT INTO connlog_access.access_log (event_time, client_ip) VALUES",
		"SELECT * FROM numbers(10)",
		"SELECT URLHierarchy('http://a/b')",
		"ALTER TABLE t DELETE WHERE file_name = 'x'",
	}
	for _, q := range allowed {
		if err := guardStatement(q); err != nil {
			t.Errorf("guardStatement(%q) = %v, want nil", q, err)
		}
	}
}

func TestEngineLogLines(t *testing.T) {
	var out strings.Builder
	logger := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for _, line := range []string{
		"2026.12.03 13:42:52.153322 [ 31696 ] {} <Fatal> ThreadStatus: current_thread contains invalid address",
		"2026.12.03 13:42:52.153322 [ 31696 ] {q-1} <Error> executeQuery: Code: 60. DB::Exception: Unknown table 10.1.2.3 (UNKNOWN_TABLE) (in query: SELECT * FROM x WHERE ip = '10.1.2.3')",
		"2026.12.03 13:42:52.153322 [ 31696 ] {q-2} <Debug> executeQuery: (from 0.0.0.0:0) SELECT * FROM x WHERE ip = '10.9.9.9'",
		"2026.12.03 13:42:52.153322 [ 31696 ] {} <Warning> Context: something to look at",
		"2026.12.03 13:42:52.153322 [ 31696 ] {} <Information> Application: hello",
		"0. stack frame with 10.7.7.7",
	} {
		logEngineLine(line, logger)
	}
	got := out.String()
	for _, want := range []string{
		`level=ERROR msg="current_thread contains invalid address" engine_level=Fatal source=ThreadStatus`,
		`level=ERROR msg="engine exception (text withheld: it can quote queries and data)" engine_level=Error source=executeQuery thread=31696 query_id=q-1 code=60 error=UNKNOWN_TABLE`,
		`level=DEBUG msg="engine query log (text withheld: it quotes the query)"`,
		`level=WARN msg="something to look at" engine_level=Warning source=Context`,
		`level=INFO msg=hello engine_level=Information source=Application`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %s\n%s", want, got)
		}
	}
	for _, ip := range []string{"10.1.2.3", "10.9.9.9", "10.7.7.7"} {
		if strings.Contains(got, ip) {
			t.Errorf("an address from the engine's log reached connlog's log: %s\n%s", ip, got)
		}
	}
}
