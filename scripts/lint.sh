#!/bin/sh
# lint.sh is `make lint`: golangci-lint with .golangci.yml (staticcheck,
# errcheck, gosec, revive's exported rule, misspell, unparam, nolintlint and
# the standard set), then govulncheck over every package. Zero findings
# passes; anything else fails with the findings printed.
#
# Both tools are pinned here and built once per Go version into
# ${CONNLOG_CACHE_DIR:-~/.cache/connlog}/tools/<go version>/ (a linter built
# by an older Go refuses to load code that needs a newer one).
#
# govulncheck asks vuln.go.dev when it can be reached. Where it cannot (this
# project's CI reaches only the Go module proxy), it reads the same
# database built from golang.org/x/vulndb at VULNDB_VERSION, fetched from the
# module proxy: advisories published after that version are not seen until
# the pin is moved forward, so move it with each Go or dependency upgrade.
set -eu
# go.mod needs Go 1.27.3, fetched from the Go module proxy (see the Makefile).
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"

GOLANGCI_LINT_VERSION='v2.15.0'
GOVULNCHECK_VERSION='v1.9.0'
VULNDB_VERSION='v0.0.0-20261105234957-e22db6528018'

log() { printf 'lint: %s\n' "$*" >&2; }

cd "$(dirname "$0")/.."
go=${GO:-go}
cache=${CONNLOG_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/connlog}
bin="$cache/tools/$($go env GOVERSION)"
mkdir -p "$bin"

tool() { # tool NAME MODULE/cmd/NAME VERSION
	if [ ! -x "$bin/$1" ] || [ "$(cat "$bin/$1.version" 2>/dev/null)" != "$3" ]; then
		log "building $1 $3 (once per Go version)"
		GOBIN="$bin" GOFLAGS=-mod=mod $go install "$2@$3"
		printf '%s\n' "$3" >"$bin/$1.version"
	fi
}
tool golangci-lint github.com/golangci/golangci-lint/v2/cmd/golangci-lint "$GOLANGCI_LINT_VERSION"
tool govulncheck golang.org/x/vuln/cmd/govulncheck "$GOVULNCHECK_VERSION"

"$bin/golangci-lint" run ./...

db=''
if ! curl -fsS --max-time 5 -o /dev/null https://vuln.go.dev/index/db.json 2>/dev/null; then
	db="$cache/vulndb/$VULNDB_VERSION"
	if [ ! -f "$db/index/db.json" ]; then
		log "vuln.go.dev unreachable: building the vulnerability database from golang.org/x/vulndb@$VULNDB_VERSION"
		src=$(cd /tmp && $go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
		[ -d "$src/data/osv" ] || { log "error: no data/osv in golang.org/x/vulndb@$VULNDB_VERSION"; exit 1; }
		rm -rf "$db.tmp"
		(cd /tmp && GOFLAGS=-mod=mod $go run "golang.org/x/vulndb/cmd/indexdb@$VULNDB_VERSION" -vulns "$src/data/osv" -out "$db.tmp")
		mv "$db.tmp" "$db"
	fi
	log "govulncheck against golang.org/x/vulndb@$VULNDB_VERSION"
	"$bin/govulncheck" -db "file://$db" ./...
else
	"$bin/govulncheck" ./...
fi
