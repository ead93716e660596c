#!/usr/bin/env bash
# Live migration of a jaula-shaped guest with CRIU, on one host: checkpoint, then restore into
# new namespaces, with a TCP connection from a client namespace kept across (the same socket
# keeps echoing, to the same address). Run as root after ./setup criu and npm run build.
#
#   scripts/criu/guest.sh demo [ROUNDS]   everything below, ROUNDS checkpoint+restore cycles (default 3),
#                                         a table of times, then teardown (also on failure)
#   scripts/criu/guest.sh up | client | checkpoint | restore | status | down   one step at a time
#
# The guest is made exactly as jaula's start makes one (core/lifecycle.ts prepareGuest):
#   - its user namespace first, IDs 0-65535 -> HOSTID.. (jaula-helper userns-create, bound to a file);
#   - its root an idmapped mount of a tree owned by 0 on disk (jaula-helper idmap-mount);
#   - its network namespace made inside that user namespace (jaula-helper netns-create --userns),
#     a veth made inside it with the guest's MAC and address, its peer moved to the host and put
#     on a bridge (plan.ts guestBatch / hostPostBatch);
#   - lxcfs's files bound over /proc/meminfo etc. (a lxcfs of the lab's own, if lxcfs is installed);
#   - config.json from jaula's own buildSpec (dist/src/runtime/spec.js): both namespaces passed by
#     path, jaula's capabilities, masked paths, seccomp profile with sysinfo sent to the supervisor;
#   - started by jaula's real supervisor (jaula-helper shim --sysinfo): console pty, seccomp listener.
# The guest runs busybox: an echo service (nc -ll -p 7000 -e cat), a counter, and every 100 ms
# `free` (sysinfo(2), answered by the supervisor with the guest's memory limit), whose total it
# keeps in /tmp/sysinfo.
#
# The seccomp listener: CRIU 4.1 restores the guest's filter, with its SECCOMP_RET_USER_NOTIF
# rule, but without a listener, so the guest's sysinfo(2) would fail with ENOSYS (busybox free
# then prints garbage). jaula's CRIU patch 0002 re-installs such a filter with a new listener and
# passes it to the supervisor's seccomp.sock (`seccomp-notify-socket` in the CRIU config file):
# JCRIU_SECCOMP_NOTIFY=relay, the default. =off leaves it out (to see the failure); =allow
# rewrites the rule to SECCOMP_RET_ALLOW in the images instead (seccomp-notify.sh: the kernel then
# answers with the host's numbers), for a CRIU without the patch. See docs/adr/0007.
#
# Checkpoint (the source side):
#   1. unmount the netns file (the file stays): runc passes CRIU --external net[INODE]:extRootNetNS
#      for a namespace given by path, and an inode no namespace of the guest has leaves the guest's
#      netns internal, so that the restore may make a new one;
#   2. runc checkpoint --tcp-established --empty-ns network (CRIU freezes the cgroup, locks the
#      netns's traffic, dumps, kills the guest; --empty-ns: the netns's links, addresses, routes
#      and rules are not dumped, jaula makes them again from its plan);
#   3. the source's network goes (networkDown: the host end of the veth): the old netns lingers
#      while the peer still sends to a dead socket, and its veth would still answer ARP.
# Restore (the target side):
#   4. a restore-time config.json: the same spec, but user and network namespaces without a path
#      (CRIU makes both, the netns inside the new user namespace), and the annotation
#      org.criu.config naming a CRIU config file with `action-script scripts/criu/netns-hook.sh`;
#   5. the supervisor restores instead of starting (restore-runtime.sh: runc restore --detach
#      --tcp-established --empty-ns network --console-socket ...); at "setup-namespaces" the hook
#      plumbs the new netns (veth, address, route) with the host end down, before CRIU restores
#      the TCP sockets on it; at "network-unlock" the host end joins the bridge and comes up.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
G=$LAB/g
ID=${TAG}g
HOSTIF=${TAG}h
BRIDGE=${TAG}br
CLIENT_NS=${TAG}cli
MAC=02:77:00:00:00:02
GUEST_CMD=$(
  cat <<'EOF'
nc -ll -p 7000 -e /bin/cat &
i=0
while :; do
  i=$((i+1)); echo $i >/tmp/count
  [ $((i % 10)) = 0 ] && echo "tick $i"
  free | awk '/Mem:/ { print "Mem total " $2 " KiB" }' >/tmp/sysinfo.new && mv /tmp/sysinfo.new /tmp/sysinfo
  sleep 0.1
done
EOF
)

up() {
  need
  mkdir -p "$G/run/bundle" "$G/root"
  [ -d "$G/disk" ] || mk_rootfs "$G/disk"
  say "user namespace (0-65535 -> $HOSTID..), idmapped root, network namespace owned by the user namespace"
  touch "$G/userns" "$G/netns"
  "$HELPER" userns-create "$G/userns" "$HOSTID" 65536
  "$HELPER" idmap-mount "$HOSTID" 65536 "$G/disk" "$G/root"
  "$HELPER" netns-create "$G/netns" --userns "$G/userns" --ping 0 65535
  say "veth $MAC $SUBNET.2/24 inside, $HOSTIF on bridge $BRIDGE; client namespace $CLIENT_NS ($SUBNET.1)"
  ip link add "$BRIDGE" type bridge
  ip link set "$BRIDGE" up
  echo "eth0 $MAC $SUBNET.2/24 $HOSTIF $BRIDGE" >"$G/net"
  printf 'link add eth0 address %s type veth peer name %s netns %s\naddr add %s.2/24 dev eth0\nlink set eth0 up\n' \
    "$MAC" "$HOSTIF" $$ "$SUBNET" | nsenter --net="$G/netns" ip -batch -
  ip link set "$HOSTIF" master "$BRIDGE" up
  ip netns add "$CLIENT_NS"
  ip link add "${TAG}cb" type veth peer name eth0 netns "$CLIENT_NS"
  ip link set "${TAG}cb" master "$BRIDGE" up
  ip -n "$CLIENT_NS" addr add "$SUBNET.1/24" dev eth0
  ip -n "$CLIENT_NS" link set eth0 up
  ip -n "$CLIENT_NS" link set lo up
  local lxcfs=""
  if command -v lxcfs >/dev/null; then
    mkdir -p "$LAB/lxcfs"
    (setsid lxcfs -f -l --enable-cfs -p "$LAB/lxcfs.pid" "$LAB/lxcfs" </dev/null >"$LAB/lxcfs.log" 2>&1 &)
    for _ in $(seq 100); do [ -e "$LAB/lxcfs/proc/meminfo" ] && break; sleep 0.05; done
    [ -e "$LAB/lxcfs/proc/meminfo" ] || die "lxcfs did not start ($LAB/lxcfs.log)"
    lxcfs=$LAB/lxcfs
  fi
  say "config.json by jaula's buildSpec; started by jaula-helper shim --sysinfo (runc)"
  JCRIU_LXCFS=$lxcfs jaula_spec "$ID" "$G/root" "$G/netns" "$G/userns" "$G/run/bundle" "$G/run/seccomp.sock" \
    -- /bin/sh -c "$GUEST_CMD"
  # runc 1.1.5 remounts a read-only bind without the source's locked flags (lxcfs is mounted
  # nosuid,nodev), which a user namespace may not drop: EPERM. crun keeps them; for runc, say them.
  # jaula would name a CRIU config file of the guest's in every spec (runc reads the annotation
  # from the state of the container it checkpoints, i.e. from the spec it was started or restored with).
  jq --arg conf "$G/criu.conf" \
    '.mounts |= map(if (.source | startswith("'"$LAB"'/lxcfs/")) then .options += ["nosuid", "nodev"] else . end)
     | .annotations["org.criu.config"] = $conf' "$G/run/bundle/config.json" >"$G/spec.json"
  cp "$G/spec.json" "$G/run/bundle/config.json"
  start_shim "${RUNC[@]}"
}

# The lxcfs binds of the guest's spec as CRIU external mounts: at dump, mnt[DESTINATION]:DESTINATION
# (the key, as runc names binds); at restore, mnt[DESTINATION]:SOURCE.
lxcfs_externals() {
  jq -r --arg lx "$LAB/lxcfs/" --arg how "$1" '.mounts[] | select(.source | startswith($lx))
    | "external mnt[\(.destination)]:\(if $how == "dump" then .destination else .source end)"' "$G/spec.json"
}

# The supervisor: with the plain runtime it starts the guest; with restore-runtime.sh it restores.
start_shim() {
  rm -f "$G/run/exit" "$G/run/exit.tmp" "$G/run/init.pid" "$G/shim.status"
  (cd / && setsid "$HELPER" shim --dir "$G/run" --id "$ID" --sysinfo --runtime "$@" --exit /bin/true \
    3>"$G/shim.status" </dev/null >>"$G/shim.log" 2>&1 &) </dev/null >/dev/null 2>&1
  for _ in $(seq 500); do grep -q . "$G/shim.status" 2>/dev/null && break; sleep 0.01; done
  grep -q '^ok' "$G/shim.status" || die "the supervisor says: $(cat "$G/shim.status" 2>/dev/null)"
}

client() {
  ip netns exec "$CLIENT_NS" node "$REPO/scripts/criu/echo-client.mjs" "$SUBNET.2" 7000 "$G/client.status" 10 \
    >"$G/client.out" 2>&1 &
  echo $! >"$G/client.pid"
  wait_echoes 20
}

echoes() { awk '/^echoes/ { n = $2 } END { print n + 0 }' "$G/client.status" 2>/dev/null || echo 0; }
# Until the client has N more echoes than now, at most 60 s: after a restore the client's TCP
# retransmits on its own backed-off timer (its RTO doubles from at least 200 ms, from an RTT that a
# loaded host inflates), which can be seconds after the guest is back.
wait_echoes() {
  local want=$(($(echoes) + $1))
  for _ in $(seq 6000); do [ "$(echoes)" -ge "$want" ] && return 0; sleep 0.01; done
  die "the client got no echo for 60 s ($(cat "$G/client.status" 2>/dev/null))"
}

checkpoint() {
  rm -rf "$G/images" "$G/work"
  # Readable by the guest's root group: CRIU reads some images from inside the new user namespace.
  install -d -m 0750 -g "$HOSTID" "$G/images"
  local t0 t1
  # After a restore the guest runs from the restore-time config.json, without the lxcfs binds:
  # runc no longer names them to CRIU, the config file does.
  lxcfs_externals dump >"$G/criu.conf"
  t0=$(now_ms)
  umount "$G/netns"
  "${RUNC[@]}" checkpoint --tcp-established --empty-ns network --image-path "$G/images" --work-path "$G/work" "$ID" ||
    die "checkpoint failed: $G/work/dump.log"
  t1=$(now_ms)
  ip link del "$HOSTIF" 2>/dev/null || true # the source's networkDown
  echo "checkpoint_s=$(secs "$t0" "$t1") frozen_s=$(frozen "$G/work/dump.log") images_kib=$(du -sk "$G/images" | cut -f1)"
}

# CRIU's frozen time: from freezing the cgroup to the end of the dump (the guest is then killed).
frozen() { awk -F'[()]' '/freezer.state=FREEZING/ && !a { a=$2 } /Dumping finished/ { b=$2 } END { printf "%.3f", b-a }' "$1"; }

restore() {
  # lxcfs's files are bound over files of /proc and /sys: runc's restore makes every bind's mount
  # point in the root first, through the idmapped root as host root (unmapped there: EOVERFLOW),
  # and /proc is not mounted then. So they leave config.json and CRIU maps them itself (CRIU
  # mounts the guest's /proc first): --external mnt[DESTINATION]:SOURCE, runc's own keys.
  {
    echo "action-script $REPO/scripts/criu/netns-hook.sh"
    lxcfs_externals restore
  } >"$G/criu.conf"
  jq --arg lx "$LAB/lxcfs/" \
    '.linux.namespaces |= map(if .type == "network" or .type == "user" then {type} else . end)
     | .mounts |= map(select(.source | startswith($lx) | not))' "$G/spec.json" >"$G/run/bundle/config.json"
  case "${JCRIU_SECCOMP_NOTIFY:-relay}" in
    relay) echo "seccomp-notify-socket $G/run/seccomp.sock" >>"$G/criu.conf" ;;
    allow) "$REPO/scripts/criu/seccomp-notify.sh" allow "$G/images" ;;
  esac
  local t0 t1
  t0=$(now_ms)
  JCRIU_RUNC="${RUNC[*]}" JCRIU_IMAGES=$G/images JCRIU_WORK=$G/work JCRIU_NET=$G/net \
    JCRIU_USERNS_FILE=$G/userns JCRIU_NETNS_FILE=$G/netns JCRIU_HOOK_LOG=$G/hook.log \
    start_shim "$REPO/scripts/criu/restore-runtime.sh" || die "restore failed: $G/work/restore.log"
  t1=$(now_ms)
  echo "restore_s=$(secs "$t0" "$t1") criu_restore_s=$(awk -F'[()]' '/^\(/ { t=$2 } END { printf "%.3f", t }' "$G/work/restore.log")"
}

status() {
  local pid
  pid=$(cat "$G/run/init.pid")
  echo "init $pid: user $(readlink "/proc/$pid/ns/user") net $(readlink "/proc/$pid/ns/net") uid_map $(awk '{print $1, $2, $3}' "/proc/$pid/uid_map")"
  echo "netns owned by the guest's userns: $(nsenter --net="/proc/$pid/ns/net" --user="/proc/$pid/ns/user" true && echo yes)"
  echo "counter $(cat "$G/root/tmp/count"), guest's own sysinfo(2): $(cat "$G/root/tmp/sysinfo" 2>/dev/null)"
  echo "runc exec free (a new process, a new seccomp listener): $("${RUNC[@]}" exec "$ID" free 2>&1 | awk '/Mem:/ { print "Mem total " $2 " KiB" }')"
  echo "console: $(tail -c 200 "$G/run/console.log" | tr -d '\r' | tail -1)"
  echo "client: $(cat "$G/client.status")"
}

down() {
  set +e
  [ -f "$G/client.pid" ] && kill "$(cat "$G/client.pid")" 2>/dev/null && sleep 0.2
  "${RUNC[@]}" kill "$ID" KILL 2>/dev/null
  for _ in $(seq 100); do [ -e "$G/run/exit" ] || [ ! -e "$G/run/init.pid" ] && break; sleep 0.02; done
  "${RUNC[@]}" delete -f "$ID" 2>/dev/null
  ip link del "$BRIDGE" 2>/dev/null
  ip link del "$HOSTIF" 2>/dev/null
  ip link del "${TAG}cb" 2>/dev/null
  ip netns del "$CLIENT_NS" 2>/dev/null
  for f in "$G/netns" "$G/userns" "$G/root"; do while umount "$f" 2>/dev/null; do :; done; done
  if [ -f "$LAB/lxcfs.pid" ]; then
    local lp
    lp=$(cat "$LAB/lxcfs.pid")
    kill "$lp" 2>/dev/null
    for _ in $(seq 200); do [ -d "/proc/$lp" ] || break; sleep 0.05; done
  fi
  while mountpoint -q "$LAB/lxcfs" 2>/dev/null; do umount "$LAB/lxcfs" || umount -l "$LAB/lxcfs" || break; done
  # Never remove through a mount (lxcfs's cgroup view would reach the host's cgroups).
  if grep -q " $LAB[/ ]" /proc/self/mountinfo; then
    echo "criu-lab: not removing $LAB: something is still mounted beneath it" >&2
    return 1
  fi
  # The logs of the last run are kept for a look afterwards.
  local keep=/tmp/jaula-criu-lab-$TAG.logs
  rm -rf "$keep"
  mkdir -p "$keep"
  cp "$G"/work/*.log "$G"/hook.log "$G"/shim.log "$G"/client.out "$G"/run/console.log "$keep"/ 2>/dev/null
  rm -rf --one-file-system "$LAB"
  rm_lab_cgroups
  return 0
}

demo() {
  local rounds=${1:-3}
  trap 'down' EXIT
  down
  up
  client
  say "guest up; client connected: $(cat "$G/client.status")"
  status
  local ticks0
  ticks0=$(grep -c tick "$G/run/console.log" || true)
  : >"$G/rounds"
  for r in $(seq "$rounds"); do
    say "round $r: checkpoint, restore"
    local c f ngaps
    ngaps=$(awk '/^echoes/ { print ($6 == "" ? 0 : split($6, g, ",")) }' "$G/client.status")
    # (through files: the supervisor started by restore must not hold a command substitution's pipe)
    checkpoint >"$G/round.out"
    c=$(cat "$G/round.out")
    echo "$c"
    f=$(echoes)
    sleep 0.2 # (only to check that the guest no longer answers: not counted in any time below)
    [ "$(echoes)" = "$f" ] || die "the client still got echoes after the checkpoint"
    restore >"$G/round.out"
    f=$(cat "$G/round.out")
    echo "$f"
    wait_echoes 20
    # The client's longest gap in this round (it lists every gap over 100 ms).
    local gap
    gap=$(awk -v n="$ngaps" '/^echoes/ { split($6, g, ","); m = 0; for (i = n + 1; i in g; i++) if (g[i] > m) m = g[i]; printf "%.3f", m / 1000 }' "$G/client.status")
    echo "$c $f client_gap_s=$gap" >>"$G/rounds"
    echo "client: $(cat "$G/client.status")"
  done
  # New console lines after the last restore: the supervisor got the new pty master.
  local t0
  t0=$(grep -c tick "$G/run/console.log" || true)
  for _ in $(seq 500); do [ "$(grep -c tick "$G/run/console.log")" -gt "$t0" ] && break; sleep 0.02; done
  say "after $rounds rounds"
  status
  echo "console: $ticks0 tick lines before the first checkpoint, $(grep -c tick "$G/run/console.log") now"
  # The guest's own processes (children of restored ones) get the guest's memory, not garbage.
  if [ "${JCRIU_SECCOMP_NOTIFY:-relay}" = relay ]; then
    local want
    want=$("${RUNC[@]}" exec "$ID" free | awk '/Mem:/ { print "Mem total " $2 " KiB" }')
    for _ in $(seq 100); do [ "$(cat "$G/root/tmp/sysinfo")" = "$want" ] && break; sleep 0.05; done
    [ "$(cat "$G/root/tmp/sysinfo")" = "$want" ] || die "the guest's sysinfo(2) is not answered after the restore: $(cat "$G/root/tmp/sysinfo")"
    echo "sysinfo(2) in the restored guest: $want (answered by the supervisor through the relayed listener)"
  fi
  [ "$(grep -c tick "$G/run/console.log")" -gt "$t0" ] || die "the console got nothing after the restore"
  kill -TERM "$(cat "$G/client.pid")"
  for _ in $(seq 200); do grep -q . "$G/client.out" 2>/dev/null && break; sleep 0.01; done
  say "client: $(cat "$G/client.out")"
  # The table: each round's times, and the client's gaps (one per round).
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
  node -e '
    const rounds = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) =>
      Object.fromEntries(l.split(" ").map((kv) => kv.split("=")).map(([k, v]) => [k, Number(v)])));
    const med = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)]; };
    const cols = ["checkpoint_s", "frozen_s", "restore_s", "criu_restore_s", "images_kib", "client_gap_s"];
    console.log(["round", ...cols].join("\t"));
    rounds.forEach((r, i) => console.log([i + 1, ...cols.map((c) => r[c])].join("\t")));
    console.log(["median", ...cols.map((c) => med(rounds.map((r) => r[c])))].join("\t"));
  ' "$G/rounds"
  grep -q '"ok":true' "$G/client.out" || die "the connection did not survive"
}

case "${1:-}" in
  up | client | checkpoint | restore | status | down) need; "$1" ;;
  demo) need; shift; demo "$@" ;;
  *) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
