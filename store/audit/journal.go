package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Sink stores a batch of audit rows once per token: a second call with a
// token already stored must store nothing (*store.Store.AuditBatch).
type Sink interface {
	AuditBatch(ctx context.Context, token string, entries []Entry) error
}

// JournalOptions configure a Journal.
type JournalOptions struct {
	// Dir holds the journal: one file per segment, and the instance id.
	Dir string
	// Interval between two shipments to the Sink (Run). Default 200ms.
	Interval time.Duration
	// MaxBacklog bounds the bytes of rows not yet shipped; beyond it,
	// Audit fails. Default 64 MiB.
	MaxBacklog int64
	Logger     *slog.Logger
}

// ErrBacklog is returned by Audit when MaxBacklog bytes of rows wait for
// the Sink.
var ErrBacklog = errors.New("audit journal: too many rows not yet stored in ClickHouse")

const segmentSuffix = ".jsonl"

// Journal is an append-only, fsynced audit log shipped to a Sink. It is
// safe for concurrent use.
type Journal struct {
	opts JournalOptions
	sink Sink
	id   string // instance id, part of every token

	mu      sync.Mutex // the active segment
	active  *os.File
	name    string // active segment's file name
	size    int64  // bytes in the active segment
	closed  int64  // bytes in closed segments not yet shipped
	lastSeg string // name of the last segment created, to keep names increasing
	closing bool   // Close was called: no new segment, Audit refused

	ship sync.Mutex // one shipment at a time
}

// OpenJournal opens (or creates) the journal in opts.Dir. Segments found there are
// shipped by the first Flush.
func OpenJournal(opts JournalOptions, sink Sink) (*Journal, error) {
	if opts.Interval <= 0 {
		opts.Interval = 200 * time.Millisecond
	}
	if opts.MaxBacklog <= 0 {
		opts.MaxBacklog = 64 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit journal: %w", err)
	}
	id, err := instanceID(opts.Dir)
	if err != nil {
		return nil, err
	}
	j := &Journal{opts: opts, sink: sink, id: id}
	segs, err := j.segments()
	if err != nil {
		return nil, err
	}
	for _, s := range segs {
		if fi, err := os.Stat(filepath.Join(opts.Dir, s)); err == nil {
			j.closed += fi.Size()
		}
		j.lastSeg = s
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.rotateLocked(); err != nil {
		return nil, err
	}
	return j, nil
}

// instanceID reads the journal's random id, creating it the first time:
// tokens of two instances (or two data directories) never collide.
func instanceID(dir string) (string, error) {
	path := filepath.Join(dir, "instance")
	if b, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(b)) > 0 {
		return string(bytes.TrimSpace(b)), nil
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("audit journal id: %w", err)
	}
	id := hex.EncodeToString(b[:])
	if err := writeSynced(path, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("audit journal id: %w", err)
	}
	return id, syncDir(dir)
}

// Audit appends e to the journal and returns once it is on stable storage.
func (j *Journal) Audit(ctx context.Context, e Entry) error {
	return j.AuditMany(ctx, []Entry{e})
}

// AuditMany appends entries to the journal with one write and one fsync,
// and returns once they are all on stable storage; on an error none of them
// is (they would be skipped or cut back, like a single row).
func (j *Journal) AuditMany(_ context.Context, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	var buf []byte
	for _, e := range entries {
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		line, err := json.Marshal(encodeEntry(e))
		if err != nil {
			return fmt.Errorf("audit journal: %w", err)
		}
		buf = append(append(buf, line...), '\n')
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closing {
		return errors.New("audit journal: closed")
	}
	if j.active == nil {
		// An earlier failure left no segment open: try again now (the
		// disk may be back).
		if err := j.rotateLocked(); err != nil {
			return err
		}
	}
	if j.closed+j.size+int64(len(buf)) > j.opts.MaxBacklog {
		return ErrBacklog
	}
	n, err := j.active.Write(buf)
	if err == nil {
		err = j.active.Sync()
	}
	if err != nil {
		// The request will be refused: its row, whole or partial, must not
		// stay in the segment, or it would be shipped as if answered. Cut
		// the segment back to its last acknowledged row, then move on to a
		// new segment.
		if n > 0 {
			if terr := j.active.Truncate(j.size); terr == nil {
				_ = j.active.Sync()
			} else {
				// A torn row is skipped when shipped; a complete one
				// would be stored although its request was refused.
				j.size += int64(n)
				j.opts.Logger.Error("audit journal: a refused request's row could not be removed from the journal; it may appear in the audit trail", "segment", j.name, "err", terr)
			}
		}
		if rerr := j.rotateLocked(); rerr != nil {
			j.opts.Logger.Error("audit journal: no segment to write to", "err", rerr)
		}
		return fmt.Errorf("audit journal: write: %w", err)
	}
	j.size += int64(n)
	return nil
}

// Flush ships every row appended before the call to the Sink, oldest
// segment first. It returns the first error (the Sink's, usually), the rows
// staying in the journal for the next Flush. While older segments cannot be
// shipped, the active one keeps growing instead of being cut into many
// small segments (each would become a part in ClickHouse).
func (j *Journal) Flush(ctx context.Context) error {
	j.ship.Lock()
	defer j.ship.Unlock()
	if err := j.shipBefore(ctx, j.activeName()); err != nil {
		return err
	}
	j.mu.Lock()
	if j.active != nil && j.size > 0 {
		if err := j.rotateLocked(); err != nil {
			j.mu.Unlock()
			return err
		}
	}
	j.mu.Unlock()
	return j.shipBefore(ctx, j.activeName())
}

// activeName is the segment Audit writes to, "" if none (closed, or after
// a failure): every segment whose name sorts before it is closed.
func (j *Journal) activeName() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.active == nil {
		return ""
	}
	return j.name
}

// shipBefore ships the segments whose names sort before active (all of
// them if active is ""). Names only increase, so a segment created while
// this runs is never shipped by it.
func (j *Journal) shipBefore(ctx context.Context, active string) error {
	segs, err := j.segments()
	if err != nil {
		return err
	}
	for _, s := range segs {
		if active != "" && s >= active {
			break
		}
		if err := j.shipSegment(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// shipSegment sends one closed segment to the Sink, then deletes it.
func (j *Journal) shipSegment(ctx context.Context, name string) error {
	path := filepath.Join(j.opts.Dir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("audit journal: %w", err)
	}
	entries, torn, err := decode(data)
	if err != nil {
		// A damaged segment (not a torn last line: those decode) must not
		// block the rows behind it. It is kept aside for the operator.
		aside := path + ".damaged"
		if rerr := os.Rename(path, aside); rerr != nil {
			return fmt.Errorf("audit journal: segment %s cannot be read (%v) nor set aside: %w", name, err, rerr)
		}
		j.opts.Logger.Error("audit journal: a segment cannot be read; set aside, its rows are not in ClickHouse", "file", aside, "err", err)
		j.mu.Lock()
		j.closed = max(0, j.closed-int64(len(data)))
		j.mu.Unlock()
		return nil
	}
	if torn {
		j.opts.Logger.Warn("audit journal: a segment ends with an incomplete row (a write interrupted before its request was answered); skipped", "segment", name)
	}
	if len(entries) > 0 {
		token := "auditjournal/" + j.id + "/" + strings.TrimSuffix(name, segmentSuffix)
		if err := j.sink.AuditBatch(ctx, token, entries); err != nil {
			return fmt.Errorf("audit journal: store %d rows: %w", len(entries), err)
		}
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("audit journal: %w", err)
	}
	// Durable removal: a segment that came back after a power loss would
	// be shipped again, stored once only while its token is within the
	// table's deduplication window.
	if err := syncDir(j.opts.Dir); err != nil {
		j.opts.Logger.Warn("audit journal: sync directory after removing a shipped segment", "err", err)
	}
	j.mu.Lock()
	j.closed = max(0, j.closed-int64(len(data)))
	j.mu.Unlock()
	return nil
}

// Run flushes every Interval until ctx is done. Failures are logged and
// retried; they never stop Run. The caller flushes once more after the last
// request is answered (then Close), so that a clean stop leaves nothing
// behind.
func (j *Journal) Run(ctx context.Context) error {
	t := time.NewTicker(j.opts.Interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := j.Flush(ctx); err != nil && ctx.Err() == nil {
			if !failing {
				j.opts.Logger.Error("audit journal: cannot store rows in ClickHouse; retrying (data requests are refused once the backlog is full)", "err", err, "backlog_bytes", j.Backlog())
			}
			failing = true
		} else if failing && err == nil {
			j.opts.Logger.Info("audit journal: rows stored again")
			failing = false
		}
	}
}

// Backlog returns the bytes of rows not yet shipped.
func (j *Journal) Backlog() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.closed + j.size
}

// Close closes the active segment (removing it if empty); Audit fails from
// then on. Rows not shipped stay in the journal: a Flush after Close ships
// them (serve does, at shutdown), or the next Open.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.closing = true
	if j.active == nil {
		return nil
	}
	err := j.active.Close()
	if j.size == 0 {
		_ = os.Remove(filepath.Join(j.opts.Dir, j.name))
	}
	j.closed += j.size
	j.active, j.size = nil, 0
	return err
}

// rotateLocked closes the active segment and starts a new, empty one. The
// caller holds j.mu.
func (j *Journal) rotateLocked() error {
	if j.closing {
		return errors.New("audit journal: closed")
	}
	if j.active != nil {
		if err := j.active.Close(); err != nil {
			j.opts.Logger.Warn("audit journal: close segment", "err", err)
		}
		j.closed += j.size
		j.active = nil
	}
	// Names sort in creation order (shipping order), even if the clock goes
	// back: never below the previous one.
	name := fmt.Sprintf("%020d%s", time.Now().UnixNano(), segmentSuffix)
	if name <= j.lastSeg {
		// The last segment's name is the clock's: one past it keeps the
		// order when the clock went back.
		n, err := strconv.ParseInt(strings.TrimSuffix(j.lastSeg, segmentSuffix), 10, 64)
		if err != nil {
			return fmt.Errorf("audit journal: segment name %q: %w", j.lastSeg, err)
		}
		name = fmt.Sprintf("%020d%s", n+1, segmentSuffix)
	}
	f, err := os.OpenFile(filepath.Join(j.opts.Dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audit journal: new segment: %w", err)
	}
	if err := syncDir(j.opts.Dir); err != nil {
		_ = f.Close() // the first error is the one returned
		return fmt.Errorf("audit journal: new segment: %w", err)
	}
	j.active, j.name, j.size, j.lastSeg = f, name, 0, name
	return nil
}

// segments lists the segment files, oldest first.
func (j *Journal) segments() ([]string, error) {
	des, err := os.ReadDir(j.opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("audit journal: %w", err)
	}
	var out []string
	for _, de := range des {
		if !de.IsDir() && strings.HasSuffix(de.Name(), segmentSuffix) {
			out = append(out, de.Name())
		}
	}
	slices.Sort(out)
	return out, nil
}

// jsonEntry is the journal's line format: the entry's JSON (Entry's
// tags). JSON strings hold valid UTF-8 only; a field that is not (a purpose
// header, say) travels base64-encoded in Raw instead, so every row reaches
// ClickHouse byte for byte.
type jsonEntry struct {
	Entry
	Raw map[string][]byte `json:"raw,omitempty"`
}

// fields lists the string fields of e by their JSON names, for Raw.
func fields(e *Entry) map[string]*string {
	return map[string]*string{
		"actor": &e.Actor, "role": &e.Role, "source": &e.Source, "method": &e.Method, "endpoint": &e.Endpoint,
		"purpose": &e.Purpose, "filters": &e.Filters, "outcome": &e.Outcome, "reason": &e.Reason,
	}
}

func encodeEntry(e Entry) jsonEntry {
	je := jsonEntry{Entry: e}
	for name, f := range fields(&je.Entry) {
		if !utf8.ValidString(*f) {
			if je.Raw == nil {
				je.Raw = map[string][]byte{}
			}
			je.Raw[name], *f = []byte(*f), ""
		}
	}
	return je
}

func decodeEntry(je jsonEntry) Entry {
	for name, f := range fields(&je.Entry) {
		if b, ok := je.Raw[name]; ok {
			*f = string(b)
		}
	}
	return je.Entry
}

// decode parses a segment. torn reports a last line without its newline
// (a write cut short), which is left out.
func decode(data []byte) (entries []Entry, torn bool, err error) {
	if n := len(data); n > 0 && data[n-1] != '\n' {
		torn = true
		data = data[:bytes.LastIndexByte(data, '\n')+1]
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var je jsonEntry
		if err := json.Unmarshal(sc.Bytes(), &je); err != nil {
			return nil, torn, err
		}
		entries = append(entries, decodeEntry(je))
	}
	return entries, torn, sc.Err()
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close() // the first error is the one returned
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close() // the first error is the one returned
		return err
	}
	return f.Close()
}

// syncDir makes a file creation or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }() // read-only: Sync is what must succeed
	return d.Sync()
}
