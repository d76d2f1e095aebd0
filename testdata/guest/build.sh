#!/usr/bin/env bash
# build.sh OUTDIR: builds the guest that kiln's end-to-end tests boot under QEMU.
# Most callers want ensure.sh (next to this file), which caches the result.
#
# Output: OUTDIR/guest.qcow2 (what tests boot), OUTDIR/guest.raw (same disk, sparse)
# and OUTDIR/packages.txt (the Debian packages it was made from). Virtual size 64 MiB.
#
# Disk layout: MBR with SYSLINUX's mbr.bin in sector 0 and ONE partition:
#   partition 1  type 0x0c (FAT32 LBA), bootable, label KILNDATA,
#                sectors 2048..end, i.e. byte offset 1048576 (1 MiB).
#                /boot holds vmlinuz, initrd.img, syslinux.cfg, ldlinux.sys/.c32.
# The guest mounts that partition read-write at /data; it is the only thing that
# persists. A provisioner that writes /data/hello can be checked on a raw copy of
# the output image (qemu-img convert -O raw first if it is qcow2) with
#     mtype -i disk.raw@@1048576 ::/hello
#
# The guest (everything except /data lives in RAM, in the initramfs):
#   - Debian cloud kernel + busybox init (busybox sh is /bin/sh); /tmp writable.
#   - network: virtio-net, 10.0.2.15/24, gateway 10.0.2.2, DNS 10.0.2.3 (QEMU user net).
#   - OpenSSH sshd on port 22: user root, password "kiln-root-pw-3f9a", and root's authorized_keys
#     holds test_ed25519.pub (private key: test_ed25519, comment kiln-test).
#     SFTP subsystem /usr/lib/openssh/sftp-server; scp is installed too.
#     Host keys are generated here, at build time, so they are fixed per image.
#   - `poweroff` or `shutdown -P now` (e.g. over SSH) and the ACPI power button
#     (QMP system_powerdown) sync, unmount /data and power the VM off, so QEMU
#     exits by itself. `reboot` / `shutdown -r now` reboot (QEMU keeps running).
#     Plain `poweroff` takes ~2 s longer than the other two (busybox init's sleeps).
#   - sshd log: /var/log/sshd.log; acpid log: /var/log/acpid.log.
#   - QEMU needs: -drive ...,if=virtio and -device virtio-net-pci (the cloud kernel
#     has no IDE/e1000 drivers here). -m 256 is plenty (the guest uses ~40 MiB).
# Serial console (ttyS0, kernel cmdline console=ttyS0) marker lines:
#     kiln-guest: sshd ready         sshd is listening on port 22
#     kiln-guest: powering off       shutdown has started (also printed before a reboot)
#     kiln-guest: /data unmounted    /data was unmounted cleanly during shutdown
#     kiln-guest: ERROR ...          something in boot or shutdown failed
#
# Built from Debian packages only (apt-get download + dpkg-deb -x, no loop devices,
# no mounts, no root needed). Host tools: apt-get, dpkg-deb, modinfo (kmod), cpio,
# gzip, mkfs.vfat (dosfstools), mtools, sfdisk (fdisk), syslinux + syslinux-common,
# ssh-keygen (openssh-client), openssl, qemu-img (qemu-utils).
set -euo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
out=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pubkey=$here/test_ed25519.pub
mbr=/usr/lib/syslinux/mbr/mbr.bin

log() { printf 'guest build: %s\n' "$*" >&2; }
die() {
	printf 'guest build: error: %s\n' "$*" >&2
	exit 1
}

for tool in apt-get apt-cache dpkg-deb modinfo cpio gzip mkfs.vfat mcopy mmd sfdisk \
	syslinux ssh-keygen openssl qemu-img; do
	command -v "$tool" >/dev/null || die "$tool not found (see the package list at the top of $0)"
done
[ -f "$mbr" ] || die "$mbr not found (install syslinux-common)"
[ -f "$pubkey" ] || die "$pubkey not found"

mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-guest.XXXXXX")
trap 'rm -rf "$work"' EXIT
sys=$work/sys   # every downloaded package except the kernel, unpacked
kern=$work/kern # the kernel package, unpacked
root=$work/root # the initramfs
mkdir -p "$work/debs" "$sys" "$kern" "$root"
export MTOOLS_SKIP_CHECK=1

# --- packages ---------------------------------------------------------------

# direct_deps PKG... prints the Depends and Pre-Depends of each PKG, taking the
# first alternative of each "a | b" group and skipping virtual packages.
# (One apt-cache call per batch: each call costs about a second.)
direct_deps() {
	apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
		--no-replaces --no-enhances "$@" |
		awk '/^ *\|?(Pre)?Depends:/ {
			alt = ($1 ~ /^\|/); name = $2; sub(/:.*/, "", name)
			if (!skip && name !~ /^</) print name
			skip = alt
		}'
}

kpkg=$(direct_deps linux-image-cloud-amd64 | grep '^linux-image-' | head -n1)
[ -n "$kpkg" ] || die "cannot resolve linux-image-cloud-amd64 (run apt-get update?)"

# The OpenSSH servers plus the closure of the library packages they depend on:
# the guest gets its shared libraries from Debian packages, not from this host.
declare -A seen=()
pkgs=()
level=(openssh-server openssh-sftp-server)
while [ ${#level[@]} -gt 0 ]; do
	for p in "${level[@]}"; do seen[$p]=1; done
	pkgs+=("${level[@]}")
	next=()
	for d in $(direct_deps "${level[@]}" | sort -u); do
		case $d in
		libpam-* | lib*-common | lib*-bin) ;; # PAM is off; no shared objects there
		lib*) [ -n "${seen[$d]:-}" ] || next+=("$d") ;;
		esac
	done
	level=("${next[@]}")
done
pkgs+=(openssh-client busybox-static) # openssh-client only for scp (links libc only)

log "downloading $kpkg and ${#pkgs[@]} packages"
# As root, apt would warn that its _apt user cannot write into our 0700 temp dir.
sandbox=()
[ "$(id -u)" != 0 ] || sandbox=(-o APT::Sandbox::User=root)
(cd "$work/debs" && apt-get -q "${sandbox[@]}" download "$kpkg" "${pkgs[@]}" >&2)
for deb in "$work/debs"/*.deb; do
	case $(basename "$deb") in
	"${kpkg}"_*) dpkg-deb -x "$deb" "$kern" ;;
	*) dpkg-deb -x "$deb" "$sys" ;;
	esac
done
(cd "$work/debs" && ls -1 -- *.deb) >"$work/packages.txt"

# --- initramfs: programs ----------------------------------------------------

ldso=lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
[ -x "$sys/$ldso" ] || die "no $ldso in libc6"
libpath=$sys/lib/x86_64-linux-gnu:$sys/usr/lib/x86_64-linux-gnu
install -D -m 0755 "$sys/$ldso" "$root/$ldso"
mkdir -p "$root/lib64"
ln -s "/$ldso" "$root/lib64/ld-linux-x86-64.so.2"

# copy_elf PATH copies the program at PATH (a path inside the guest) and every
# shared library the Debian loader resolves for it, from the unpacked packages.
copy_elf() {
	local prog=$1 list lib
	[ -f "$sys$prog" ] || die "$prog is not in the downloaded packages"
	install -D -m 0755 "$sys$prog" "$root$prog"
	list=$("$sys/$ldso" --library-path "$libpath" --list "$sys$prog")
	if grep -q 'not found' <<<"$list"; then
		die "$prog: unresolved libraries: $(grep 'not found' <<<"$list" | tr -s ' \t\n' ' ')"
	fi
	while read -r lib; do
		[ -e "$root${lib#"$sys"}" ] || install -D -m 0755 "$lib" "$root${lib#"$sys"}"
	done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 }' <<<"$list")
}
copy_elf /usr/sbin/sshd
copy_elf /usr/lib/openssh/sftp-server
copy_elf /usr/bin/scp

install -D -m 0755 "$sys/bin/busybox" "$root/bin/busybox"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin}
for app in $("$sys/bin/busybox" --list-full); do
	[ -e "$root/$app" ] || [ -L "$root/$app" ] || ln -s /bin/busybox "$root/$app"
done
ln -s bin/busybox "$root/init" # the kernel runs /init from an initramfs

# --- initramfs: kernel modules ----------------------------------------------

kver=$(ls "$kern/lib/modules")
[ "$(wc -w <<<"$kver")" = 1 ] || die "expected one kernel in $kpkg, found: $kver"
declare -A kofile=()
while IFS= read -r f; do
	n=$(basename "$f")
	n=${n%%.ko*}
	kofile[${n//-/_}]=$f
done < <(find "$kern/lib/modules/$kver" -name '*.ko*')

# Modules the guest loads, by module name; dependencies come from modinfo.
# virtio_rng and the nls tables are optional nice-to-haves, the rest is needed
# for the disk, the network, /data and the ACPI power button.
want=(virtio_pci virtio_blk virtio_net virtio_rng fat vfat nls_cp437 nls_ascii nls_utf8
	nls_iso8859_1 button evdev)
declare -A loaded=()
order=()
add_module() {
	local m=$1 d
	[ -z "${loaded[$m]:-}" ] || return 0
	loaded[$m]=1
	[ -n "${kofile[$m]:-}" ] || die "module $m is not in $kpkg (built in? check /boot/config-$kver)"
	for d in $(modinfo -F depends "${kofile[$m]}" | tr ',' ' '); do
		add_module "${d//-/_}"
	done
	order+=("$m")
}
for m in "${want[@]}"; do add_module "$m"; done
mkdir -p "$root/lib/modules"
for m in "${order[@]}"; do
	case ${kofile[$m]} in
	*.ko) cp "${kofile[$m]}" "$root/lib/modules/$m.ko" ;;
	*.ko.xz) xz -dc "${kofile[$m]}" >"$root/lib/modules/$m.ko" ;;
	*.ko.zst) zstd -qdc "${kofile[$m]}" >"$root/lib/modules/$m.ko" ;;
	*) die "cannot unpack ${kofile[$m]}" ;;
	esac
done
mkdir -p "$root/etc"
printf '%s\n' "${order[@]}" >"$root/etc/modules.order"

# --- initramfs: configuration -----------------------------------------------

mkdir -p "$root"/{proc,sys,dev,run/sshd,tmp,data,root/.ssh,var/empty,var/log,var/run,etc/ssh,etc/init.d,etc/acpi/PWRF}
chmod 1777 "$root/tmp"
chmod 0700 "$root/root" "$root/root/.ssh"
chmod 0755 "$root/run/sshd" "$root/var/empty"

hash=$(openssl passwd -6 -salt kilntestguest kiln-root-pw-3f9a)
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
sshd:x:100:65534:sshd privsep:/run/sshd:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
tty:x:5:
nogroup:x:65534:
EOF
# Empty "last change" fields: no password ageing, so sshd never asks for a change.
printf 'root:%s:::::::\nsshd:*:::::::\nnobody:*:::::::\n' "$hash" >"$root/etc/shadow"
chmod 0600 "$root/etc/shadow"
printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n10.0.2.15 kiln-guest\n' >"$root/etc/hosts"
printf 'nameserver 10.0.2.3\n' >"$root/etc/resolv.conf"
printf 'kiln-guest\n' >"$root/etc/hostname"
printf '/bin/sh\n' >"$root/etc/shells"
cat >"$root/etc/profile" <<'EOF'
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=${HOME:-/root}
PS1='\h:\w\$ '
EOF

install -m 0600 "$pubkey" "$root/root/.ssh/authorized_keys"
ssh-keygen -q -A -f "$root" # fixed host keys, generated once per build
[ -f "$sys/etc/ssh/moduli" ] && install -m 0644 "$sys/etc/ssh/moduli" "$root/etc/ssh/moduli"
cat >"$root/etc/ssh/sshd_config" <<'EOF'
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
HostKey /etc/ssh/ssh_host_rsa_key
PidFile /run/sshd.pid
PermitRootLogin yes
PasswordAuthentication yes
PubkeyAuthentication yes
KbdInteractiveAuthentication no
PermitEmptyPasswords no
UsePAM no
UseDNS no
PrintMotd no
PrintLastLog no
AuthorizedKeysFile .ssh/authorized_keys
Subsystem sftp /usr/lib/openssh/sftp-server
EOF

cat >"$root/etc/inittab" <<'EOF'
::sysinit:/etc/init.d/rcS
::shutdown:/etc/init.d/rcK
::ctrlaltdel:/sbin/reboot
EOF

# Boot. Runs with stdio on the console (ttyS0); init waits for it to finish.
cat >"$root/etc/init.d/rcS" <<'EOF'
#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
say() { echo "kiln-guest: $*" >/dev/console; }
# wait_for TENTHS TEST...: retry TEST every 0.1 s, at most TENTHS times.
wait_for() {
	n=$1; shift
	while ! "$@"; do
		n=$((n - 1)); [ "$n" -gt 0 ] || return 1
		sleep 0.1
	done
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=0620,ptmxmode=0666 devpts /dev/pts
hostname -F /etc/hostname

while read -r m; do
	insmod "/lib/modules/$m.ko" || say "ERROR: insmod $m failed"
done </etc/modules.order

if wait_for 100 test -b /dev/vda1; then
	mount -t vfat -o rw,noatime,utf8 /dev/vda1 /data || say "ERROR: cannot mount /data"
else
	say "ERROR: /dev/vda1 did not appear"
fi

ip link set lo up
if wait_for 100 test -e /sys/class/net/eth0; then
	ip link set eth0 up
	ip addr add 10.0.2.15/24 dev eth0
	ip route add default via 10.0.2.2
else
	say "ERROR: eth0 did not appear"
fi

acpid -c /etc/acpi -l /var/log/acpid.log || say "ERROR: acpid failed"

listening() { awk '$2 ~ /:0016$/ && $4 == "0A" { f = 1 } END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null; }
/usr/sbin/sshd -E /var/log/sshd.log || say "ERROR: sshd failed to start"
if wait_for 300 listening; then
	say "sshd ready"
else
	say "ERROR: sshd is not listening"
fi
EOF

# Shutdown: busybox init runs this for poweroff, halt and reboot alike (so the
# "powering off" marker also precedes a reboot), before it kills everything.
cat >"$root/etc/init.d/rcK" <<'EOF'
#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
say() { echo "kiln-guest: $*" >/dev/console; }
say "powering off"
# Stop everything but init and this script (kill is a shell builtin here), so
# nothing keeps /data busy, then unmount it.
kill -TERM -1 2>/dev/null
sync
n=30
until umount /data 2>/dev/null; do
	n=$((n - 1))
	if [ "$n" -le 0 ]; then
		kill -KILL -1 2>/dev/null
		umount /data 2>/dev/null || mount -o remount,ro /data 2>/dev/null
		break
	fi
	sleep 0.1
done
sync
if grep -q ' /data ' /proc/mounts; then
	say "ERROR: /data is still mounted"
else
	say "/data unmounted"
	[ -e /run/kiln-poweroff ] && poweroff -f
fi
EOF

# /run/kiln-poweroff tells rcK to power off as soon as /data is unmounted rather
# than return to busybox init, which spends ~2 s more on sleeps. Only our scripts
# can leave it: busybox sh runs its own poweroff applet even if /sbin/poweroff is
# replaced, and rcK cannot tell a poweroff from a reboot by itself.
# busybox has no shutdown; accept the usual "shutdown -P now" / "shutdown -r now".
cat >"$root/sbin/shutdown" <<'EOF'
#!/bin/sh
action=poweroff
for arg in "$@"; do
	case $arg in
	-r) action=reboot ;;
	-h | -P | -H) action=poweroff ;;
	-c) echo "shutdown: nothing to cancel" >&2; exit 1 ;;
	esac
done
[ "$action" = reboot ] || : >/run/kiln-poweroff
exec /sbin/$action
EOF

# busybox acpid runs /etc/acpi/PWRF/00000080 for the ACPI power button.
cat >"$root/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
: >/run/kiln-poweroff
exec /sbin/poweroff
EOF
chmod 0755 "$root/etc/init.d/rcS" "$root/etc/init.d/rcK" "$root/etc/acpi/PWRF/00000080" \
	"$root/sbin/shutdown"

log "packing the initramfs"
# "." is included so that / gets mode 0755 rather than the kernel's default 1777.
chmod 0755 "$root"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
	gzip -n >"$work/initrd.img"

# --- disk -------------------------------------------------------------------

cat >"$work/syslinux.cfg" <<'EOF'
DEFAULT kiln
PROMPT 0
TIMEOUT 0
LABEL kiln
  LINUX /boot/vmlinuz
  INITRD /boot/initrd.img
  APPEND console=ttyS0,115200 random.trust_cpu=on
EOF

disk=$work/guest.raw
part=$work/part.img
truncate -s 64M "$disk"
printf 'label: dos\nlabel-id: 0x4b494c4e\nstart=2048, type=c, bootable\n' |
	sfdisk --quiet --wipe never --wipe-partitions never "$disk" >&2
# The partition runs from 1 MiB to the end of the 64 MiB disk: 63 MiB.
# 512-byte clusters keep the cluster count above FAT32's minimum.
mkfs.vfat -C -F 32 -S 512 -s 1 -h 2048 -n KILNDATA -i 4b494c4e "$part" $((63 * 1024)) >/dev/null
mmd -i "$part" ::/boot
mcopy -i "$part" "$kern/boot/vmlinuz-$kver" ::/boot/vmlinuz
mcopy -i "$part" "$work/initrd.img" ::/boot/initrd.img
mcopy -i "$part" "$work/syslinux.cfg" ::/boot/syslinux.cfg
dd if="$part" of="$disk" bs=1M seek=1 conv=notrunc,sparse status=none
syslinux --install --offset 1048576 --directory /boot "$disk"
# syslinux patched the FAT32 boot sector but not its backup; copy it over so that
# fsck.fat finds the two identical. BPB bytes 50-51: backup boot sector number.
bk=$(od -An -tu2 -j $((1048576 + 50)) -N2 "$disk" | tr -d ' ')
dd if="$disk" of="$disk" bs=512 skip=2048 seek=$((2048 + bk)) count=1 conv=notrunc status=none
dd if="$mbr" of="$disk" bs=440 count=1 conv=notrunc status=none

log "writing $out/guest.qcow2"
qemu-img convert -f raw -O qcow2 "$disk" "$out/guest.qcow2.tmp"
cp --sparse=always "$disk" "$out/guest.raw.tmp"
mv "$work/packages.txt" "$out/packages.txt"
mv "$out/guest.raw.tmp" "$out/guest.raw"
mv "$out/guest.qcow2.tmp" "$out/guest.qcow2"
log "done: kernel $kver, initramfs $(du -k "$work/initrd.img" | cut -f1) KiB"
