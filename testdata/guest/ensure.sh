#!/usr/bin/env bash
# ensure.sh prints the absolute path of a directory holding the end-to-end test
# guest, building it first if it is not cached yet. Nothing else goes to stdout;
# progress and build logs go to stderr. See build.sh for what the guest is.
#
# The directory holds:
#   guest.qcow2       the disk tests boot: never write to it, boot a copy or an overlay
#   guest.raw         the same disk, raw (sparse)
#   test_ed25519      root's SSH key (mode 0600, so OpenSSH accepts it), and .pub
#   packages.txt      the Debian packages the guest was built from
#   SHA256SUMS        checksums of both disks (for iso_checksum = "file:...")
#
# Cache: ${KILN_FIXTURE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln/fixtures}/guest-<key>,
# key = first 16 hex digits of sha256(build.sh + test_ed25519.pub), so editing
# build.sh rebuilds. Concurrent callers serialize on a lock file; a build goes to a
# temporary directory that is renamed into place only once complete.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${KILN_FIXTURE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln/fixtures}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
key=$(cat "$here/build.sh" "$here/test_ed25519.pub" | sha256sum | cut -c1-16)
dir=$cache/guest-$key

if [ ! -f "$dir/guest.qcow2" ]; then
	exec 9>"$dir.lock"
	flock 9
	# Another caller may have built it while we waited for the lock.
	if [ ! -f "$dir/guest.qcow2" ]; then
		rm -rf "$dir" # only a directory without a disk: not ours to keep
		tmp=$(mktemp -d "$cache/.guest-$key.XXXXXX")
		trap 'rm -rf "$tmp"' EXIT
		echo "ensure.sh: building the test guest into $dir" >&2
		start=$SECONDS
		bash "$here/build.sh" "$tmp" >&2
		(cd "$tmp" && sha256sum guest.qcow2 guest.raw >SHA256SUMS)
		install -m 0600 "$here/test_ed25519" "$tmp/test_ed25519"
		install -m 0644 "$here/test_ed25519.pub" "$tmp/test_ed25519.pub"
		chmod 0755 "$tmp"
		mv -T "$tmp" "$dir"
		trap - EXIT
		echo "ensure.sh: built in $((SECONDS - start)) s" >&2
	fi
	exec 9>&-
fi
printf '%s\n' "$dir"
