#!/usr/bin/env bash
# Runs every fuzz target for a short budget each (FUZZTIME, default 10s):
# coverage-guided inputs beyond the committed corpus, in CI on every run.
# A crasher is written under the package's testdata/fuzz/ and fails the run.
set -euo pipefail
# go.mod needs Go 1.27.3, fetched from the Go module proxy (see the Makefile).
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
  pkg=./$(dirname "${file#./}")
  for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //'); do
    echo "fuzz: $pkg $target ($fuzztime)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" >/tmp/connlog-fuzz.out 2>&1 || {
      cat /tmp/connlog-fuzz.out; exit 1; }
  done
done
