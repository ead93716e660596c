/**
 * The escape and abuse attempts of tests/escape, as the probe (probe.c) runs them from inside a
 * guest. The ids are the probe's; `escape.test.ts` checks that both lists are the same, and that
 * docs/security/escape-attempts.md names every attempt.
 *
 * KNOWN_GAPS lists the attempts that are NOT blocked yet on the default profile, and
 * KNOWN_GAPS_FULL_OS those the full-os profile lets through, each with its justification. The
 * tests treat them as expected failures, report each one loudly, and assert that it is really
 * still not blocked, so that the lists cannot go stale.
 *
 * WEAKENED_BLOCKS is the expected verdict of every attempt on the deliberately weakened guest
 * (JAULA_TEST_WEAKEN=1): an attempt listed there is still blocked by what the weakening keeps,
 * and names the positive control that opens exactly that hole; every other attempt must get
 * through (or find its feature absent from the kernel).
 */

/** How the test runs an attempt. */
export type Via =
  /** `jaula exec GUEST -- probe ...` with pipes for stdio (the main batch). */
  | 'exec'
  /** In an interactive shell of `jaula enter GUEST` (a pty). */
  | 'enter'
  /** `jaula exec GUEST -- probe ...` run from a terminal (the operator's pty as stdio). */
  | 'exec-from-terminal'
  /** While other `jaula exec` calls into the same guest run concurrently. */
  | 'exec-concurrent';

export interface Attempt {
  id: string;
  /** What the attempt does. */
  what: string;
  /** What the probe must meet for the attempt to count as blocked. */
  expect: string;
  /** The layer that should stop it. */
  layer: string;
  via: Via;
}

export const ATTEMPTS: readonly Attempt[] = [
  {
    id: 'caps.bounding-set',
    what: 'keep a dangerous capability (SYS_ADMIN, SYS_MODULE, SYS_RAWIO, SYS_PTRACE, SYS_TIME, SYSLOG, DAC_READ_SEARCH, BPF, PERFMON, ...) in the bounding set',
    expect: 'none of them in CapBnd',
    layer: 'capability bounding set',
    via: 'exec',
  },
  {
    id: 'caps.raise',
    what: 'capset(2) CAP_SYS_ADMIN into the effective and permitted sets',
    expect: 'EPERM',
    layer: 'capability bounding set',
    via: 'exec',
  },
  {
    id: 'privs.setuid-root',
    what: 'as uid 65534, run a setuid-root copy of the probe and become the host root',
    expect: 'no privilege gained (no_new_privs, nosuid), or guest root is an unprivileged host uid',
    layer: 'user namespace (or no_new_privs)',
    via: 'exec',
  },
  {
    id: 'userns.host-root',
    what: 'read /proc/self/uid_map: is uid 0 in the guest uid 0 on the host?',
    expect: 'uid 0 maps to a non-zero host uid',
    layer: 'user namespace',
    via: 'exec',
  },
  {
    id: 'userns.disjoint-maps',
    what: "compare this guest's uid/gid maps with another guest's (read by the test on the host)",
    expect: 'host id ranges disjoint',
    layer: 'user namespace (per-guest id ranges)',
    via: 'exec',
  },
  {
    id: 'userns.unshare',
    what: 'unshare(CLONE_NEWUSER): a new user namespace, the first step of many kernel exploits',
    expect: 'EPERM',
    layer: 'seccomp',
    via: 'exec',
  },
  {
    id: 'mount.proc',
    what: 'mount a new proc',
    expect: 'EPERM',
    layer: 'capability bounding set (no CAP_SYS_ADMIN), seccomp',
    via: 'exec',
  },
  {
    id: 'mount.sysfs-rw',
    what: 'remount /sys read-write, or mount a new sysfs',
    expect: 'EPERM',
    layer: 'capability bounding set, read-only /sys',
    via: 'exec',
  },
  {
    id: 'mount.bind',
    what: 'bind-mount /etc elsewhere',
    expect: 'EPERM',
    layer: 'capability bounding set, seccomp',
    via: 'exec',
  },
  {
    id: 'mount.fsopen',
    what: 'fsopen("tmpfs"): the new mount API',
    expect: 'EPERM',
    layer: 'capability bounding set, seccomp',
    via: 'exec',
  },
  {
    id: 'mount.unmask',
    what: 'umount the /dev/null mask over a /proc file (keys, timer_list, kmsg, ...)',
    expect: 'EPERM',
    layer: 'masked paths + capability bounding set (locked mounts under a user namespace)',
    via: 'exec',
  },
  {
    id: 'chroot.double',
    what: 'the double-chroot climb: chroot into a subdirectory, chdir("..") from outside it, chroot(".")',
    expect: "the climb ends at the guest's own root",
    layer: 'mount namespace + pivot_root',
    via: 'exec',
  },
  {
    id: 'fd.leaked',
    what: 'look for inherited descriptors, cwd or root of any visible process that lead outside the guest',
    expect: 'none; the probe inherits only fds 0-2 (pipes)',
    layer: 'runtime and supervisor (close inherited fds)',
    via: 'exec',
  },
  {
    id: 'kmod.init_module',
    what: 'init_module(2) with an empty image',
    expect: 'EPERM',
    layer: 'capability bounding set (no CAP_SYS_MODULE), seccomp',
    via: 'exec',
  },
  {
    id: 'kmod.finit_module',
    what: 'finit_module(2) on /dev/null',
    expect: 'EPERM',
    layer: 'capability bounding set, seccomp',
    via: 'exec',
  },
  {
    id: 'kmod.delete_module',
    what: 'delete_module(2) of a module that does not exist',
    expect: 'EPERM',
    layer: 'capability bounding set, seccomp',
    via: 'exec',
  },
  {
    id: 'kexec.load',
    what: 'kexec_load(2) with one segment too many (EINVAL once past the permission check)',
    expect: 'EPERM',
    layer: 'seccomp (CAP_SYS_BOOT is kept for halt/reboot inside), user namespace',
    via: 'exec',
  },
  {
    id: 'fs.open_by_handle_at',
    what: 'the "shocker" escape: open_by_handle_at(2) with a handle, then the root of the host filesystem by handle',
    expect: 'EPERM',
    layer: 'capability bounding set (no CAP_DAC_READ_SEARCH), seccomp, user namespace',
    via: 'exec',
  },
  {
    id: 'keys.add_key',
    what: "add_key(2) into the kernel's keyring service (not namespaced)",
    expect: 'EPERM',
    layer: 'seccomp',
    via: 'exec',
  },
  {
    id: 'keys.host-keyring',
    what: "keyctl(2): reach the user keyring; is it the host root's (_uid.0)?",
    expect: "EPERM, or the guest's own keyring",
    layer: 'seccomp, user namespace',
    via: 'exec',
  },
  {
    id: 'bpf.prog_load',
    what: 'bpf(BPF_PROG_LOAD) of a two-instruction socket filter',
    expect: 'EPERM',
    layer: 'seccomp, capability bounding set (no CAP_BPF/CAP_SYS_ADMIN)',
    via: 'exec',
  },
  {
    id: 'perf.self',
    what: 'perf_event_open(2) on itself (allowed to anyone at perf_event_paranoid 2)',
    expect: 'EPERM',
    layer: 'seccomp',
    via: 'exec',
  },
  {
    id: 'perf.cpu-wide',
    what: 'perf_event_open(2) watching all of CPU 0, host included',
    expect: 'EACCES or EPERM',
    layer: 'seccomp, capability bounding set (no CAP_PERFMON)',
    via: 'exec',
  },
  {
    id: 'userfaultfd',
    what: 'userfaultfd(2), plain and UFFD_USER_MODE_ONLY (a tool for kernel race exploits)',
    expect: 'EPERM',
    layer: 'seccomp',
    via: 'exec',
  },
  {
    id: 'io_uring.setup',
    what: 'io_uring_setup(2)',
    expect: 'EPERM',
    layer: 'seccomp',
    via: 'exec',
  },
  {
    id: 'net.af_packet',
    what: 'link-layer sockets: socket(AF_PACKET, SOCK_RAW and SOCK_DGRAM), socket(AF_XDP)',
    expect: 'EPERM',
    layer: 'seccomp (guests hold CAP_NET_RAW for ping)',
    via: 'exec',
  },
  {
    id: 'net.raw_inet',
    what: 'raw IP sockets but ICMP: socket(AF_INET and AF_INET6, SOCK_RAW, IPPROTO_RAW, TCP, UDP); IP_HDRINCL and IPV6_HDRINCL on an ICMP raw socket',
    expect: 'EPERM',
    layer: 'seccomp (raw sockets for ICMP and ICMPv6 only, no HDRINCL)',
    via: 'exec',
  },
  {
    id: 'net.af_alg',
    what: 'socket(AF_ALG): the kernel crypto API',
    expect: 'EPERM (EAFNOSUPPORT where the kernel lacks it)',
    layer: 'seccomp',
    via: 'exec',
  },
  {
    id: 'net.af_vsock',
    what: 'socket(AF_VSOCK): a line to the hypervisor (created only, never connected)',
    expect: 'EPERM',
    layer: 'seccomp',
    via: 'exec',
  },
  {
    id: 'sock.host-api',
    what: "connect to unix sockets bound outside the guest (docker.sock, containerd, dbus, systemd, jaula's own, any socket file in the tree not bound in the guest's network namespace)",
    expect: 'none reachable',
    layer: 'mount namespace (nothing of the host mounted in)',
    via: 'exec',
  },
  {
    id: 'time.clock_settime',
    what: 'clock_settime(CLOCK_REALTIME) to the current time',
    expect: 'EPERM',
    layer: 'capability bounding set (no CAP_SYS_TIME), seccomp',
    via: 'exec',
  },
  {
    id: 'time.settimeofday',
    what: 'settimeofday(2) with an out-of-range time zone (EINVAL once past the permission check)',
    expect: 'EPERM',
    layer: 'capability bounding set, seccomp',
    via: 'exec',
  },
  {
    id: 'time.adjtimex',
    what: 'adjtimex(2) ADJ_TICK with an out-of-range tick (EINVAL once past the permission check)',
    expect: 'EPERM',
    layer: 'capability bounding set, seccomp',
    via: 'exec',
  },
  {
    id: 'klog.syslog',
    what: 'syslog(2) READ_ALL: read the kernel log',
    expect: 'EPERM',
    layer: 'capability bounding set (no CAP_SYSLOG) with dmesg_restrict, seccomp',
    via: 'exec',
  },
  {
    id: 'klog.proc-kmsg',
    what: 'open /proc/kmsg (never read: reading consumes the log)',
    expect: 'masked (/dev/null)',
    layer: 'masked paths',
    via: 'exec',
  },
  {
    id: 'klog.kallsyms',
    what: 'read kernel addresses from /proc/kallsyms',
    expect: 'all zero',
    layer: 'capability bounding set (no CAP_SYSLOG), kptr_restrict',
    via: 'exec',
  },
  {
    id: 'proc.kcore',
    what: 'open /proc/kcore (never read)',
    expect: 'masked (/dev/null), or absent',
    layer: 'masked paths',
    via: 'exec',
  },
  {
    id: 'proc.info-leaks',
    what: 'read /proc/timer_list, sched_debug, keys, latency_stats, timer_stats, acpi, scsi, /sys/firmware',
    expect: 'masked or empty',
    layer: 'masked paths',
    via: 'exec',
  },
  {
    id: 'proc.sysrq-trigger',
    what: "open /proc/sysrq-trigger for writing and write 'h' (help) only",
    expect: 'EROFS (ENOENT where the kernel lacks sysrq)',
    layer: 'read-only paths',
    via: 'exec',
  },
  {
    id: 'sysctl.core_pattern',
    what: 'open /proc/sys/kernel/core_pattern for writing (a pipe there runs as host root); nothing written',
    expect: 'EROFS',
    layer: 'read-only paths (/proc/sys)',
    via: 'exec',
  },
  {
    id: 'sysctl.modprobe',
    what: 'open /proc/sys/kernel/modprobe for writing; nothing written',
    expect: 'EROFS (ENOENT where the kernel has no modules)',
    layer: 'read-only paths (/proc/sys)',
    via: 'exec',
  },
  {
    id: 'sysctl.host-knobs',
    what: 'open host-wide /proc/sys knobs for writing (poweroff_cmd, panic, sysrq, kptr_restrict, dmesg_restrict, drop_caches, ...); nothing written',
    expect: 'EROFS',
    layer: 'read-only paths (/proc/sys)',
    via: 'exec',
  },
  {
    id: 'sys.host-knobs',
    what: 'open /sys knobs for writing (uevent_helper, transparent_hugepage, ksm, power/state, ...); nothing written',
    expect: 'EROFS',
    layer: 'read-only /sys',
    via: 'exec',
  },
  {
    id: 'binfmt_misc.register',
    what: 'open binfmt_misc/register, or mount binfmt_misc and open it (nothing registered)',
    expect: 'EPERM',
    layer: 'capability bounding set, seccomp',
    via: 'exec',
  },
  {
    id: 'cgroup.release_agent',
    what: 'write any reachable release_agent (its own value back), or mount a cgroup v1 hierarchy to reach one',
    expect: 'EPERM/EROFS/ENOENT',
    layer: 'cgroup namespace, read-only cgroup mount, capability bounding set',
    via: 'exec',
  },
  {
    id: 'cgroup.memory-limit',
    what: "write the guest's own memory limit (its own value back) through /sys/fs/cgroup",
    expect: 'EROFS',
    layer: 'read-only cgroup mount',
    via: 'exec',
  },
  {
    id: 'cgroup.pids-limit',
    what: "write the guest's own pids limit (its own value back) through /sys/fs/cgroup",
    expect: 'EROFS',
    layer: 'read-only cgroup mount',
    via: 'exec',
  },
  {
    id: 'dev.mknod-disk',
    what: "mknod the host's block devices (the disk under the guest first) in /dev and open them read-only",
    expect: 'EPERM',
    layer: 'device cgroup (allowlist)',
    via: 'exec',
  },
  {
    id: 'dev.mknod-kmsg',
    what: 'mknod /dev/kmsg (c 1:11) and open it',
    expect: 'EPERM',
    layer: 'device cgroup (allowlist)',
    via: 'exec',
  },
  {
    id: 'dev.planted-nodes',
    what: "open device nodes found in the guest's tree (the test plants the host's disk and /dev/kmsg there, as a hostile template would)",
    expect: 'EPERM',
    layer: 'device cgroup (allowlist)',
    via: 'exec',
  },
  {
    id: 'exec.proc-self-exe',
    what: 'open /proc/self/exe for writing in a process started by jaula exec (never written)',
    expect: 'ETXTBSY or EROFS',
    layer: 'kernel (text busy), read-only bind of the binary',
    via: 'exec',
  },
  {
    id: 'exec.runtime-exe',
    what: 'CVE-2019-5736: while jaula exec runs (also with a #!/proc/self/exe script and a /proc/self/exe symlink as the command), catch a process whose binary is outside the guest and reopen it for writing',
    expect: 'no such process seen, or it does not open for writing',
    layer:
      'jaula-exec: the command alone enters the guest, not dumpable until it executes; its binary is busy (ETXTBSY) while it runs',
    via: 'exec-concurrent',
  },
  {
    id: 'tty.tiocsti',
    what: "in jaula enter: check the pty is the guest's own, then TIOCSTI into it without it being the controlling terminal",
    expect: "the guest's own pty; TIOCSTI EPERM",
    layer: 'fresh pty from the runtime, capability bounding set (no CAP_SYS_ADMIN), seccomp',
    via: 'enter',
  },
  {
    id: 'tty.host-terminal',
    what: "jaula exec run from a terminal: does the command hold the operator's terminal? (nothing injected)",
    expect: "no terminal from outside the guest's devpts",
    layer: "jaula exec (a pty or pipes of its own, never the caller's terminal)",
    via: 'exec-from-terminal',
  },
  {
    id: 'guest.kill',
    what: "kill(pid, 0) another guest's init and a host process (host pids, identity checked by start time)",
    expect: 'ESRCH',
    layer: 'PID namespace',
    via: 'exec',
  },
  {
    id: 'guest.ptrace',
    what: "PTRACE_SEIZE another guest's init and a host process",
    expect: 'ESRCH',
    layer: 'PID namespace',
    via: 'exec',
  },
  {
    id: 'ipc.host-sysv-shm',
    what: 'reach a SysV shared memory segment the test made on the host (by id and by key)',
    expect: 'EINVAL/ENOENT',
    layer: 'IPC namespace',
    via: 'exec',
  },
  {
    id: 'ipc.guest-sysv-shm',
    what: "reach another guest's SysV shared memory segment (by id and by key)",
    expect: 'EINVAL/ENOENT',
    layer: 'IPC namespace',
    via: 'exec',
  },
  {
    id: 'ipc.guest-posix-shm',
    what: "open another guest's POSIX shared memory (/dev/shm/NAME)",
    expect: 'ENOENT',
    layer: 'a /dev/shm of its own',
    via: 'exec',
  },
  {
    id: 'ipc.guest-mqueue',
    what: "mq_open another guest's POSIX message queue",
    expect: 'ENOENT',
    layer: 'IPC namespace',
    via: 'exec',
  },
  {
    id: 'guest.files',
    what: "open another guest's file and a host file by their host paths (also through /.. and /proc/1/root/..)",
    expect: 'ENOENT',
    layer: 'mount namespace + pivot_root',
    via: 'exec',
  },
  {
    id: 'env.secrets',
    what: "look for JAULA_* variables and the test's host canary in the environment of every guest process",
    expect: 'none',
    layer: 'runtime spec (env from the guest config only)',
    via: 'exec',
  },
  {
    id: 'dos.fork',
    what: 'fork until refused (at most the pids limit + 16; 256 when there is no limit), then kill them all',
    expect: 'EAGAIN at the pids limit',
    layer: 'pids cgroup limit',
    via: 'exec',
  },
  {
    id: 'dos.memory',
    what: 'check for a memory limit below the host memory; when it is at most 1 GiB, fill it in a child',
    expect: 'a limit, enforced (OOM kill or ENOMEM)',
    layer: 'memory cgroup limit',
    via: 'exec',
  },
  {
    id: 'dos.disk',
    what: "write more than a guest's default disk limit to its / (then remove it)",
    expect: "ENOSPC/EDQUOT, or a / smaller than the host's filesystem",
    layer: "storage quota (the pool's per-guest quota group)",
    via: 'exec',
  },
];

/**
 * Attempts NOT blocked yet on the default profile (measured on the hybrid-cgroup test host with
 * crun), and what closes each. The hardening work removes entries; the suite fails when an entry
 * is blocked already (remove it) and when an attempt not listed here gets through.
 */
export const KNOWN_GAPS: Readonly<Record<string, string>> = {};

/**
 * Attempts the full-os profile lets through (a guest with --profile full-os, run by the escape
 * suite with every attempt), and why each is accepted. full-os gives the guest CAP_SYS_ADMIN over
 * its own user namespace and lets it mount and make namespaces (seccomp.ts, spec.ts), so that a
 * distribution's init can mount and sandbox its services. The attempts on what masks and
 * read-only mounts hide (klog.*, proc.*, sysctl.*, sys.*, cgroup.*) are made with every mask
 * taken off first where the guest may (the probe's lift_masks), and stay blocked except
 * proc.info-leaks.
 */
export const KNOWN_GAPS_FULL_OS: Readonly<Record<string, string>> = {
  'caps.bounding-set':
    "by design: CAP_SYS_ADMIN, over the guest's own user namespace only; every check against the host's (the initial user namespace) still fails, as the other attempts show",
  'caps.raise': 'by design: the same CAP_SYS_ADMIN (see caps.bounding-set)',
  'mount.proc':
    "by design: a distribution's init mounts its own /proc; it is the guest's PID namespace's, and the attempts on /proc's host-wide files are made with masks lifted",
  'mount.sysfs-rw':
    "by design: /sys can be made read-write in the guest's own mount namespace (its superblock stays read-only); the host-wide files stay the host root's: sys.host-knobs is made with /sys read-write and fails EACCES",
  'mount.bind': "by design: bind mounts within the guest's own tree and mount namespace",
  'mount.fsopen': 'by design: the new mount API, the same rights as mount(2)',
  'mount.unmask':
    "not closable with today's runtimes: crun and runc make the masks in the guest's own mount namespace, so they are not locked against umount2 under CAP_SYS_ADMIN there (locking needs the masks made in a mount namespace of the host's user namespace and copied into the guest's). What they hide stays refused by the kernel to a user namespace that is not the host's: klog.proc-kmsg, proc.kcore, sysctl.*, sys.host-knobs and cgroup.* are made with every mask taken off and stay blocked; proc.info-leaks says what is readable",
  'proc.info-leaks':
    "with the masks taken off (mount.unmask), /sys/firmware lists acpi and memmap: the physical memory map, which every unprivileged user of the host reads too; the ACPI tables and /proc/timer_list (the host root's, mode 0400) stay refused, and /proc/keys shows only the guest's own keys",
  'binfmt_misc.register':
    "Linux 6.7 and later give each user namespace a binfmt_misc instance of its own (the suite checks that the guest's is not the host's): a registration reaches only the guest's own processes",
};

/** The positive controls of escape.test.ts: each opens one hole the weakened guest keeps closed. */
export type Control =
  /** A host unix socket (the test's own, listening) bound into a guest through its fstab. */
  | 'host-socket-in-fstab'
  /** `jaula exec` with a host file as the command's stdin: a descriptor from outside. */
  | 'host-fd-as-stdin'
  /** `jaula exec --env` with the host's canary: a secret in the guest's environment. */
  | 'secret-in-env'
  /** The weakened guest entered with nsenter from a terminal: the host's terminal handed over. */
  | 'host-terminal'
  /** The probe under chroot(2) on the host's filesystem, no pivot_root, no pool. */
  | 'chroot-root'
  /** A host process with a writable binary from outside the guest, in the weakened guest's PID namespace. */
  | 'foreign-binary-in-pid-ns'
  /** The weakened guest's namespaces, but the host's PID namespace (and its /proc). */
  | 'host-pid-ns'
  /** The weakened guest's namespaces, but the host's IPC namespace. */
  | 'host-ipc-ns'
  /** The weakened guest's namespaces, but the other guest's IPC namespace. */
  | 'other-guest-ipc-ns'
  /** The other guest's mount namespace (its /dev/shm). */
  | 'other-guest-mount-ns'
  /** The weakened guest's namespaces, but the host's mount namespace. */
  | 'host-mount-ns'
  /** The weakened guest's namespaces, but the host's cgroup namespace. */
  | 'host-cgroup-ns';

/**
 * The attempts the weakened guest (JAULA_TEST_WEAKEN=1: privileged-like, every capability, no
 * user namespace, seccomp, masks or limits) still blocks, what keeps each blocked, and the
 * positive control that opens exactly that hole (null: none can, and why). Every other attempt
 * must get through on the weakened guest, or find its feature absent from this kernel.
 */
export const WEAKENED_BLOCKS: Readonly<Record<string, { kept: string; control: Control | null }>> = {
  'chroot.double': { kept: 'mount namespace + pivot_root', control: 'chroot-root' },
  'fd.leaked': { kept: 'the runtime and supervisor hand over no descriptor', control: 'host-fd-as-stdin' },
  'sock.host-api': {
    kept: 'mount namespace: nothing of the host is mounted in',
    control: 'host-socket-in-fstab',
  },
  'cgroup.release_agent': {
    kept: 'cgroup namespace: its hierarchies have no release_agent, and no new one can be mounted',
    control: 'host-cgroup-ns',
  },
  'exec.proc-self-exe': {
    kept: "the kernel's text-busy rule (ETXTBSY): no process can open its own running binary for writing, whatever its privileges. No control can lift it; the same reopen for writing is what exec.runtime-exe's control shows firing once a foreign binary has stopped running",
    control: null,
  },
  'exec.runtime-exe': {
    kept: 'the runtime process is not dumpable, its binary a read-only copy',
    control: 'foreign-binary-in-pid-ns',
  },
  'tty.host-terminal': { kept: 'jaula exec gives pipes of its own', control: 'host-terminal' },
  'guest.kill': { kept: 'PID namespace', control: 'host-pid-ns' },
  'guest.ptrace': { kept: 'PID namespace', control: 'host-pid-ns' },
  'ipc.host-sysv-shm': { kept: 'IPC namespace', control: 'host-ipc-ns' },
  'ipc.guest-sysv-shm': { kept: 'IPC namespace', control: 'other-guest-ipc-ns' },
  'ipc.guest-mqueue': { kept: 'IPC namespace', control: 'other-guest-ipc-ns' },
  'ipc.guest-posix-shm': { kept: 'a /dev/shm of its own (mount namespace)', control: 'other-guest-mount-ns' },
  'guest.files': { kept: 'mount namespace + pivot_root', control: 'host-mount-ns' },
  'env.secrets': {
    kept: "the runtime spec's environment comes from the guest's config only",
    control: 'secret-in-env',
  },
  'dos.disk': { kept: "the storage pool's per-guest quota group", control: 'chroot-root' },
};
