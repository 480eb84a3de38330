package anonymize

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Day is a UTC calendar day, counted in days since 1970-01-01. Visitor keys
// are per Day.
type Day int32

// DayOf returns the UTC day of t.
func DayOf(t time.Time) Day {
	s := t.Unix()
	d := s / 86400
	if s < 0 && s%86400 != 0 {
		d--
	}
	return Day(d)
}

// Start returns midnight UTC at the beginning of d.
func (d Day) Start() time.Time { return time.Unix(int64(d)*86400, 0).UTC() }

// String returns the day as 2006-01-02.
func (d Day) String() string { return d.Start().Format(time.DateOnly) }

// KeyLifetime is how long a visitor key exists, counted from the start of
// its day: it serves its own day and the next one, for late log lines.
const KeyLifetime = 48 * time.Hour

// Key is a 128-bit SipHash key. It never prints: String, GoString and
// MarshalText return "<redacted>". A KeyStore reads and writes its bytes
// with key[:] and copy(key[:], b).
type Key [16]byte

// NewKey returns a random key from crypto/rand.
func NewKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return Key{}, fmt.Errorf("read random key: %w", err)
	}
	return k, nil
}

// String implements fmt.Stringer without revealing the key.
func (Key) String() string { return "<redacted>" }

// GoString implements fmt.GoStringer without revealing the key.
func (Key) GoString() string { return "<redacted>" }

// MarshalText keeps the key out of any serialised structure.
func (Key) MarshalText() ([]byte, error) { return []byte("<redacted>"), nil }

// KeyStore shares visitor keys between the connlog instances of one
// consumer group, so that they hash a visitor alike and their unique-visitor
// counts agree. It must never be the statistics database or a table next
// to the statistics, must be readable only by the ingest identity, and
// should expire rows by itself after two days (a backstop to Delete).
// Implementations must be safe for concurrent use.
type KeyStore interface {
	// Get returns the key of day, with ok false if there is none.
	Get(ctx context.Context, day Day) (key Key, ok bool, err error)
	// PutIfAbsent stores key for day unless a key is already stored, and
	// returns the key that is stored after the call: key itself, or the
	// one another instance stored first. Two instances racing must both get
	// the same winner.
	PutIfAbsent(ctx context.Context, day Day, key Key) (winner Key, err error)
	// Delete destroys the keys of every day before olderThan.
	Delete(ctx context.Context, olderThan Day) error
}

// MemoryKeyStore is a KeyStore in process memory, for a single instance
// and for tests. It is safe for concurrent use. Its zero value is not
// usable; call NewMemoryKeyStore.
type MemoryKeyStore struct {
	mu   sync.Mutex
	keys map[Day]Key
}

// NewMemoryKeyStore returns an empty MemoryKeyStore.
func NewMemoryKeyStore() *MemoryKeyStore { return &MemoryKeyStore{keys: make(map[Day]Key)} }

// Get implements KeyStore.
func (m *MemoryKeyStore) Get(_ context.Context, day Day) (Key, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.keys[day]
	return k, ok, nil
}

// PutIfAbsent implements KeyStore.
func (m *MemoryKeyStore) PutIfAbsent(_ context.Context, day Day, key Key) (Key, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k, ok := m.keys[day]; ok {
		return k, nil
	}
	m.keys[day] = key
	return key, nil
}

// Delete implements KeyStore. Deleted keys are overwritten with zeros.
func (m *MemoryKeyStore) Delete(_ context.Context, olderThan Day) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for d := range m.keys {
		if d < olderThan {
			m.keys[d] = Key{}
			delete(m.keys, d)
		}
	}
	return nil
}

// Len returns the number of stored keys.
func (m *MemoryKeyStore) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.keys)
}

// ErrKeyExpired is returned by [Keys.Key] for a day whose key may not
// exist: a day that ended more than a day ago (its key is destroyed) or a
// day that has not started yet.
var ErrKeyExpired = errors.New("visitor key outside its lifetime")

// Keys hands out the visitor key of each UTC day. It caches the keys of
// today and yesterday in memory, creates a day's key on first use
// (PutIfAbsent, so instances racing agree on one), and forgets a key in
// memory and in the KeyStore once [KeyLifetime] has passed since its day
// began. It never writes a key anywhere but its KeyStore.
//
// Keys is safe for concurrent use. Reading a cached key takes no lock and
// does not allocate.
type Keys struct {
	store KeyStore
	now   func() time.Time

	cache atomic.Pointer[keyCache]

	mu       sync.Mutex // serialises loads and sweeps
	lastFail time.Time  // guarded by mu: back off after a KeyStore error
}

// keyCache is an immutable snapshot of the keys in memory.
type keyCache struct {
	n       int
	days    [2]Day
	k0, k1  [2]uint64
	present [2]bool
}

// KeysOption configures Keys.
type KeysOption func(*Keys)

// WithClock makes Keys read the time from now instead of time.Now, for
// tests.
func WithClock(now func() time.Time) KeysOption { return func(k *Keys) { k.now = now } }

// NewKeys returns Keys backed by store.
func NewKeys(store KeyStore, opts ...KeysOption) *Keys {
	k := &Keys{store: store, now: time.Now}
	for _, o := range opts {
		o(k)
	}
	k.cache.Store(&keyCache{})
	return k
}

// live reports whether the key of day may exist at time now.
func live(day Day, now time.Time) bool {
	today := DayOf(now)
	return day == today || day == today-1
}

// cached returns the key of day, split into SipHash's two halves, if it is
// in memory and still alive.
func (k *Keys) cached(day Day, now time.Time) (k0, k1 uint64, ok bool) {
	if !live(day, now) {
		return 0, 0, false
	}
	c := k.cache.Load()
	for i := range c.n {
		if c.present[i] && c.days[i] == day {
			return c.k0[i], c.k1[i], true
		}
	}
	return 0, 0, false
}

// Key returns the key of day: from memory, else from the KeyStore, else a
// new random key offered with PutIfAbsent. It returns ErrKeyExpired for a
// day other than today or yesterday.
func (k *Keys) Key(ctx context.Context, day Day) (Key, error) {
	k0, k1, err := k.halves(ctx, day)
	if err != nil {
		return Key{}, err
	}
	var key Key
	binary.LittleEndian.PutUint64(key[:8], k0)
	binary.LittleEndian.PutUint64(key[8:], k1)
	return key, nil
}

// retryAfter is how long the hot path waits after a KeyStore error before
// asking again, so an unavailable KeyStore does not stall every hit.
const retryAfter = 10 * time.Second

var errKeyStoreBackoff = errors.New("key store failed recently, not retrying yet")

func (k *Keys) halves(ctx context.Context, day Day) (uint64, uint64, error) {
	now := k.now()
	if k0, k1, ok := k.cached(day, now); ok {
		return k0, k1, nil
	}
	if !live(day, now) {
		return 0, 0, fmt.Errorf("key of %s: %w", day, ErrKeyExpired)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k0, k1, ok := k.cached(day, now); ok { // loaded while we waited
		return k0, k1, nil
	}
	if !k.lastFail.IsZero() && now.Sub(k.lastFail) < retryAfter {
		return 0, 0, fmt.Errorf("key of %s: %w", day, errKeyStoreBackoff)
	}
	key, err := k.load(ctx, day)
	if err != nil {
		k.lastFail = now
		return 0, 0, err
	}
	k.lastFail = time.Time{}
	k0 := binary.LittleEndian.Uint64(key[:8])
	k1 := binary.LittleEndian.Uint64(key[8:])
	k.install(day, k0, k1, now)
	return k0, k1, nil
}

func (k *Keys) load(ctx context.Context, day Day) (Key, error) {
	key, ok, err := k.store.Get(ctx, day)
	if err != nil {
		return Key{}, fmt.Errorf("get key of %s: %w", day, err)
	}
	if ok {
		return key, nil
	}
	fresh, err := NewKey()
	if err != nil {
		return Key{}, err
	}
	key, err = k.store.PutIfAbsent(ctx, day, fresh)
	if err != nil {
		return Key{}, fmt.Errorf("put key of %s: %w", day, err)
	}
	return key, nil
}

// install publishes a snapshot holding day's key and the other live key,
// dropping any key past its lifetime. Callers hold k.mu.
func (k *Keys) install(day Day, k0, k1 uint64, now time.Time) {
	old := k.cache.Load()
	next := &keyCache{}
	next.days[0], next.k0[0], next.k1[0], next.present[0] = day, k0, k1, true
	next.n = 1
	for i := range old.n {
		if old.present[i] && old.days[i] != day && live(old.days[i], now) {
			next.days[1], next.k0[1], next.k1[1], next.present[1] = old.days[i], old.k0[i], old.k1[i], true
			next.n = 2
			break
		}
	}
	k.cache.Store(next)
}

// Sweep forgets every key past its lifetime, in memory and in the
// KeyStore. [Keys.Run] calls it every minute; key lookups also ignore an
// expired key even before it is swept.
func (k *Keys) Sweep(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	old := k.cache.Load()
	next := &keyCache{}
	for i := range old.n {
		if old.present[i] && live(old.days[i], now) {
			next.days[next.n], next.k0[next.n], next.k1[next.n], next.present[next.n] = old.days[i], old.k0[i], old.k1[i], true
			next.n++
		}
	}
	k.cache.Store(next)
	if err := k.store.Delete(ctx, DayOf(now)-1); err != nil {
		return fmt.Errorf("delete keys before %s: %w", DayOf(now)-1, err)
	}
	return nil
}

// Run makes today's key ready and sweeps expired keys every interval
// (a minute if interval is not positive) until ctx is done. It returns nil
// when ctx is cancelled. KeyStore errors are retried at the next tick and
// reported through onError if it is not nil (its errors never carry keys).
func (k *Keys) Run(ctx context.Context, interval time.Duration, onError func(error)) error {
	if interval <= 0 {
		interval = time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := k.Key(ctx, DayOf(k.now())); err != nil && onError != nil && ctx.Err() == nil {
			onError(err)
		}
		if err := k.Sweep(ctx); err != nil && onError != nil && ctx.Err() == nil {
			onError(err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
