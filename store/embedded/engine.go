package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxQueryTime is the max_execution_time applied to a statement whose
// request sets none.
const DefaultMaxQueryTime = 60 * time.Second

// chdbVersion is the chDB release scripts/fetch-chdb.sh installs.
const chdbVersion = "26.7.3-stable.1"

// Config configures an Engine.
type Config struct {
	// Library is the path to libchdb.so. Default: DefaultLibraryPath().
	Library string
	// Dir is the data directory; it is created if missing. Required.
	Dir string
	// MaxQueryTime is the time limit of every statement
	// (max_execution_time): a request may ask for less, never for more.
	// Default: DefaultMaxQueryTime.
	MaxQueryTime time.Duration
	// LogLevel is connlog's log level (debug, info, warn or error): the
	// engine's log lines at that level or worse are passed on to the
	// logger. Default: info.
	LogLevel string
}

// Validate reports configuration errors.
func (c Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("embedded: dir is required"))
	}
	if c.MaxQueryTime < 0 {
		errs = append(errs, fmt.Errorf("embedded: max query time %s is negative", c.MaxQueryTime))
	}
	return errors.Join(errs...)
}

// DefaultLibraryPath returns $CONNLOG_CHDB_LIBRARY if set, else the path where
// scripts/fetch-chdb.sh installs libchdb.so. The file may not exist.
func DefaultLibraryPath() string {
	if p := os.Getenv("CONNLOG_CHDB_LIBRARY"); p != "" {
		return p
	}
	root := os.Getenv("CONNLOG_CACHE_DIR")
	if root == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache")
		}
		root = filepath.Join(cache, "connlog")
	}
	return filepath.Join(root, "chdb", chdbVersion, "libchdb.so")
}

// ErrAlreadyOpen is returned by Open when this process already opened an
// Engine: chDB supports one engine per process, for its whole lifetime.
var ErrAlreadyOpen = errors.New("embedded ClickHouse is already open in this process (chDB allows one engine per process)")

// processOpened guards the one-engine-per-process rule of chDB. It is the
// package's only global: the constraint it models is itself process-wide.
var processOpened atomic.Bool

// Engine is the embedded ClickHouse engine (chDB). It runs one statement at a
// time; all methods are safe for concurrent use and queue on that single
// statement slot.
type Engine struct {
	cfg     Config
	logger  *slog.Logger
	db      *chdb
	version string

	slot   chan struct{} // holds a token while a statement runs
	closed chan struct{} // closed by Close
	// running is the deadline (Unix ns) of the statement holding the slot,
	// 0 when none does.
	running atomic.Int64
	// ownWaiting counts connlog's own statements waiting for the slot;
	// ownReleased is when (Unix ns) the last one left it.
	ownWaiting  atomic.Int32
	ownReleased atomic.Int64
	info        serverInfo
	// logStop stops following the engine's log; logDone is closed when
	// the follower is done.
	logStop, logDone chan struct{}
	fault            atomic.Pointer[func(query string) error]

	closeOnce sync.Once
	// dir is the absolute data directory.
	dir string
}

// ErrClosed is returned for statements sent after Close.
var ErrClosed = errors.New("embedded ClickHouse is closed")

// Open loads cfg.Library, opens the data directory and returns the Engine.
// Only one Engine can exist per process, and it cannot be re-opened after
// Close (chDB cannot be unloaded); a second call returns ErrAlreadyOpen.
func Open(cfg Config, logger *slog.Logger) (*Engine, error) {
	if !cgoBuild {
		return nil, ErrNeedsCgo
	}
	if cfg.Library == "" {
		cfg.Library = DefaultLibraryPath()
	}
	if cfg.MaxQueryTime == 0 {
		cfg.MaxQueryTime = DefaultMaxQueryTime
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(cfg.Library); err != nil {
		return nil, fmt.Errorf("embedded ClickHouse library: %w (run scripts/fetch-chdb.sh or set CONNLOG_CHDB_LIBRARY)", err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if !processOpened.CompareAndSwap(false, true) {
		return nil, ErrAlreadyOpen
	}
	start := time.Now()
	confPath, err := writeEngineConfig(dir, cfg.MaxQueryTime, clickhouseLogLevel(cfg.LogLevel))
	if err != nil {
		processOpened.Store(false)
		return nil, err
	}
	logPath := filepath.Join(dir, engineLogFile)
	stale, _ := filepath.Glob(filepath.Join(dir, insertFilePattern)) // left by a crash
	for _, p := range append(stale, logPath, logPath+".0") {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			processOpened.Store(false)
			return nil, fmt.Errorf("remove old engine log: %w", err)
		}
	}
	logStop, logDone := make(chan struct{}), make(chan struct{})
	engineLogger := logger.With("component", "embedded-engine")
	go followLog(logPath, engineLogger, logStop, logDone)
	restore, err := captureStderr()
	if err != nil {
		processOpened.Store(false)
		close(logStop)
		return nil, fmt.Errorf("capture engine start-up output: %w", err)
	}
	db, err := loadCHDB(cfg.Library, []string{"--path=" + dir, "--config-file=" + confPath, "--log-level=" + clickhouseLogLevel(cfg.LogLevel)})
	passStartupOutput(restore(), engineLogger)
	if err != nil {
		close(logStop)
		if errors.Is(err, errNotLoaded) {
			processOpened.Store(false) // chDB never started: a retry is safe
		}
		return nil, fmt.Errorf("open embedded ClickHouse: %w", err)
	}
	e := &Engine{
		cfg:     cfg,
		logger:  logger.With("component", "embedded"),
		db:      db,
		version: db.version(),
		slot:    make(chan struct{}, 1),
		closed:  make(chan struct{}),
		logStop: logStop,
		logDone: logDone,
		dir:     dir,
	}
	if err := e.checkAccessControl(); err != nil {
		_ = e.Close()
		return nil, fmt.Errorf("open embedded ClickHouse: %w", err)
	}
	if e.info, err = e.readServerInfo(); err != nil {
		_ = e.Close()
		return nil, fmt.Errorf("open embedded ClickHouse: %w", err)
	}
	e.logger.Info("embedded ClickHouse open", "version", e.version, "dir", dir, "duration", time.Since(start))
	return e, nil
}

// SetInsertFault installs a test hook: while f is non-nil, every insert first
// calls f with the INSERT statement, and fails with its error if it returns
// one. Pass nil to remove the hook. Safe for concurrent use.
func (e *Engine) SetInsertFault(f func(query string) error) {
	if f == nil {
		e.fault.Store(nil)
		return
	}
	e.fault.Store(&f)
}

// Close waits for the running statement, then closes chDB. Statements still
// queued or sent later fail with ErrClosed. The process cannot open another
// Engine afterwards.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		close(e.closed)
		e.slot <- struct{}{} // wait for the running statement; never released
		e.db.close()
		close(e.logStop)
		<-e.logDone
		e.logger.Info("embedded ClickHouse closed")
	})
	return nil
}

// operatorKey marks the context of a request from the operator listener.
type operatorKey struct{}

// operatorIdle is how long connlog's own statements must have left the
// slot alone before an operator's statement may take it.
const operatorIdle = 50 * time.Millisecond

// acquire waits for the statement slot, or until ctx is done. connlog's
// own statements (ingest, API, enforcement) come first: a request from the
// operator listener takes the slot only when none of them waits and none
// ran in the last operatorIdle, so operators' statements, however many
// and however long, cannot starve the evidence pipeline — each of its
// statements waits at most for one operator statement.
func (e *Engine) acquire(ctx context.Context) error {
	if ctx.Value(operatorKey{}) != nil {
		return e.acquireOperator(ctx)
	}
	e.ownWaiting.Add(1)
	defer e.ownWaiting.Add(-1)
	return e.acquireSlot(ctx)
}

func (e *Engine) acquireOperator(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if e.ownWaiting.Load() == 0 && time.Since(time.Unix(0, e.ownReleased.Load())) >= operatorIdle {
			select {
			case e.slot <- struct{}{}:
				select {
				case <-e.closed:
					<-e.slot
					return ErrClosed
				default:
				}
				return nil
			default:
			}
		}
		select {
		case <-e.closed:
			return ErrClosed
		case <-ctx.Done():
			return fmt.Errorf("wait for embedded ClickHouse: %w", context.Cause(ctx))
		case <-t.C:
		}
	}
}

func (e *Engine) acquireSlot(ctx context.Context) error {
	select {
	case <-e.closed:
		return ErrClosed
	default:
	}
	select {
	case e.slot <- struct{}{}:
		select {
		case <-e.closed: // Close won the slot race's aftermath
			<-e.slot
			return ErrClosed
		default:
		}
		return nil
	case <-e.closed:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("wait for embedded ClickHouse: %w", context.Cause(ctx))
	}
}

func (e *Engine) release() { <-e.slot }

// releaseFor frees the slot taken with acquire(ctx).
func (e *Engine) releaseFor(ctx context.Context) {
	if ctx.Value(operatorKey{}) == nil {
		e.ownReleased.Store(time.Now().UnixNano())
	}
	e.release()
}

// passStartupOutput passes on what the engine printed on fd 2 while it
// started: connlog's own JSON lines unchanged, the engine's as records.
func passStartupOutput(out []byte, logger *slog.Logger) {
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.TrimSpace(line) == "":
		case strings.HasPrefix(line, "{"):
			_, _ = os.Stderr.WriteString(line + "\n")
		default:
			logger.Debug("engine start-up output", "line", line)
		}
	}
}

// serverInfo is what clickhouse-go asks when it connects.
type serverInfo struct{ displayName, version, timezone string }

func (e *Engine) readServerInfo() (serverInfo, error) {
	var out string
	err := e.db.query("SELECT displayName(), version(), timezone()", "TabSeparated", nil, func(b []byte) error {
		out = string(b)
		return nil
	})
	if err != nil {
		return serverInfo{}, fmt.Errorf("read server info: %w", err)
	}
	f := strings.Split(strings.TrimRight(out, "\n"), "\t")
	if len(f) != 3 {
		return serverInfo{}, fmt.Errorf("unexpected server info %q", out)
	}
	return serverInfo{displayName: f[0], version: f[1], timezone: f[2]}, nil
}

// ErrNeedsCgo is returned by Open in a build without cgo, which cannot load
// chDB.
var ErrNeedsCgo = errors.New("embedded ClickHouse needs a cgo build of connlog (CGO_ENABLED=1 and a C compiler); configure a ClickHouse server instead")

// errNotLoaded marks Open failures that happened before chDB started.
var errNotLoaded = errors.New("chdb not loaded")

// param is a bound query parameter ({name:Type} in the statement).
type param struct{ name, value string }

// EngineError is an exception raised by ClickHouse, e.g.
// "Code: 60. DB::Exception: Unknown table ... (UNKNOWN_TABLE)".
type EngineError struct {
	Code    int    // ClickHouse error code, e.g. 62; 0 if unknown
	Message string // the full exception text
}

func (e *EngineError) Error() string { return e.Message }

var codeRe = regexp.MustCompile(`^Code:\s*(\d+)\.`)

func newEngineError(msg string) *EngineError {
	msg = strings.TrimSpace(msg)
	err := &EngineError{Message: msg}
	if m := codeRe.FindStringSubmatch(msg); m != nil {
		err.Code, _ = strconv.Atoi(m[1])
	}
	return err
}
