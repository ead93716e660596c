#!/usr/bin/env bash
# Runs jaula's tests on a real pure cgroup v2 host: a qemu VM (TCG emulation, no KVM) booting
# Debian 12's own cloud kernel on a debootstrap'd Debian 12 root, with cgroup2 mounted alone at
# /sys/fs/cgroup and the cpuset cpu io memory hugetlb pids controllers enabled. This checkout
# (built) goes in as a second disk; the tests run there as `node scripts/test.mjs FILTER...`
# (crun, the runtime jaula picks on a v2 host, unless JAULA_RUNTIME says otherwise), their output
# comes on the VM's serial console, and this script exits with their status.
#
#   scripts/test-v2.sh [FILTER...]     (./setup test v2 [FILTER...] installs, builds and calls it)
#   scripts/test-v2.sh --cmd 'SHELL COMMAND'   run that in the checkout instead (e.g. to look around
#                                              after a failure); --shell: an interactive shell
#
# Without FILTER: the unit tests and the lifecycle, limits, monitor, cgroupv2, isolation,
# security and escape integration tests.
# Environment:
#   JAULA_V2_CACHE    where the kernel, the root filesystem and its image are kept
#                     (default /var/cache/jaula-v2; rebuilt when an input changes)
#   JAULA_V2_MIRROR   Debian mirror for debootstrap (default http://deb.debian.org/debian)
#   JAULA_V2_CPUS, JAULA_V2_MEM   the VM's CPUs (default: the host's, at most 4) and MiB (3072)
#   JAULA_V2_TIMEOUT  seconds before the VM is killed and the run fails (default 3600)
#   JAULA_RUNTIME     crun (default on v2) or runc, passed to the tests
#   JAULA_TEST_SLOWDOWN  factor for the tests' time limits under emulation (default 10)
#
# The kernel is fetched with `apt-get download` and unpacked with `dpkg -x` into the cache:
# nothing is installed on the host. Emulation makes the tests 5 to 30 times as slow as on the
# host (process starts most); timings in the README's Development section.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
TREE=$PWD

CACHE=${JAULA_V2_CACHE:-/var/cache/jaula-v2}
MIRROR=${JAULA_V2_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
CPUS=${JAULA_V2_CPUS:-$(n=$(nproc); echo $((n > 4 ? 4 : n)))}
MEM=${JAULA_V2_MEM:-3072}
TIMEOUT=${JAULA_V2_TIMEOUT:-3600}
DEFAULT_FILTERS=(dist/src/ tests/lifecycle tests/limits tests/monitor tests/cgroupv2 tests/isolation tests/security tests/escape)

say() { printf '\033[1m==> v2: %s\033[0m\n' "$*" >&2; }
die() { printf 'test-v2: %s\n' "$*" >&2; exit 1; }
secs() { echo $(($(date +%s) - $1)); }

[ "$(id -u)" = 0 ] || die "run me as root (debootstrap, and the tests start real guests): sudo $0 $*"
for t in qemu-system-x86_64 debootstrap mkfs.ext4 dpkg apt-get; do
  command -v "$t" >/dev/null || die "$t is missing: run ./setup test v2, which installs what this needs"
done
[ -x native/out/jaula-helper ] && [ -f dist/tests/helpers.js ] || die "this checkout is not built: run npm run build (or ./setup test v2)"
CMD= STDIN=/dev/null
case "${1:-}" in
  --cmd) [ $# = 2 ] || die "--cmd takes one argument: the shell command to run in the VM"; CMD=$2; set -- ;;
  --shell) [ $# = 1 ] || die "--shell takes no arguments"; CMD='exec sh -i'; STDIN=/dev/stdin; set -- ;;
esac
FILTERS=("$@")
[ ${#FILTERS[@]} -gt 0 ] || FILTERS=("${DEFAULT_FILTERS[@]}")
if [ -z "$CMD" ]; then
  CMD="node scripts/test.mjs$(printf ' %q' "${FILTERS[@]}")"
fi
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock -w 3600 9 || die "another run holds $CACHE/.lock"
T0=$(date +%s)

# --- The kernel: Debian 12's cloud kernel, unpacked (never installed) ---------------------------
kernel_pkg() {
  apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}
PKG=$(kernel_pkg)
if [ -z "$PKG" ]; then
  apt-get update -qq || true
  PKG=$(kernel_pkg)
fi
[ -n "$PKG" ] || die "apt cannot find linux-image-cloud-amd64 (Debian 12's cloud kernel): check /etc/apt/sources.list"
KVER=${PKG#linux-image-}
KDIR=$CACHE/kernel/$KVER
if [ ! -f "$KDIR/.done" ]; then
  say "Fetching the kernel $PKG (apt-get download, dpkg -x into $KDIR)"
  rm -rf "$CACHE/kernel"
  mkdir -p "$CACHE/kernel/tmp"
  (cd "$CACHE/kernel/tmp" && apt-get download -q -o APT::Sandbox::User=root "$PKG" >/dev/null) || die "apt-get download $PKG failed"
  dpkg -x "$CACHE"/kernel/tmp/*.deb "$KDIR"
  rm -rf "$CACHE/kernel/tmp"
  touch "$KDIR/.done"
fi
VMLINUZ=$KDIR/boot/vmlinuz-$KVER
[ -f "$VMLINUZ" ] || die "$PKG has no /boot/vmlinuz-$KVER"

# --- The root filesystem: debootstrap with jaula's packages (those ./setup test installs) -------
# shellcheck disable=SC2207
PACKAGES=($(bash -c 'eval "$(grep -E "^(RUNTIME|BUILD|TEST)_PACKAGES=" setup)"; echo "${RUNTIME_PACKAGES[@]}" "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"'))
# chromium is for the dashboard test (not run here); kmod loads the kernel's modules; openssl
# has the /etc/ssl/openssl.cnf that node reads (a Debian host has it, minbase does not).
INCLUDE=$( (printf '%s\n' "${PACKAGES[@]}" | grep -vx chromium; echo kmod; echo openssl) | sort -u | paste -sd, -)
BKEY=$(printf '%s\n' "$SUITE" "$MIRROR" "$INCLUDE" | sha256sum | cut -c1-16)
ROOTDIR=$CACHE/root-$BKEY
if [ ! -f "$ROOTDIR/.done" ]; then
  say "debootstrap $SUITE into $ROOTDIR (once; a few minutes)"
  rm -rf "$CACHE"/root-*
  debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOTDIR" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
    die "debootstrap failed (log: $CACHE/debootstrap.log)"
  rm -rf "$ROOTDIR"/var/cache/apt/archives/*.deb
  touch "$ROOTDIR/.done"
fi

# --- The disk image: the root, the kernel's modules, this host's node, the VM's init ------------
NODE=$(command -v node)
IKEY=$( (echo "$BKEY $KVER"; sha256sum "$NODE" scripts/test-v2-init.sh) | sha256sum | cut -c1-16)
IMG=$CACHE/root.img
if [ "$(cat "$CACHE/root.key" 2>/dev/null)" != "$IKEY" ]; then
  say "Making the VM's disk image $IMG"
  rm -rf "$ROOTDIR"/lib/modules/*
  mkdir -p "$ROOTDIR/lib/modules"
  cp -a "$KDIR/lib/modules/$KVER" "$ROOTDIR/lib/modules/"
  chroot "$ROOTDIR" depmod "$KVER"
  install -m 0755 "$NODE" "$ROOTDIR/usr/local/bin/node"
  install -m 0755 scripts/test-v2-init.sh "$ROOTDIR/sbin/v2-test-init"
  echo jaula-v2 >"$ROOTDIR/etc/hostname"
  rm -f "$IMG" "$CACHE/root.key"
  # 8 GiB, sparse: the tests' guests, images and pools live on it (writes are thrown away).
  mkfs.ext4 -q -F -L jaula-v2-root -d "$ROOTDIR" "$IMG.tmp" 8G >/dev/null
  mv "$IMG.tmp" "$IMG"
  echo "$IKEY" >"$CACHE/root.key"
fi
say "kernel, root and image ready ($(secs "$T0") s)"

# --- This checkout, as a second disk ---------------------------------------------------------
WORK=$(mktemp -d /var/tmp/jaula-v2.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
T1=$(date +%s)
size=$(du -sm . | cut -f1)
mkfs.ext4 -q -F -L jaula-v2-tree -E root_owner=0:0 -d "$TREE" "$WORK/tree.img" "$((size * 2 + 512))M" >/dev/null
say "this checkout as a disk ($(secs "$T1") s)"

# --- Boot, run, stream -----------------------------------------------------------------------------
say "Booting $KVER under qemu (TCG, $CPUS CPUs, $MEM MiB): $CMD"
# What the VM runs (its init reads it through qemu's fw_cfg).
{
  [ -z "${JAULA_RUNTIME:-}" ] || printf 'export JAULA_RUNTIME=%q\n' "$JAULA_RUNTIME"
  # The tests' time limits (not their assertions) stretched for emulation (tests/helpers.ts).
  printf 'export JAULA_TEST_SLOWDOWN=%q\n' "${JAULA_TEST_SLOWDOWN:-10}"
  printf '%s\n' "$CMD"
} >"$WORK/run.sh"
T2=$(date +%s)
set +e
timeout --foreground --kill-after=10 "$TIMEOUT" qemu-system-x86_64 \
  -accel tcg,thread=multi -cpu max -smp "$CPUS" -m "$MEM" \
  -display none -monitor none -no-reboot \
  -chardev stdio,id=con,signal=on -serial chardev:con \
  -kernel "$VMLINUZ" \
  -append "console=ttyS0 root=/dev/nvme0n1 rootwait rw loglevel=1 panic=-1 init=/sbin/v2-test-init" \
  -fw_cfg "name=opt/jaula/run,file=$WORK/run.sh" \
  -device nvme,id=nvme0,serial=jaula-v2 \
  -drive "file=$IMG,if=none,id=root,format=raw,snapshot=on" -device nvme-ns,drive=root,bus=nvme0,nsid=1 \
  -drive "file=$WORK/tree.img,if=none,id=tree,format=raw,snapshot=on" -device nvme-ns,drive=tree,bus=nvme0,nsid=2 \
  -nic none <"$STDIN" 2>&1 | tee "$WORK/console.log"
qemu_status=${PIPESTATUS[0]}
set -e
[ "$qemu_status" != 124 ] || say "the VM ran out of time (JAULA_V2_TIMEOUT=$TIMEOUT s) and was killed"
status=$(sed -n 's/^JAULA-V2-STATUS \([0-9]*\).*/\1/p' "$WORK/console.log" | tail -1)
say "VM done in $(secs "$T2") s (total $(secs "$T0") s)"
[ -n "$status" ] || die "the VM ended without reporting the tests' status (see its console above)"
exit "$status"
