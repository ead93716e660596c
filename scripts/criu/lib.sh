# Shared by the live-migration prototypes in scripts/criu/ (sourced, not run).
#
# Everything a prototype makes is named from JCRIU_TAG (default "jcl") and lives under JCRIU_LAB
# (default /run/jaula-criu-lab): runc's state (its own --root), bundles, CRIU images, namespaces.
# Network devices are named TAG..., cgroups go beneath the caller's own (relative cgroupsPath
# jcriu-TAG/NAME, as jaula's runc guests do). Addresses are 10.77.0.0/24, only between namespaces
# the prototype makes itself (a bridge without any address on the host).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TAG=${JCRIU_TAG:-jcl}
LAB=${JCRIU_LAB:-/run/jaula-criu-lab}/$TAG
CRIU=${JAULA_CRIU:-/usr/local/lib/jaula/criu/sbin/criu}
HELPER=$REPO/native/out/jaula-helper
INITBIN=$REPO/native/out/jaula-init
RUNC_ROOT=$LAB/runc
RUNC=(runc --root "$RUNC_ROOT" --criu "$CRIU")
# The guest's ID range: like jaula's (hostId, 65536), far above any range jaula gives a guest.
HOSTID=${JCRIU_HOSTID:-2000000000}
SUBNET=10.77.0

say() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
die() { printf 'criu-lab: %s\n' "$*" >&2; exit 1; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

need() {
  [ "$(id -u)" = 0 ] || die "run as root"
  [ -x "$CRIU" ] || die "no CRIU at $CRIU: run ./setup criu"
  [ -x "$HELPER" ] || die "no $HELPER: build jaula first (npm run build)"
  mkdir -p "$LAB"
}

# A busybox root filesystem (files owned by 0 on disk, as jaula keeps a guest's tree).
mk_rootfs() {
  local d=$1
  mkdir -p "$d"/{bin,sbin,etc,proc,sys,dev,tmp,root,run,var/log}
  cp /usr/bin/busybox "$d/bin/busybox"
  for a in $(busybox --list); do [ -e "$d/bin/$a" ] || ln -s busybox "$d/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$d/etc/passwd"
  printf 'root:x:0:\n' >"$d/etc/group"
  chmod 1777 "$d/tmp"
}

# A guest spec made by jaula's own buildSpec (dist/src/runtime/spec.js), so the prototype's
# guest has exactly a jaula guest's namespaces, mounts, capabilities, seccomp profile (with the
# sysinfo notification), masked paths and console. Arguments: NAME ROOTFS NETNS USERNS BUNDLE
# SYSINFO-SOCKET -- CMD...; JCRIU_LXCFS=DIR binds lxcfs's files as jaula does.
jaula_spec() {
  local name=$1 rootfs=$2 netns=$3 userns=$4 bundle=$5 sysinfo=$6
  shift 6
  [ "$1" = -- ] && shift
  mkdir -p "$bundle"
  node --input-type=module - "$name" "$rootfs" "$netns" "$userns" "$bundle" "$sysinfo" "$HOSTID" \
    "$INITBIN" "$TAG" "$@" <<'EOF'
const [name, rootfs, netns, userns, bundle, sysinfo, hostId, initBin, tag, ...cmd] = process.argv.slice(2);
const { buildSpec } = await import(`${process.env.REPO}/dist/src/runtime/spec.js`);
const { writeFileSync } = await import('node:fs');
const cfg = {
  name, context: 9999, hostname: name, initstyle: 'cmd', cmd, marks: [], depends: [], runtime: 'runc',
  privileged: false, profile: 'default', stopTimeout: 10, storage: { driver: 'dir' }, interfaces: [],
  forwards: [], build: { method: 'skeleton' },
};
const spec = buildSpec({
  cfg, rootfs, cgroupsPath: `jcriu-${tag}/${name}`, initBin, fstab: [], nofileHard: 1024,
  hostMemory: (await import('node:os')).totalmem(),
  netns, userns, idmap: { hostId: Number(hostId), size: 65536 },
  ...(sysinfo ? { sysinfoListener: sysinfo } : {}),
  ...(process.env.JCRIU_LXCFS ? { lxcfs: process.env.JCRIU_LXCFS } : {}),
});
writeFileSync(`${bundle}/config.json`, JSON.stringify(spec, null, 1));
EOF
}

# Seconds with millisecond precision between two now_ms values.
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1000 }'; }
export REPO

# The lab's parent cgroups (runc leaves a container's parent): removed once empty. rmdir removes
# an empty cgroup only; the cgroup v1 hierarchies nest the lab beneath the caller's own cgroup.
rm_lab_cgroups() {
  find /sys/fs/cgroup -maxdepth 5 -type d -name "jcriu-$TAG" -exec rmdir {} + 2>/dev/null || true
}
