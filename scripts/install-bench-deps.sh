#!/bin/sh
# install-bench-deps.sh installs what `make bench` compares connlog with:
# Debian's GoAccess. Idempotent and quiet when it is already there; non-zero
# exit with apt's message when the package manager is unreachable. Run as
# root (or with sudo) on Debian bookworm:
#
#	scripts/install-bench-deps.sh
set -eu

log() { printf 'install-bench-deps: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

PKGS='goaccess'

installed() { dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null | grep -qx installed; }

missing=''
for p in $PKGS; do installed "$p" || missing="$missing $p"; done
[ -z "$missing" ] && exit 0

command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install$missing yourself (Debian/Ubuntu only)"
SUDO=''
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || die "run as root (or install sudo)"
	SUDO='sudo'
fi
export DEBIAN_FRONTEND=noninteractive
errlog="${TMPDIR:-/tmp}/connlog-bench-apt.log"
log "installing:$missing"
# shellcheck disable=SC2086 # word splitting of the package list is intended
if ! $SUDO apt-get install -y -qq --no-install-recommends $missing >"$errlog" 2>&1; then
	# no or stale package lists: refresh once and try again
	$SUDO apt-get update -qq >>"$errlog" 2>&1 || die "apt-get update failed (package mirror unreachable?): $(tail -3 "$errlog")"
	# shellcheck disable=SC2086
	$SUDO apt-get install -y -qq --no-install-recommends $missing >>"$errlog" 2>&1 ||
		die "apt-get install$missing failed: $(tail -5 "$errlog")"
fi
for p in $missing; do installed "$p" || die "$p is still not installed"; done
