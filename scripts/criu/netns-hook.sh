#!/bin/sh
# CRIU action script for restoring a jaula-shaped guest (named in the CRIU config file that the
# restore-time config.json names with the annotation org.criu.config: "action-script PATH").
#
# Why: a jaula guest's network namespace belongs to the guest's user namespace. runc hands CRIU
# the old namespace as external (--inherit-fd), CRIU makes a *new* user namespace for the guest,
# and a task in that new user namespace may not setns() into a network namespace owned by
# another one: "Can't setns .../net: Operation not permitted". So the guest is restored with
# runc's --empty-ns network: CRIU makes a fresh network namespace inside the new user namespace
# (owned by it, as jaula's own is), and at the "setup-namespaces" stage, before any socket is
# restored, this script plumbs it as jaula's networkUp does (src/network/plan.ts guestBatch): lo up,
# the veth with the guest's name, MAC and address, its route, ICMP echo sockets for the guest's
# gids. The TCP sockets are then restored onto that address; at "network-unlock" the host end of
# each veth joins its bridge and comes up, and traffic flows again.
# It also binds the new namespaces where jaula keeps a guest's (run/jaula/userns/NAME and
# run/jaula/netns/NAME), so that everything else of jaula (exec, network teardown) finds them.
#
# Environment (from CRIU): CRTOOLS_SCRIPT_ACTION, CRTOOLS_INIT_PID (the restored init, host PID).
# From the caller (restore-runtime.sh passes them through runc and CRIU): JCRIU_NET = a file with
# the guest's plan: one line "IFNAME MAC ADDRESS/PREFIX HOSTIF BRIDGE [GATEWAY]" per interface;
# JCRIU_USERNS_FILE, JCRIU_NETNS_FILE = where to bind the new namespaces (optional);
# JCRIU_HOOK_LOG = a log file.
set -eu
log() { [ -z "${JCRIU_HOOK_LOG:-}" ] || echo "$(date +%T.%N | cut -c1-12) $*" >>"$JCRIU_HOOK_LOG"; }
log "$CRTOOLS_SCRIPT_ACTION ${CRTOOLS_INIT_PID:-}"
pid=${CRTOOLS_INIT_PID:-}
ns=/proc/$pid/ns/net

case "$CRTOOLS_SCRIPT_ACTION" in
setup-namespaces)
  # CRIU reads the RPC config file twice and so runs its action script twice: once is enough.
  if nsenter --net="$ns" ip -o link show | grep -q ' lo: <.*UP'; then exit 0; fi
  # The host ends stay down until CRIU unlocks the network (below): an address that answered
  # now, before the TCP sockets are back and before CRIU's lock rules exist, would answer the
  # peer's next retransmission with a reset. The guest's side is up, with its routes (restoring a
  # connected TCP socket needs a route to its peer; a link without carrier keeps its routes).
  batch="link set lo up
" routes=
  while read -r ifname mac addr hostif bridge gateway; do
    [ -n "$ifname" ] || continue
    # The source's host end may still exist when this host is also the source (the prototype's
    # single-host migration): the old pair goes first, as jaula's networkDown would remove it.
    ip link del "$hostif" 2>/dev/null || true
    batch="${batch}link add $ifname address $mac type veth peer name $hostif netns $$
addr add $addr dev $ifname
link set $ifname up
"
    [ -n "${gateway:-}" ] && [ -z "$routes" ] && routes="route add default via $gateway dev $ifname
"
  done <"$JCRIU_NET"
  printf '%s%s' "$batch" "$routes" | nsenter --net="$ns" ip -batch - >>"${JCRIU_HOOK_LOG:-/dev/null}" 2>&1
  # ICMP echo sockets for all the guest's gids, written from inside its user namespace (gids are
  # read in the writer's user namespace), as jaula-helper netns-create --ping 0 65535 does.
  nsenter --user="/proc/$pid/ns/user" --net="$ns" sh -c 'echo "0 65535" >/proc/sys/net/ipv4/ping_group_range' || true
  # jaula's files for the guest's namespaces now name the new ones.
  for pair in "user:${JCRIU_USERNS_FILE:-}" "net:${JCRIU_NETNS_FILE:-}"; do
    kind=${pair%%:*} file=${pair#*:}
    [ -n "$file" ] || continue
    while umount "$file" 2>/dev/null; do :; done
    touch "$file"
    mount --bind "/proc/$pid/ns/$kind" "$file"
  done
  log "plumbed: $(nsenter --net="$ns" ip -o -4 addr show | awk '{print $2, $4}' | tr '\n' ' ')"
  ;;
network-unlock)
  # The sockets are back: the host ends join their bridges and come up (once: see above).
  while read -r ifname mac addr hostif bridge gateway; do
    [ -n "$ifname" ] || continue
    [ "$(cat "/sys/class/net/$hostif/operstate" 2>/dev/null)" = up ] && exit 0
    ip link set "$hostif" master "$bridge" up
  done <"$JCRIU_NET"
  log "up"
  ;;
esac
