/**
 * jaula's seccomp profiles, as OCI linux.seccomp objects (pure data). They refuse, with EPERM,
 * the system calls a guest has no business making: kernel modules, kexec, the keyring, bpf,
 * perf, userfaultfd, io_uring, handle-based opens, the clock, swap, quotas, the kernel log,
 * process accounting, and new user namespaces; plus AF_PACKET, AF_XDP, AF_ALG, AF_VSOCK and
 * AF_KEY sockets, and raw IP sockets of any protocol but ICMP and ICMPv6 (with no IP_HDRINCL), so
 * that ping works with CAP_NET_RAW (docs/adr/0004-inside-the-guest.md). Docker's profile blocks
 * these too (mostly by allow-listing); jaula lists what it refuses, so that a full distribution
 * keeps working.
 *
 *   "default":  also refuses mount and the new mount API, pivot_root, and every new namespace.
 *   "full-os":  lets a distribution's init mount file systems and make mount, UTS, IPC, network,
 *               PID and cgroup namespaces (for service sandboxing); user namespaces stay refused.
 *               The guest also gets CAP_SYS_ADMIN, over its own user namespace only (spec.ts).
 */
import type { Profile } from '../guest/config.js';

export interface SeccompRule {
  names: string[];
  /** ERRNO refuses; NOTIFY hands the call to the listener (the supervisor answers sysinfo). */
  action: 'SCMP_ACT_ERRNO' | 'SCMP_ACT_NOTIFY';
  errnoRet?: number;
  args?: {
    index: number;
    value: number;
    valueTwo: number;
    op: 'SCMP_CMP_MASKED_EQ' | 'SCMP_CMP_EQ' | 'SCMP_CMP_NE';
  }[];
}

export interface SeccompProfile {
  defaultAction: 'SCMP_ACT_ALLOW';
  architectures: string[];
  /** The supervisor's unix socket that receives the notification fd (OCI listenerPath). */
  listenerPath?: string;
  syscalls: SeccompRule[];
}

const EPERM = 1;
const ENOSYS = 38;

/** Refused in every profile. */
export const ALWAYS_REFUSED = [
  'acct',
  'add_key',
  'bpf',
  'clock_adjtime',
  'clock_settime',
  'settimeofday',
  'stime',
  'create_module',
  'delete_module',
  'finit_module',
  'init_module',
  'get_kernel_syms',
  'query_module',
  'kexec_file_load',
  'kexec_load',
  'keyctl',
  'request_key',
  'lookup_dcookie',
  'nfsservctl',
  'open_by_handle_at',
  'name_to_handle_at',
  'perf_event_open',
  'quotactl',
  'quotactl_fd',
  'swapon',
  'swapoff',
  'syslog',
  '_sysctl',
  'sysfs',
  'uselib',
  'userfaultfd',
  'ustat',
  'vm86',
  'vm86old',
  'iopl',
  'ioperm',
  'io_uring_setup',
  'io_uring_enter',
  'io_uring_register',
  'fanotify_init',
];

/** Refused by "default", allowed by "full-os". */
export const MOUNT_CALLS = [
  'mount',
  'umount',
  'umount2',
  'pivot_root',
  'move_mount',
  'open_tree',
  'fsopen',
  'fsconfig',
  'fsmount',
  'fspick',
  'mount_setattr',
];

const CLONE_NEWNS = 0x00020000;
const CLONE_NEWCGROUP = 0x02000000;
const CLONE_NEWUTS = 0x04000000;
const CLONE_NEWIPC = 0x08000000;
const CLONE_NEWUSER = 0x10000000;
const CLONE_NEWPID = 0x20000000;
const CLONE_NEWNET = 0x40000000;
const CLONE_NEWTIME = 0x00000080;

const AF_INET = 2;
const AF_INET6 = 10;
const AF_KEY = 15;
const AF_PACKET = 17;
const AF_ALG = 38;
const AF_VSOCK = 40;
const AF_XDP = 44;
const SOCK_RAW = 3;
/** socket(2)'s type carries SOCK_NONBLOCK and SOCK_CLOEXEC above the type itself. */
const SOCK_TYPE_MASK = 0xf;
const IPPROTO_ICMP = 1;
const IPPROTO_ICMPV6 = 58;
const SOL_IP = 0;
const IP_HDRINCL = 3;
const SOL_IPV6 = 41;
const IPV6_HDRINCL = 36;

function flagRules(names: string[], index: number, flags: number[]): SeccompRule[] {
  // One rule per flag: refused when (arg & flag) == flag.
  return flags.map((f) => ({
    names,
    action: 'SCMP_ACT_ERRNO',
    errnoRet: EPERM,
    args: [{ index, value: f, valueTwo: f, op: 'SCMP_CMP_MASKED_EQ' }],
  }));
}

/**
 * Raw IP sockets for ICMP (IPv4) and ICMPv6 only: ping and traceroute -I. Guests hold
 * CAP_NET_RAW over their own network namespace, so every other raw socket is refused here:
 * raw IP of another protocol (IPPROTO_RAW, TCP, UDP, ...), IP_HDRINCL (which would let an ICMP
 * socket write whole IP headers of any protocol), AF_PACKET and AF_XDP (link-layer frames).
 * 32-bit x86 processes reaching socket() through socketcall(2) get EPERM for every family
 * (libseccomp cannot read socketcall's arguments: it refuses the call as a whole).
 */
function socketRules(): SeccompRule[] {
  const refuse = (names: string[], args: NonNullable<SeccompRule['args']>): SeccompRule => ({
    names,
    action: 'SCMP_ACT_ERRNO',
    errnoRet: EPERM,
    args,
  });
  const rawOf = (af: number, allowed: number): SeccompRule =>
    refuse(
      ['socket'],
      [
        { index: 0, value: af, valueTwo: 0, op: 'SCMP_CMP_EQ' },
        { index: 1, value: SOCK_TYPE_MASK, valueTwo: SOCK_RAW, op: 'SCMP_CMP_MASKED_EQ' },
        { index: 2, value: allowed, valueTwo: 0, op: 'SCMP_CMP_NE' },
      ],
    );
  const sockopt = (level: number, name: number): SeccompRule =>
    refuse(
      ['setsockopt'],
      [
        { index: 1, value: level, valueTwo: 0, op: 'SCMP_CMP_EQ' },
        { index: 2, value: name, valueTwo: 0, op: 'SCMP_CMP_EQ' },
      ],
    );
  return [
    ...[AF_KEY, AF_PACKET, AF_ALG, AF_VSOCK, AF_XDP].map((af) =>
      refuse(['socket'], [{ index: 0, value: af, valueTwo: 0, op: 'SCMP_CMP_EQ' }]),
    ),
    rawOf(AF_INET, IPPROTO_ICMP),
    rawOf(AF_INET6, IPPROTO_ICMPV6),
    sockopt(SOL_IP, IP_HDRINCL),
    sockopt(SOL_IPV6, IPV6_HDRINCL),
  ];
}

function architectures(): string[] {
  switch (process.arch) {
    case 'arm64':
      return ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'];
    case 'x64':
    default:
      return ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'];
  }
}

export function seccompProfile(profile: Profile): SeccompProfile {
  const nsFlags =
    profile === 'full-os'
      ? [CLONE_NEWUSER]
      : [
          CLONE_NEWUSER,
          CLONE_NEWNS,
          CLONE_NEWCGROUP,
          CLONE_NEWUTS,
          CLONE_NEWIPC,
          CLONE_NEWPID,
          CLONE_NEWNET,
          CLONE_NEWTIME,
        ];
  const rules: SeccompRule[] = [
    { names: ALWAYS_REFUSED, action: 'SCMP_ACT_ERRNO', errnoRet: EPERM },
    // clone3 passes its flags in memory a filter cannot read: ENOSYS makes libc use clone.
    { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
    ...flagRules(['unshare'], 0, nsFlags),
    // x86-64 clone(flags, ...); (s390 swaps the first two arguments: not a jaula host).
    ...flagRules(['clone'], 0, nsFlags),
    ...socketRules(),
  ];
  if (profile === 'default')
    rules.push({ names: [...MOUNT_CALLS, 'setns'], action: 'SCMP_ACT_ERRNO', errnoRet: EPERM });
  return { defaultAction: 'SCMP_ACT_ALLOW', architectures: architectures(), syscalls: rules };
}
