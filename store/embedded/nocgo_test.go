//go:build !cgo

package embedded

import (
	"errors"
	"log/slog"
	"testing"
)

func TestOpenWithoutCgo(t *testing.T) {
	_, err := Open(Config{Dir: t.TempDir()}, slog.New(slog.DiscardHandler))
	if !errors.Is(err, ErrNeedsCgo) {
		t.Fatalf("Open: %v, want ErrNeedsCgo", err)
	}
}
