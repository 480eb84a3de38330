#!/bin/sh
# fetch-chdb.sh downloads chDB (the ClickHouse engine as a shared library,
# libchdb.so) once into a per-user cache outside the repository, verifies it,
# and prints the absolute path of libchdb.so as the last line on stdout:
#
#	LIB=$(scripts/fetch-chdb.sh)
#
# Cache: ${CONNLOG_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/connlog}/chdb/<version>/
# Needs: npm (and node), tar and coreutils.
# Running it again is cheap: a verified library is not fetched twice.
set -eu

PKG='@chdb/lib-linux-x64-gnu'
VERSION='26.7.3-stable.1'
INTEGRITY='sha512-XP97mMqnc5tZpKQywR8N7cLTsHNiTmHr30pC5mzo3jWmukjKn2IBa60c2B/gWUNcuFjOMjWoorQICCqBVj5wpw=='

log() { printf 'fetch-chdb: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# hex_to_bin writes the bytes spelled by a hex string to stdout.
hex_to_bin() {
	rest=$1
	while [ -n "$rest" ]; do
		pair=${rest%"${rest#??}"}
		rest=${rest#??}
		# shellcheck disable=SC2059 # the format is the escape itself
		printf "\\$(printf '%03o' "0x$pair")"
	done
}

case "$(uname -s)-$(uname -m)" in
Linux-x86_64) ;;
*) die "only linux x86_64 is supported by $PKG (this is $(uname -s)-$(uname -m))" ;;
esac

cache_root="${CONNLOG_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/connlog}"
dest_dir="$cache_root/chdb/$VERSION"
lib="$dest_dir/libchdb.so"
stamp="$dest_dir/libchdb.so.sha256"

# Fast path: library and stamp present and the library still matches the stamp.
if [ -f "$lib" ] && [ -f "$stamp" ]; then
	want=$(cat "$stamp")
	got=$(sha256sum "$lib" | cut -d' ' -f1)
	if [ "$want" = "$got" ]; then
		log "chDB $VERSION already present and verified"
		cd "$dest_dir" && printf '%s\n' "$(pwd -P)/libchdb.so"
		exit 0
	fi
	log "cached $lib does not match its stamp; fetching again"
fi

for tool in npm tar sha512sum sha256sum base64; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is required but not installed"
done

mkdir -p "$dest_dir"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/connlog-chdb.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

log "downloading $PKG@$VERSION (about 180 MB) from the npm registry"
log "it will be stored in $dest_dir (delete that directory to remove it)"
(cd "$tmp" && npm pack --silent "$PKG@$VERSION" >"$tmp/pack.out") || die "npm pack $PKG@$VERSION failed"
tgz="$tmp/$(tail -n 1 "$tmp/pack.out")"
[ -f "$tgz" ] || die "npm pack did not produce a tarball"

# Subresource-integrity check: base64 of the raw sha512 digest. The hex digest
# becomes bytes through POSIX printf octal escapes (dash has no \x), so only
# coreutils are needed.
hex=$(sha512sum "$tgz" | cut -d' ' -f1)
got="sha512-$(hex_to_bin "$hex" | base64 -w0)"
[ "$got" = "$INTEGRITY" ] || die "integrity mismatch for $tgz: got $got, want $INTEGRITY"
log "tarball integrity verified ($INTEGRITY)"

tar -xzmf "$tgz" -C "$tmp" package/libchdb.so || die "extract libchdb.so"
sum=$(sha256sum "$tmp/package/libchdb.so" | cut -d' ' -f1)
mv -f "$tmp/package/libchdb.so" "$dest_dir/.libchdb.so.tmp"
mv -f "$dest_dir/.libchdb.so.tmp" "$lib"
printf '%s\n' "$sum" >"$stamp.tmp"
mv -f "$stamp.tmp" "$stamp"
log "installed $lib (sha256 $sum)"
cd "$dest_dir" && printf '%s\n' "$(pwd -P)/libchdb.so"
