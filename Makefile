# connlog — the two commands of the README, plus a few for developers.
#   make run    build and start the whole pipeline on the embedded defaults
#   make test   install what the tests need, then lint and run every test (real engines)

GO      ?= go
# go.mod needs Go 1.27.3: Go 1.26.8, the Go of a fresh machine here, has
# known vulnerabilities in net/http and crypto/tls that connlog's code reaches
# (govulncheck, `make lint`). The go command fetches this toolchain from the
# Go module proxy once; a shell outside make needs the same export.
export GOTOOLCHAIN ?= go1.27.3
BIN     := bin/connlog
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# Where `make run` keeps its data (embedded ClickHouse, admin token).
DATA    ?= connlog-data

.PHONY: all build console-assets run test test-deps vet lint tidy-check fuzz bench chdb clean

all: build

build: console-assets
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/connlog

# The web console embeds its chart library (uPlot): copied from the npm
# tarball that console/package-lock.json pins, after checking its sha512
# integrity (the copy is committed, so plain `go build` works without npm).
console-assets:
	@cd console && node scripts/vendor.mjs

# The embedded ClickHouse engine (chDB, ~570 MB) is fetched once from the npm
# registry into ~/.cache/connlog, with its integrity checked.
chdb:
	@scripts/fetch-chdb.sh >/dev/null

run: build chdb
	@scripts/run-banner.sh
	CONNLOG_CHDB_LIBRARY="$$(scripts/fetch-chdb.sh 2>/dev/null)" CONNLOG_DATA_DIR="$(DATA)" ./$(BIN) serve

# Debian packages the tests drive for real: nginx, rsyslog(-kafka), kcat,
# prometheus (promtool), docker-compose (config validation), syslog-ng.
test-deps:
	@scripts/install-test-deps.sh

test: test-deps chdb vet tidy-check lint
	CONNLOG_REQUIRE_ENGINE=1 CONNLOG_REQUIRE_TOOLS=1 CONNLOG_CHDB_LIBRARY="$$(scripts/fetch-chdb.sh 2>/dev/null)" \
		$(GO) test -race -shuffle=on -timeout 45m -count=1 ./...
	@FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

# Every fuzz target, a short budget each (the committed corpus also runs as
# plain tests above). FUZZTIME=1m make fuzz for a longer look.
FUZZTIME ?= 10s
fuzz:
	@FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

vet:
	$(GO) vet ./...

# golangci-lint (.golangci.yml) and govulncheck, both pinned in the script;
# zero findings passes.
lint:
	@GO=$(GO) scripts/lint.sh

# go.mod and go.sum must already be tidy: a dependency change is committed.
tidy-check:
	@cp go.mod /tmp/connlog-go.mod.bak && cp go.sum /tmp/connlog-go.sum.bak
	@$(GO) mod tidy
	@if ! cmp -s go.mod /tmp/connlog-go.mod.bak || ! cmp -s go.sum /tmp/connlog-go.sum.bak; then \
		echo "go.mod/go.sum are not tidy: run 'go mod tidy' and commit" >&2; \
		cp /tmp/connlog-go.mod.bak go.mod; cp /tmp/connlog-go.sum.bak go.sum; exit 1; fi

# Go benchmarks on one core, then end to end from the Kafka protocol into the
# embedded ClickHouse, GoAccess and ClickHouse's own Regexp input format on the
# same file, and the query API over 50M rows (see BENCHMARKS.md).
bench: chdb
	scripts/bench.sh

clean:
	rm -rf bin
