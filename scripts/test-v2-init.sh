#!/bin/sh
# PID 1 of the cgroup v2 test VM (scripts/test-v2.sh installs it as /sbin/v2-test-init: no
# "jaula" in its name, since a test asserts that a guest's supervisor is no child of jaula).
# It mounts what a Debian 12 host has, cgroup2 alone at /sys/fs/cgroup with the cpuset cpu io
# memory hugetlb pids controllers, mounts the checkout (the second disk) at /jaula, runs there
# the command test-v2.sh passed through qemu's fw_cfg (the tests), prints "JAULA-V2-STATUS N"
# and powers off.
#
# The tests run where systemd puts a service with Delegate=yes (jaulad.service, a CI runner):
# in /system.slice/jaula-tests.service, whose parent enables every controller for it and which
# holds the test runner's own processes.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH HOME=/root LANG=C.UTF-8 TERM=dumb NO_COLOR=1

off() {
  echo "JAULA-V2-STATUS $1"
  sync
  echo o >/proc/sysrq-trigger
  sleep 60
}
step() { "$@" || { echo "v2 init: $* failed" >&2; off 99; }; }

step mount -t proc -o nosuid,nodev,noexec proc /proc
step mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
step mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev
mkdir -p /dev/pts /dev/shm
step mount -t devpts -o nosuid,noexec,gid=5,mode=0620,ptmxmode=0666 devpts /dev/pts
step mount -t tmpfs -o nosuid,nodev tmpfs /dev/shm
step mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run
step mount -t cgroup2 -o nosuid,nodev,noexec,nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
mkdir -p /run/lock /dev/mqueue
mount -t mqueue mqueue /dev/mqueue 2>/dev/null
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
hostname jaula-v2
ip link set lo up
# The modules the tests need (a Debian host loads them on demand through udev and modprobe).
for m in loop overlay btrfs xfs veth bridge br_netfilter ifb nf_tables nft_chain_nat nft_ct \
  nft_masq nft_nat nft_fib_inet nft_reject_inet sch_htb sch_tbf sch_ingress cls_u32 act_mirred \
  tun dummy macvlan binfmt_misc fuse; do
  modprobe -q "$m" 2>/dev/null
done
sysctl -qw kernel.printk="1 4 1 7" net.ipv4.ip_forward=1 2>/dev/null

# cgroup2 as systemd makes it for a Delegate=yes service.
cd /sys/fs/cgroup || off 99
step sh -c 'echo "+cpuset +cpu +io +memory +hugetlb +pids" >cgroup.subtree_control'
mkdir -p system.slice/jaula-tests.service
step sh -c 'echo "+cpuset +cpu +io +memory +hugetlb +pids" >system.slice/cgroup.subtree_control'
step sh -c "echo $$ >system.slice/jaula-tests.service/cgroup.procs"

mkdir -p /jaula
step mount /dev/nvme0n2 /jaula
cd /jaula || off 99
modprobe -q qemu_fw_cfg
run=/sys/firmware/qemu_fw_cfg/by_name/opt/jaula/run/raw
[ -r $run ] || { echo "v2 init: no command in $run" >&2; off 99; }
cat $run >/run/v2-run.sh
echo "v2 init: $(uname -r), cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control)," \
  "this shell in $(cat /proc/self/cgroup), $(nproc) CPUs," \
  "$(($(sed -n 's/MemTotal: *\([0-9]*\).*/\1/p' /proc/meminfo) / 1024)) MiB"
setsid -w -c sh /run/v2-run.sh </dev/console >/dev/console 2>&1
off $?
