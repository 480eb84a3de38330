package embedded

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"time"
)

// The engine's log reaches connlog's logger through a file in the engine's
// data directory (logger.log in engineconf.go, with logger.console off),
// which followLog reads as it grows and passes on line by line. Why a file:
// chDB writes its log from its own C++ threads, wherever logger.log points,
// and only to a regular file (a FIFO stays silent: its file sink cannot
// seek); capturing fd 2 for the process lifetime would also swallow Go's
// own crash output. The file is removed at every Open, rotated by the
// engine at engineLogMaxSize (one old file kept), and lies in the data
// directory, which holds the data itself: it adds no exposure. One line does
// go to fd 2 at start-up ("Logging warning to …", printed by ClickHouse's
// logger set-up itself): Open captures fd 2 around chdb_connect for that
// (captureStderr).
//
// Levels are mapped to slog's: Fatal, Critical and Error to Error; Warning
// to Warn; Notice and Information to Info; Debug, Trace and Test to Debug.
// The original level stays in engine_level.
//
// ClickHouse log lines can carry query text and the values of a failed
// parse — IP addresses. So the text of executeQuery lines is never passed
// on, an exception (a message with "Code: N") is reduced to its code and
// name, and continuation lines (stack traces, multi-line queries) are
// dropped.

// engineLogMaxSize is the size at which the engine rotates its log file.
const engineLogMaxSize = 16 << 20

// followInterval is how often followLog looks for new lines.
const followInterval = 200 * time.Millisecond

// logLine is one engine log header line:
// "2026.12.03 13:42:52.153322 [ 31696 ] {query-id} <Fatal> Source: message".
var logLine = regexp.MustCompile(`^\d{4}\.\d{2}\.\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)? \[ *(\d+) *\] \{([^}]*)\} <(\w+)> (.*)$`)

var (
	codeInText = regexp.MustCompile(`Code: (\d+)`)
	errorName  = regexp.MustCompile(`\(([A-Z][A-Z0-9_]+)\)`)
)

// engineLevel maps a ClickHouse log level to slog's.
func engineLevel(name string) slog.Level {
	switch name {
	case "Fatal", "Critical", "Error":
		return slog.LevelError
	case "Warning":
		return slog.LevelWarn
	case "Notice", "Information":
		return slog.LevelInfo
	default: // Debug, Trace, Test
		return slog.LevelDebug
	}
}

// clickhouseLogLevel is the engine's logger.level for connlog's log level.
// At info, the engine's Information lines are internal chatter (merges,
// parts), so info shows its warnings and worse. Even at debug the engine
// stays at Information: its Debug and Trace lines quote query conditions
// with their values (IP addresses) from many sources, not only
// executeQuery.
func clickhouseLogLevel(level string) string {
	switch strings.ToLower(level) {
	case "debug":
		return "information"
	case "error":
		return "error"
	default:
		return "warning"
	}
}

// followLog passes every line the engine appends to the log file at path
// to logger, until stop is closed; then it reads what is left and returns.
// It follows the engine's rotation: when path names a new file, it
// finishes the old one and starts the new one from its beginning.
func followLog(path string, logger *slog.Logger, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	var (
		f       *os.File
		partial []byte
		buf     = make([]byte, 64<<10)
	)
	drain := func() {
		for f != nil {
			n, err := f.Read(buf)
			if n > 0 {
				partial = append(partial, buf[:n]...)
				for {
					i := bytes.IndexByte(partial, '\n')
					if i < 0 {
						break
					}
					logEngineLine(string(partial[:i]), logger)
					partial = partial[i+1:]
				}
				if len(partial) > 1<<20 { // no line is that long: drop it
					partial = partial[:0]
				}
			}
			if err != nil || n == 0 {
				return
			}
		}
	}
	t := time.NewTicker(followInterval)
	defer t.Stop()
	for {
		if f == nil {
			f, _ = os.Open(path) // not there until the engine's logger starts
		}
		drain()
		if f != nil {
			if cur, err := os.Stat(path); err == nil {
				if old, err := f.Stat(); err == nil && !os.SameFile(cur, old) {
					drain() // rotated: finish the old file
					_ = f.Close()
					f, partial = nil, partial[:0]
					continue
				}
			}
		}
		select {
		case <-stop:
			drain()
			if f != nil {
				_ = f.Close()
			}
			return
		case <-t.C:
		}
	}
}

// logEngineLine logs one engine log line; continuation lines are dropped.
func logEngineLine(line string, logger *slog.Logger) {
	m := logLine.FindStringSubmatch(line)
	if m == nil {
		return
	}
	thread, queryID, level, rest := m[1], m[2], m[3], m[4]
	source, msg, ok := strings.Cut(rest, ": ")
	if !ok {
		source, msg = "", rest
	}
	lvl := engineLevel(level)
	if strings.Contains(line, accessProbe) {
		lvl = slog.LevelDebug // Open's own probe, refused as it must be
	}
	attrs := []slog.Attr{slog.String("engine_level", level), slog.String("source", source), slog.String("thread", thread)}
	if queryID != "" {
		attrs = append(attrs, slog.String("query_id", queryID))
	}
	switch c := codeInText.FindStringSubmatch(msg); {
	case c != nil:
		attrs = append(attrs, slog.String("code", c[1]))
		if n := errorName.FindAllStringSubmatch(msg, -1); n != nil {
			attrs = append(attrs, slog.String("error", n[len(n)-1][1]))
		}
		msg = "engine exception (text withheld: it can quote queries and data)"
	case strings.HasPrefix(source, "executeQuery"):
		msg = "engine query log (text withheld: it quotes the query)"
	}
	logger.LogAttrs(context.Background(), lvl, msg, attrs...)
}
