#!/bin/sh
# What to do with a guest's seccomp user-notification rule in CRIU images.
#
#   seccomp-notify.sh count IMAGES   how many BPF instructions `ret SECCOMP_RET_USER_NOTIF` seccomp.img holds
#   seccomp-notify.sh allow IMAGES   rewrite each to `ret SECCOMP_RET_ALLOW` (in place)
#
# jaula's supervisor answers a guest's sysinfo(2) through a seccomp filter rule whose action is
# SECCOMP_RET_USER_NOTIF (runtime/spec.ts, native/helper/sysinfo.c handle_notify). A listener fd
# exists only from the moment a filter is installed with SECCOMP_FILTER_FLAG_NEW_LISTENER; CRIU 4.1
# re-installs the dumped filters without it, so after a restore nobody listens and the kernel
# fails the guest's sysinfo(2) with ENOSYS (busybox free and uptime do not check, and print
# garbage). With a CRIU without jaula's patch 0002 (which carries the listener; docs/adr/0007), "allow" lets the
# kernel answer: the guest sees the host's memory and uptime in sysinfo(2), lxcfs's files stay right.
#
# A classic BPF instruction is 8 bytes {u16 code, u8 jt, u8 jf, u32 k}, little-endian here:
# BPF_RET|BPF_K = 0x0006, SECCOMP_RET_USER_NOTIF = 0x7fc00000, SECCOMP_RET_ALLOW = 0x7fff0000.
# The rewrite keeps every length, so the protobuf image stays valid.
set -eu
img=$2/seccomp.img
[ -f "$img" ] || { echo "seccomp-notify: no $img" >&2; exit 1; }
case "$1" in
count) perl -0777 -ne 'print scalar(() = /\x06\x00\x00\x00\x00\x00\xc0\x7f/g), "\n"' "$img" ;;
allow) perl -0777 -pi -e 's/\x06\x00\x00\x00\x00\x00\xc0\x7f/\x06\x00\x00\x00\x00\x00\xff\x7f/g' "$img" ;;
*) echo "usage: seccomp-notify.sh count|allow IMAGES" >&2; exit 2 ;;
esac
