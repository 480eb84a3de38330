// Package storetest gives tests of every package a store on the real engine:
// the embedded ClickHouse of the test process (store/embedded/embeddedtest),
// migrated, in databases of its own so that tests do not see each other's
// rows. It is the one place that knows how a test opens a store; a package
// whose tests use it calls embeddedtest.Main from its TestMain.
package storetest

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"testing"

	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/embedded/embeddedtest"
)

// Config returns a store configuration for the test engine (started on first
// use): its address over HTTP and a database prefix of its own. Opening it
// twice reaches the same databases, as a restarted connlog would.
func Config(tb testing.TB) store.Config {
	tb.Helper()
	cfg := store.DefaultConfig()
	cfg.Addrs = []string{embeddedtest.Start(tb)}
	cfg.Protocol = "http"
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	cfg.DatabasePrefix = "t" + hex.EncodeToString(b)
	return cfg
}

// Open opens a store with cfg, without migrating it, and closes it when the
// test ends.
func Open(tb testing.TB, cfg store.Config) *store.Store {
	tb.Helper()
	st, err := store.Open(tb.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	return st
}

// New returns a migrated store in databases of its own, closed when the test
// ends. Each edit, in order, changes the configuration before the store is
// opened (retention periods, roles, ...).
func New(tb testing.TB, edits ...func(*store.Config)) *store.Store {
	tb.Helper()
	cfg := Config(tb)
	for _, edit := range edits {
		edit(&cfg)
	}
	return Migrated(tb, cfg)
}

// Migrated opens a store with cfg (usually from Config), migrates it and
// closes it when the test ends.
func Migrated(tb testing.TB, cfg store.Config) *store.Store {
	tb.Helper()
	st := Open(tb, cfg)
	if _, err := st.Migrate(tb.Context()); err != nil {
		tb.Fatal(err)
	}
	return st
}
