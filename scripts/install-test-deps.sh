#!/bin/sh
# install-test-deps.sh installs the Debian packages the deploy tests need and
# unpacks syslog-ng privately (Debian refuses to install it beside rsyslog).
# Idempotent and quiet when everything is already there. Run as root (CI) on
# Debian bookworm:
#
#	scripts/install-test-deps.sh
#
# Installs: nginx rsyslog rsyslog-kafka kcat prometheus (promtool) docker-compose
#           chromium (the web console's browser tests drive it)
# npm ci:   console/node_modules (playwright-core, pinned by console/package-lock.json;
#           it downloads no browser)
# Unpacks:  syslog-ng-core syslog-ng-mod-rdkafka (and their libs not already on
#           the system) into ${CONNLOG_CACHE_DIR:-~/.cache/connlog}/syslog-ng/root
# Prints nothing on success when nothing had to be done; non-zero exit with a
# message when the package manager is unreachable.
set -eu

log() { printf 'install-test-deps: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

PKGS='curl nginx rsyslog rsyslog-kafka kcat prometheus docker-compose chromium'
SNG_PKGS='syslog-ng-core syslog-ng-mod-rdkafka'
cache_root="${CONNLOG_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/connlog}"
sng_dir="$cache_root/syslog-ng"

command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script supports Debian/Ubuntu only"

SUDO=''
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || die "run as root (or install sudo)"
	SUDO='sudo'
fi
export DEBIAN_FRONTEND=noninteractive

installed() { dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null | grep -qx installed; }

updated=0
apt_update() {
	[ "$updated" -eq 1 ] && return 0
	log "apt-get update"
	$SUDO apt-get update -qq >/dev/null 2>"${TMPDIR:-/tmp}/connlog-apt-update.err" ||
		die "apt-get update failed (package mirror unreachable?): $(tail -3 "${TMPDIR:-/tmp}/connlog-apt-update.err")"
	# apt-get update exits 0 even when every mirror failed; check for that.
	if grep -qE '^(W|E): (Failed to fetch|Some index files failed)' "${TMPDIR:-/tmp}/connlog-apt-update.err"; then
		die "apt-get update could not reach the package mirror: $(grep -E '^(W|E):' "${TMPDIR:-/tmp}/connlog-apt-update.err" | head -3)"
	fi
	updated=1
}

# Package lists are needed if never fetched (fresh container images ship none).
have_lists() { ls /var/lib/apt/lists/ 2>/dev/null | grep -q '_Packages'; }

missing=''
for p in $PKGS; do installed "$p" || missing="$missing $p"; done
if [ -n "$missing" ]; then
	have_lists || apt_update
	log "installing:$missing"
	# Never start services from maintainer scripts (CI containers, shared hosts):
	# a policy-rc.d that denies every action, removed afterwards if we made it.
	made_policy=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
		$SUDO chmod 755 /usr/sbin/policy-rc.d
		made_policy=1
	fi
	# shellcheck disable=SC2086 # word splitting of the package list is intended
	if ! $SUDO apt-get install -y -qq --no-install-recommends $missing >"${TMPDIR:-/tmp}/connlog-apt-install.log" 2>&1; then
		# stale lists: refresh once and try again
		apt_update
		# shellcheck disable=SC2086
		$SUDO apt-get install -y -qq --no-install-recommends $missing >"${TMPDIR:-/tmp}/connlog-apt-install.log" 2>&1 || {
			[ "$made_policy" -eq 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d
			tail -20 "${TMPDIR:-/tmp}/connlog-apt-install.log" >&2
			die "apt-get install$missing failed (see above)"
		}
	fi
	[ "$made_policy" -eq 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d
	for p in $missing; do installed "$p" || die "$p is still not installed"; done
fi

# syslog-ng: download the .debs and unpack them privately. The package
# dependencies not already installed (libivykis, libnet, ...) are unpacked
# alongside; librdkafka usually comes with rsyslog-kafka.
sng_root="$sng_dir/root"
if [ ! -x "$sng_root/usr/sbin/syslog-ng" ] || [ ! -e "$sng_root/usr/lib/syslog-ng/3.38/libkafka.so" ]; then
	have_lists || apt_update
	log "unpacking $SNG_PKGS into $sng_root"
	mkdir -p "$sng_dir/debs" "$sng_root"
	deps=''
	for d in libivykis0 libnet1 libjson-c5 libpcre3 libglib2.0-0 librdkafka1 libwrap0 libcap2; do
		installed "$d" || deps="$deps $d"
	done
	# shellcheck disable=SC2086
	(cd "$sng_dir/debs" && apt-get download -qq $SNG_PKGS $deps >/dev/null 2>&1) || {
		apt_update
		# shellcheck disable=SC2086
		(cd "$sng_dir/debs" && apt-get download -qq $SNG_PKGS $deps) ||
			die "apt-get download $SNG_PKGS$deps failed (see apt's message above)"
	}
	for deb in "$sng_dir"/debs/*.deb; do dpkg-deb -x "$deb" "$sng_root"; done
	[ -x "$sng_root/usr/sbin/syslog-ng" ] || die "syslog-ng binary missing after unpacking"
fi
# The console's browser tests: playwright-core from the lockfile (integrity
# checked by npm ci). Skipped when node_modules matches the lockfile already.
repo=$(cd "$(dirname "$0")/.." && pwd)
stamp="$repo/console/node_modules/.connlog-package-lock.json"
if ! cmp -s "$repo/console/package-lock.json" "$stamp" 2>/dev/null; then
	command -v npm >/dev/null 2>&1 || die "npm not found: install Node.js 20 and npm"
	log "npm ci in console/"
	(cd "$repo/console" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null) ||
		die "npm ci in console/ failed (see npm's message above)"
	cp "$repo/console/package-lock.json" "$stamp"
fi
exit 0
