package api_test

import (
	"testing"

	"github.com/connlog/connlog/store/embedded/embeddedtest"
)

func TestMain(m *testing.M) { embeddedtest.Main(m) }
