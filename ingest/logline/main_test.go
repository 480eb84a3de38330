package logline

import (
	"testing"

	"github.com/connlog/connlog/store/embedded/embeddedtest"
)

// TestMain closes the embedded ClickHouse before the binary exits (the
// exactly-once tests use it).
func TestMain(m *testing.M) { embeddedtest.Main(m) }
