#!/usr/bin/env bash
# build.sh OUTDIR [GUESTDIR]: builds the mini installer ISO that kiln's installer-path
# tests boot under QEMU. GUESTDIR is the test guest (../guest/ensure.sh prints it; that
# is run when GUESTDIR is not given). Most callers want ensure.sh, which caches.
#
# Output:
#   OUTDIR/installer.iso   BIOS+UEFI hybrid ISO (grub-mkrescue), volume id KILN_INSTALLER
#   OUTDIR/ks-example.sh   an answer file: installs to /dev/vda, writes
#                          /target/installed-by.txt, powers off
#   OUTDIR/packages.txt    the Debian packages it was made from
#
# Inside the ISO:
#   /install/vmlinuz        Debian cloud kernel (same package as the guest's)
#   /install/initrd.gz      the installer initramfs (busybox + modules, ~2 MB)
#   /install/guest.raw.gz   the payload: the test guest's disk (guest.raw) cut after its
#                           last data block (the rest is zeros anyway), gzip
#   /install/guest.info     "bytes=N sha256=H disk_bytes=M": length and sha256 of the
#                           cut image, size of the whole guest disk
#   /boot/grub/grub.cfg     see "Boot prompt" below
#
# Boot prompt (BIOS via SeaBIOS and UEFI via OVMF alike): GRUB with NO menu, so it goes
# straight to its command line, "grub> ". Just before, it prints on the serial port
#     kiln-installer: boot prompt ready (pc)      BIOS, ~0.5 s after QEMU starts (TCG)
#     kiln-installer: boot prompt ready (efi)     UEFI, ~4-5 s
# GRUB reads the keyboard only (not the serial line) and echoes what is typed to the
# screen and to the serial port (BIOS: GRUB's serial terminal; UEFI: OVMF's mirror of
# the console). Keys typed before the marker may be lost. Boot commands that work for
# both firmwares (<enter> = Return):
#   short: a GRUB function defined in grub.cfg that runs the three commands below with
#     "console=ttyS0,115200" and its own arguments as the kernel command line:
#       install kiln.ks=http://10.0.2.2:PORT/ks.sh<enter>
#   long, as with a stock GRUB:
#       linux /install/vmlinuz console=ttyS0 kiln.ks=http://10.0.2.2:PORT/ks.sh<enter>
#       initrd /install/initrd.gz<enter>
#       boot<enter>
#     On BIOS, "linux" spends ~1.5 s (TCG) reading the 14 MB kernel with interrupts
#     mostly off, and keys typed meanwhile are LOST (seen: "initrd /installgz"); wait
#     after its <enter> (e.g. <wait5>) before typing on. UEFI kept up without waits.
# At the idle prompt, ~10 ms per key was typed without loss on both firmwares.
# GRUB's parser sees the typed text first: $ \ ' " ; | & < > { } # are special to it;
# A_Z:b+c!d@e%f^g*h~i?j(k)l,m.n/o-p=q arrived in /proc/cmdline exactly. GRUB adds
# "BOOT_IMAGE=/install/vmlinuz " in front.
# Direct kernel boot works too: -kernel vmlinuz -initrd initrd.gz -append 'console=ttyS0
# kiln.ks=...' (keep the ISO attached as a CD for the default payload).
# After "finish reboot": SeaBIOS with -boot once=d boots the disk. OVMF ignores -boot
# and boots the CD again, unless the disk comes first by bootindex (an empty disk is
# skipped), e.g. -device virtio-blk-pci,drive=d0,bootindex=0 + -device
# ide-cd,drive=cd0,bootindex=1.
#
# The installer (/init of the initramfs). Its messages go to the serial port ttyS0
# whatever console= says (and to the screen, tty0), as lines "kiln-installer: ...":
#     kiln-installer: cmdline: <the whole /proc/cmdline>
#     kiln-installer: cdrom /dev/sr0 mounted at /cdrom      or: no installer CD found
#     kiln-installer: network up: eth0 10.0.2.15/24 via 10.0.2.2
#     kiln-installer: fetched <URL>                         the kiln.ks=URL answer file
#     kiln-installer: no answer file                        no kiln.ks=: sleeps forever
#     kiln-installer: installing <SOURCE> to /dev/vda
#     kiln-installer: installed to /dev/vda, /dev/vda1 mounted at /target
#     kiln-installer: finish: poweroff                      (or finish: reboot)
#     kiln-installer: /target unmounted                     then poweroff -f / reboot -f
#     kiln-installer: answer file returned without calling finish    then sleeps forever
#     kiln-installer: ERROR <what>                          then sleeps forever (never
#                                                           powers off on a failure)
# and, from the UEFI loader install-disk adds, when the installed disk boots on OVMF:
#     kiln-installer: UEFI loader booting /boot/vmlinuz from (hd0,msdos1)
# With "kiln.keys" on the kernel command line it is a typing target instead: it
# prints "kiln-installer: keys: ready", then echoes each line typed on the keyboard
# (tty1) to the serial port as "kiln-installer: typed: <line>", followed by
# "kiln-installer: typed-sum: <characters> <sha256 of the line>"; the line "poweroff"
# powers off (the typing benchmark and tests use this). The sum is what the guest
# received, whatever happens to the echo on its way out (QEMU's chardev logfile= can
# double a byte of a long line under host load; kiln no longer uses it).
# It loads the drivers (virtio pci/blk/net/scsi, IDE CD-ROM via ata_piix + sr_mod,
# iso9660, vfat), mounts the CD read-only at /cdrom (the first iso9660 holding
# /install/guest.info, looked for during 5 s; the cloud kernel has NO AHCI driver, so
# a CD on q35's SATA is not found: use -machine pc or a virtio-scsi CD), configures
# eth0 statically (10.0.2.15/24, gateway 10.0.2.2, DNS 10.0.2.3: QEMU's user network),
# fetches kiln.ks=URL with busybox wget (http only; 5 tries a second apart) and runs it:
#     sh -e /tmp/ks.sh   (busybox ash; cwd /tmp; stdin /dev/null; stdout+stderr ttyS0)
# with the environment
#     PATH=/usr/sbin:/usr/bin:/sbin:/bin
#     KILN_KS_URL=<URL>            KILN_HTTP_BASE=<URL without its last /component>
# If it exits non-zero: "kiln-installer: ERROR answer file exited with status N".
# Helpers the answer file can call (each prints "kiln-installer: ERROR <helper>: ..."
# and exits 1 on failure, which stops the answer file because of sh -e):
#     install-disk DEV [SOURCE]
#         writes the guest disk to DEV (e.g. /dev/vda; for the default SOURCE, DEV must
#         hold the guest's 64 MiB), rereads the partition table, adds a UEFI loader
#         (\EFI\BOOT\BOOTX64.EFI: GRUB booting what the guest's syslinux.cfg boots) so
#         the disk boots under OVMF as well as SeaBIOS, and leaves DEV's FAT partition
#         (DEV1, the guest's /data) mounted read-write at /target.
#         SOURCE: a gzip'd raw disk image, a path or an http:// URL (e.g.
#         "$KILN_HTTP_BASE/guest.raw.gz"); default /cdrom/install/guest.raw.gz.
#     finish poweroff|reboot
#         syncs, unmounts /target and /cdrom, then powers off (QEMU exits by itself) or
#         reboots at once (poweroff -f / reboot -f).
# So a file the answer file writes to /target/NAME is /data/NAME in the booted guest,
# and can be read from the disk with mtype -i disk.raw@@1048576 ::/NAME.
#
# Built from Debian packages only (apt-get download + dpkg-deb -x, no loop devices, no
# mounts, no root needed). Host tools: apt-get, dpkg-deb, modinfo (kmod), cpio, gzip,
# grub-mkrescue + grub-mkstandalone (grub-common, grub-pc-bin, grub-efi-amd64-bin),
# xorriso, mtools, qemu-img (qemu-utils), sha256sum.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: $0 OUTDIR [GUESTDIR]" >&2
	exit 2
fi
out=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { printf 'installer build: %s\n' "$*" >&2; }
die() {
	printf 'installer build: error: %s\n' "$*" >&2
	exit 1
}

for tool in apt-get apt-cache dpkg-deb modinfo cpio gzip grub-mkrescue grub-mkstandalone \
	xorriso mformat mtype qemu-img sha256sum; do
	command -v "$tool" >/dev/null || die "$tool not found (see the package list at the top of $0)"
done
for platform in i386-pc x86_64-efi; do
	[ -d "/usr/lib/grub/$platform" ] || die "/usr/lib/grub/$platform not found (install grub-pc-bin and grub-efi-amd64-bin)"
done

guest=${2:-$(bash "$here/../guest/ensure.sh")}
[ -f "$guest/guest.raw" ] || die "$guest/guest.raw not found"

mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-installer.XXXXXX")
trap 'rm -rf "$work"' EXIT
sys=$work/sys   # busybox-static, unpacked
kern=$work/kern # the kernel package, unpacked
root=$work/root # the initramfs
iso=$work/iso   # the ISO's files
mkdir -p "$work/debs" "$sys" "$kern" "$root" "$iso/install" "$iso/boot/grub"
export MTOOLS_SKIP_CHECK=1

# --- packages ---------------------------------------------------------------

kpkg=$(apt-cache depends linux-image-cloud-amd64 |
	awk '/^ *Depends: linux-image-/ { print $2; exit }')
[ -n "$kpkg" ] || die "cannot resolve linux-image-cloud-amd64 (run apt-get update?)"
log "downloading $kpkg and busybox-static"
# As root, apt would warn that its _apt user cannot write into our 0700 temp dir.
sandbox=()
[ "$(id -u)" != 0 ] || sandbox=(-o APT::Sandbox::User=root)
(cd "$work/debs" && apt-get -q "${sandbox[@]}" download "$kpkg" busybox-static >&2)
for deb in "$work/debs"/*.deb; do
	case $(basename "$deb") in
	"${kpkg}"_*) dpkg-deb -x "$deb" "$kern" ;;
	*) dpkg-deb -x "$deb" "$sys" ;;
	esac
done
(cd "$work/debs" && ls -1 -- *.deb) >"$work/packages.txt"

# --- initramfs: busybox and kernel modules ----------------------------------

install -D -m 0755 "$sys/bin/busybox" "$root/bin/busybox"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin}
for app in $("$sys/bin/busybox" --list-full); do
	[ -e "$root/$app" ] || [ -L "$root/$app" ] || ln -s /bin/busybox "$root/$app"
done

kver=$(ls "$kern/lib/modules")
[ "$(wc -w <<<"$kver")" = 1 ] || die "expected one kernel in $kpkg, found: $kver"
declare -A kofile=()
while IFS= read -r f; do
	n=$(basename "$f")
	n=${n%%.ko*}
	kofile[${n//-/_}]=$f
done < <(find "$kern/lib/modules/$kver" -name '*.ko*')

# Modules by name; their dependencies come from modinfo and load first. The cloud
# kernel has no AHCI (q35's SATA) driver at all; PIIX IDE is -machine pc's CD-ROM.
want=(virtio_pci virtio_blk virtio_net virtio_scsi ata_piix sr_mod sd_mod isofs
	fat vfat nls_cp437 nls_ascii nls_utf8)
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

# --- payload: the guest disk ------------------------------------------------

# Only the disk up to its last data block is shipped (guest.raw is sparse: the
# rest reads as zeros), rounded up to 1 MiB; install-disk writes just that part.
raw=$guest/guest.raw
disk_bytes=$(stat -c %s "$raw")
end=$(qemu-img map -f raw --output=json "$raw" |
	awk -F'[:,]' '/"data": true/ {
		for (i = 1; i < NF; i++) {
			if ($i ~ /"start"/) s = $(i + 1)
			if ($i ~ /"length"/) l = $(i + 1)
		}
		if (s + l > e) e = s + l
	} END { print e + 0 }')
mib=1048576
bytes=$(((end + mib - 1) / mib * mib))
if [ "$bytes" -le 0 ] || [ "$bytes" -gt "$disk_bytes" ]; then
	bytes=$disk_bytes
fi
head -c "$bytes" "$raw" >"$work/guest.cut"
sum=$(sha256sum "$work/guest.cut" | cut -d' ' -f1)
gzip -n -c "$work/guest.cut" >"$iso/install/guest.raw.gz"
printf 'bytes=%s sha256=%s disk_bytes=%s\n' "$bytes" "$sum" "$disk_bytes" >"$iso/install/guest.info"
rm "$work/guest.cut"

# The UEFI loader install-disk adds: a standalone GRUB that boots what the guest's
# syslinux.cfg boots, from the partition it was loaded from.
sysl=$(mtype -i "$raw@@$mib" ::/boot/syslinux.cfg) || die "cannot read /boot/syslinux.cfg from $raw"
klinux=$(awk 'toupper($1) == "LINUX" { print $2; exit }' <<<"$sysl")
kinitrd=$(awk 'toupper($1) == "INITRD" { print $2; exit }' <<<"$sysl")
kappend=$(awk 'toupper($1) == "APPEND" { $1 = ""; sub(/^ +/, ""); print; exit }' <<<"$sysl")
if [ -z "$klinux" ] || [ -z "$kinitrd" ]; then
	die "unexpected syslinux.cfg in $raw: $sysl"
fi
cat >"$work/efi-grub.cfg" <<EOF
insmod efi_gop
regexp --set=1:root '^\\(([^)]*)\\)' "\$cmdpath"
echo "kiln-installer: UEFI loader booting $klinux from (\$root)"
linux $klinux $kappend
initrd $kinitrd
boot
EOF
grub-mkstandalone -O x86_64-efi -o "$root/lib/BOOTX64.EFI" \
	--modules="part_msdos fat linux regexp echo efi_gop" \
	--install-modules="part_msdos fat linux regexp echo efi_gop normal" \
	--fonts= --locales= --themes= "boot/grub/grub.cfg=$work/efi-grub.cfg" >&2

# --- initramfs: the installer -----------------------------------------------

mkdir -p "$root"/{proc,sys,dev,tmp,cdrom,target,var/log,var/run}
chmod 1777 "$root/tmp"
printf 'nameserver 10.0.2.3\n' >"$root/etc/resolv.conf"
printf '127.0.0.1 localhost\n10.0.2.15 kiln-installer\n' >"$root/etc/hosts"
printf 'root:x:0:0:root:/:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"

# Shared by /init and the helpers.
cat >"$root/lib/kiln.sh" <<'EOF'
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
# say prints a marker line on the serial port and on the screen, whatever the
# console= setting is (userspace writes to /dev/console reach only one of them).
say() {
	for t in /dev/ttyS0 /dev/tty0; do
		[ -c "$t" ] && echo "kiln-installer: $*" >"$t" 2>/dev/null
	done
	return 0
}
hang() {
	while :; do sleep 3600; done
}
# wait_for TENTHS TEST...: retry TEST every 0.1 s, at most TENTHS times.
wait_for() {
	n=$1
	shift
	while ! "$@"; do
		n=$((n - 1))
		[ "$n" -gt 0 ] || return 1
		sleep 0.1
	done
}
EOF

cat >"$root/init" <<'EOF'
#!/bin/sh
. /lib/kiln.sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# The initramfs has no /dev/console node, so the kernel gave us no stdio.
exec </dev/console >/dev/console 2>&1
fail() {
	say "ERROR $*"
	hang
}

say "cmdline: $(cat /proc/cmdline)"

while read -r m; do
	insmod "/lib/modules/$m.ko" || fail "insmod $m failed"
done </etc/modules.order

# kiln.keys: a typing target instead of an installer. Every line typed on
# the keyboard (tty1) is echoed to the serial console with its length and
# sha256, so a test can compare what arrived with what was typed (the sum is
# what the guest holds, see the header);
# "poweroff" powers off.
case " $(cat /proc/cmdline) " in
*" kiln.keys "*)
	# Keyboard auto-repeat off (DECARM): under TCG the guest kernel now and
	# then sees a key's release more than 250 ms after its press and
	# repeats the key ("^55"), however the key was sent. The test is about
	# what kiln delivers, not about the guest's typematic timer.
	printf '\033[?8l' >/dev/tty1
	exec </dev/tty1
	say "keys: ready"
	while IFS= read -r line; do
		[ "$line" = poweroff ] && poweroff -f
		printf 'kiln-installer: typed: %s\n' "$line" >/dev/ttyS0
		sum=$(printf %s "$line" | sha256sum)
		printf 'kiln-installer: typed-sum: %s %s\n' "${#line}" "${sum%% *}" >/dev/ttyS0
	done
	fail "keys: end of input on tty1"
	;;
esac

# The installer CD: the first iso9660 that holds /install/guest.info. IDE and
# SCSI probing runs asynchronously, so look for a while.
find_cd() {
	for d in /dev/sr* /dev/vd* /dev/sd*; do
		[ -b "$d" ] || continue
		mount -t iso9660 -o ro "$d" /cdrom 2>/dev/null || continue
		[ -f /cdrom/install/guest.info ] && { cd_dev=$d; return 0; }
		umount /cdrom
	done
	return 1
}
if wait_for 50 find_cd; then
	say "cdrom $cd_dev mounted at /cdrom"
else
	say "no installer CD found"
fi

ip link set lo up
wait_for 100 test -e /sys/class/net/eth0 || fail "eth0 did not appear"
ip link set eth0 up || fail "ip link set eth0 up"
ip addr add 10.0.2.15/24 dev eth0 || fail "ip addr add 10.0.2.15/24"
ip route add default via 10.0.2.2 || fail "ip route add default via 10.0.2.2"
say "network up: eth0 10.0.2.15/24 via 10.0.2.2"

url=
read -r cmdline </proc/cmdline
for w in $cmdline; do
	case $w in kiln.ks=*) url=${w#kiln.ks=} ;; esac
done
if [ -z "$url" ]; then
	say "no answer file"
	hang
fi
tries=0
# (busybox 1.35's wget -T crashes: bound it with timeout instead.)
until timeout 20 wget -q -O /tmp/ks.sh "$url"; do
	tries=$((tries + 1))
	[ "$tries" -lt 5 ] || fail "cannot fetch $url"
	sleep 1
done
say "fetched $url"

out=/dev/ttyS0
[ -c "$out" ] || out=/dev/console
cd /tmp || fail "cd /tmp"
KILN_KS_URL=$url KILN_HTTP_BASE=${url%/*} sh -e /tmp/ks.sh </dev/null >"$out" 2>&1
rc=$?
[ "$rc" = 0 ] || fail "answer file exited with status $rc"
say "answer file returned without calling finish"
hang
EOF

cat >"$root/bin/install-disk" <<'EOF'
#!/bin/sh
# install-disk DEV [SOURCE]: see the top of the installer's build.sh.
. /lib/kiln.sh
fail() {
	say "ERROR install-disk: $*"
	exit 1
}
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	fail "usage: install-disk DEV [SOURCE]"
fi
dev=$1
src=${2:-/cdrom/install/guest.raw.gz}
[ -b "$dev" ] || fail "$dev is not a block device"
case $dev in
*[0-9]) part=${dev}p1 ;;
*) part=${dev}1 ;;
esac
grep -q " /target " /proc/mounts && { umount /target || fail "cannot unmount /target"; }

# The written image is not read back to be checked: that took as long as
# writing it under TCG, and mounting the partition below catches a bad write.
if [ -z "${2:-}" ]; then
	[ -f /cdrom/install/guest.info ] || fail "no installer CD at /cdrom"
	need=
	read -r info </cdrom/install/guest.info
	for kv in $info; do
		case $kv in disk_bytes=*) need=${kv#*=} ;; esac
	done
	[ -n "$need" ] || fail "no disk_bytes in /cdrom/install/guest.info"
	size=$(blockdev --getsize64 "$dev") || fail "cannot read the size of $dev"
	[ "$size" -ge "$need" ] || fail "$dev holds $size bytes, the guest needs $need"
fi

say "installing $src to $dev"
case $src in
http://*) wget -q -O - "$src" | gunzip -c >"$dev" || fail "cannot write $src to $dev" ;;
*) gunzip -c "$src" >"$dev" || fail "cannot write $src to $dev" ;;
esac
sync
blockdev --flushbufs "$dev" || fail "blockdev --flushbufs $dev"
blockdev --rereadpt "$dev" || fail "blockdev --rereadpt $dev"
wait_for 50 test -b "$part" || fail "$part did not appear"
mount -t vfat -o rw,noatime "$part" /target || fail "cannot mount $part"
if ! mkdir -p /target/EFI/BOOT || ! cp /lib/BOOTX64.EFI /target/EFI/BOOT/BOOTX64.EFI; then
	fail "cannot install the UEFI loader"
fi
say "installed to $dev, $part mounted at /target"
EOF

cat >"$root/bin/finish" <<'EOF'
#!/bin/sh
# finish poweroff|reboot: see the top of the installer's build.sh.
. /lib/kiln.sh
fail() {
	say "ERROR finish: $*"
	exit 1
}
case ${1:-} in
poweroff | reboot) ;;
*) fail "usage: finish poweroff|reboot" ;;
esac
say "finish: $1"
sync
if grep -q " /target " /proc/mounts; then
	umount /target || fail "cannot unmount /target"
	say "/target unmounted"
fi
grep -q " /cdrom " /proc/mounts && umount /cdrom
sync
"$1" -f
fail "$1 -f returned"
EOF
chmod 0755 "$root/init" "$root/bin/install-disk" "$root/bin/finish"

log "packing the initramfs"
chmod 0755 "$root"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
	gzip -n -9 >"$iso/install/initrd.gz"
cp "$kern/boot/vmlinuz-$kver" "$iso/install/vmlinuz"

# --- the ISO ----------------------------------------------------------------

# No menu entries: GRUB goes straight to its command line. The serial terminal is
# GRUB's own on BIOS; on UEFI OVMF already mirrors the console to the serial port,
# and adding GRUB's serial terminal would print everything twice.
cat >"$iso/boot/grub/grub.cfg" <<'EOF'
if [ "$grub_platform" = efi ]; then
	insmod all_video
	terminal_input console
	terminal_output console
else
	serial --unit=0 --speed=115200
	terminal_input console
	terminal_output console serial
fi
function install {
	linux /install/vmlinuz console=ttyS0,115200 $@
	initrd /install/initrd.gz
	boot
}
echo "kiln-installer: boot prompt ready ($grub_platform)"
EOF

log "making the ISO"
grub-mkrescue -o "$work/installer.iso" --fonts= --locales= --themes= "$iso" -- \
	-volid KILN_INSTALLER 2>"$work/mkrescue.log" || {
	cat "$work/mkrescue.log" >&2
	die "grub-mkrescue failed"
}

cat >"$work/ks-example.sh" <<'EOF'
# An answer file for kiln's mini installer (see testdata/installer/build.sh):
# it runs under sh -e with the installer's helpers on PATH.
echo "ks-example: installing"
install-disk /dev/vda
echo "installed by ks-example.sh from $KILN_KS_URL" >/target/installed-by.txt
finish poweroff
EOF

mv "$work/packages.txt" "$out/packages.txt"
mv "$work/ks-example.sh" "$out/ks-example.sh"
mv "$work/installer.iso" "$out/installer.iso"
log "done: kernel $kver, initramfs $(du -k "$iso/install/initrd.gz" | cut -f1) KiB," \
	"payload $(du -k "$iso/install/guest.raw.gz" | cut -f1) KiB," \
	"ISO $(du -k "$out/installer.iso" | cut -f1) KiB"
