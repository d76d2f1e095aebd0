#!/usr/bin/env bash
# ensure.sh prints the absolute path of a directory holding the mini installer ISO,
# building it (and the test guest it embeds, via ../guest/ensure.sh) first if it is not
# cached yet. Nothing else goes to stdout; progress and build logs go to stderr. See
# build.sh for what the installer is, its boot commands, helpers and markers.
#
# The directory holds:
#   installer.iso     the ISO tests boot: never write to it (attach it read-only / as a CD)
#   ks-example.sh     an answer file that installs to /dev/vda and powers off
#   packages.txt      the Debian packages the installer was built from
#   SHA256SUMS        checksums of installer.iso and ks-example.sh (iso_checksum = "file:...")
#
# Cache: ${KILN_FIXTURE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln/fixtures}/installer-<key>,
# key = first 16 hex digits of sha256(build.sh + ../guest/build.sh + ../guest/test_ed25519.pub),
# so editing either build script rebuilds. Concurrent callers serialize on a lock file; a
# build goes to a temporary directory that is renamed into place only once complete.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
guestsrc=$here/../guest
cache=${KILN_FIXTURE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln/fixtures}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
key=$(cat "$here/build.sh" "$guestsrc/build.sh" "$guestsrc/test_ed25519.pub" | sha256sum | cut -c1-16)
dir=$cache/installer-$key

if [ ! -f "$dir/installer.iso" ]; then
	guest=$(bash "$guestsrc/ensure.sh")
	exec 9>"$dir.lock"
	flock 9
	# Another caller may have built it while we waited for the lock.
	if [ ! -f "$dir/installer.iso" ]; then
		rm -rf "$dir" # only a directory without an ISO: not ours to keep
		tmp=$(mktemp -d "$cache/.installer-$key.XXXXXX")
		trap 'rm -rf "$tmp"' EXIT
		echo "ensure.sh: building the installer ISO into $dir" >&2
		start=$SECONDS
		bash "$here/build.sh" "$tmp" "$guest" >&2
		(cd "$tmp" && sha256sum installer.iso ks-example.sh >SHA256SUMS)
		chmod 0755 "$tmp"
		mv -T "$tmp" "$dir"
		trap - EXIT
		echo "ensure.sh: built in $((SECONDS - start)) s" >&2
	fi
	exec 9>&-
fi
printf '%s\n' "$dir"
