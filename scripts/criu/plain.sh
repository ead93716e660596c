#!/usr/bin/env bash
# Checkpoint and restore of a plain busybox container with runc and CRIU: the baseline, before a
# jaula-shaped guest (guest.sh). Run as root after ./setup criu.
#
#   scripts/criu/plain.sh [--userns] [ROUNDS]
#
# The container counts in /tmp/count every 100 ms; each round checkpoints it (runc checkpoint:
# CRIU freezes its cgroup, dumps it, kills it), restores it (runc restore --detach) and checks that
# the count goes on from where it was (the same processes, not a new start). --userns: in a user
# namespace that runc makes (IDs 0-65535 -> HOSTID..; the tree is chowned to that range, as
# runc 1.1 has no idmapped mounts). Prints checkpoint and restore times and CRIU's frozen time.
#
# What a user namespace needs (found here): the image directory must be readable by the guest's
# root group. runc makes it 0700 root:root; CRIU restores some images (timens, tty) from tasks
# already inside the new user namespace, which then have no rights on root's files:
# "Unable to open timens-0.img: Permission denied". root:HOSTID 0750 is enough and shows nothing
# to other host users.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
userns=0
[ "${1:-}" = --userns ] && { userns=1; shift; }
rounds=${1:-3}
C=$LAB/plain
ID=${TAG}p

down() {
  "${RUNC[@]}" kill "$ID" KILL 2>/dev/null || true
  for _ in $(seq 50); do "${RUNC[@]}" state "$ID" 2>/dev/null | grep -q '"status": "running"' || break; sleep 0.02; done
  "${RUNC[@]}" delete -f "$ID" 2>/dev/null || true
  rm -rf --one-file-system "$C"
  rm_lab_cgroups
}
trap down EXIT
need
down
mk_rootfs "$C/rootfs"
cd "$C"
runc spec
maps='[{"containerID": 0, "hostID": '"$HOSTID"', "size": 65536}]'
jq --argjson userns "$userns" --argjson maps "$maps" --arg cg "jcriu-$TAG/$ID" '
  .process.terminal = false | .root.readonly = false | .linux.cgroupsPath = $cg
  | .process.args = ["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i >/tmp/count; sleep 0.1; done"]
  | if $userns == 1 then .linux.namespaces += [{"type": "user"}] | .linux.uidMappings = $maps | .linux.gidMappings = $maps else . end
' config.json >config.json.new
mv config.json.new config.json
[ "$userns" = 1 ] && chown -R "$HOSTID:$HOSTID" rootfs
"${RUNC[@]}" run -d "$ID" </dev/null >/dev/null 2>&1 || die "runc run failed"
for _ in $(seq 100); do [ -s rootfs/tmp/count ] && break; sleep 0.05; done
say "$( [ "$userns" = 1 ] && echo "user-namespaced" || echo "plain") busybox container $ID, $rounds rounds"
for r in $(seq "$rounds"); do
  rm -rf images work
  install -d -m 0750 -g "$([ "$userns" = 1 ] && echo "$HOSTID" || echo 0)" images
  t0=$(now_ms)
  "${RUNC[@]}" checkpoint --image-path images --work-path work "$ID" || die "checkpoint failed: $C/work/dump.log"
  t1=$(now_ms)
  at=
  while [ -z "$at" ]; do at=$(cat rootfs/tmp/count); done # (the shell rewrites it: empty for a moment)
  "${RUNC[@]}" restore -d --image-path images --work-path work "$ID" </dev/null >/dev/null 2>&1 ||
    die "restore failed: $C/work/restore.log"
  t2=$(now_ms)
  now=$at
  for _ in $(seq 200); do
    now=$(cat rootfs/tmp/count)
    [ -n "$now" ] && [ "$now" -gt "$at" ] && break
    sleep 0.02
  done
  [ -n "$now" ] && [ "$now" -gt "$at" ] || die "the count did not go on after the restore ($at -> $now)"
  frozen=$(awk -F'[()]' '/freezer.state=FREEZING/ && !a { a=$2 } /Dumping finished/ { b=$2 } END { printf "%.3f", b-a }' work/dump.log)
  echo "round $r: checkpoint_s=$(secs "$t0" "$t1") frozen_s=$frozen restore_s=$(secs "$t1" "$t2") images_kib=$(du -sk images | cut -f1) count $at -> $now"
done
