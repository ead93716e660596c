/**
 * jaula's seccomp profiles, as OCI linux.seccomp objects (pure data). They refuse, with EPERM,
 * the system calls a guest has no business making: kernel modules, kexec, the keyring, bpf,
 * perf, userfaultfd, io_uring, handle-based opens, the clock, swap, quotas, the kernel log,
 * process accounting, and new user namespaces; plus AF_PACKET, AF_ALG, AF_VSOCK and AF_KEY
 * sockets. Docker's profile blocks these too (mostly by allow-listing); jaula lists what it
 * refuses, so that a full distribution keeps working.
 *
 *   "default":  also refuses mount and the new mount API, pivot_root, and every new namespace.
 *   "full-os":  lets a distribution's init mount file systems and make mount, UTS, IPC, network,
 *               PID and cgroup namespaces (for service sandboxing); user namespaces stay refused.
 *               The guest also gets CAP_SYS_ADMIN, over its own user namespace only (spec.ts).
 */
import type { Profile } from '../core/config.js';

export interface SeccompRule {
  names: string[];
  action: 'SCMP_ACT_ERRNO';
  errnoRet: number;
  args?: { index: number; value: number; valueTwo: number; op: 'SCMP_CMP_MASKED_EQ' | 'SCMP_CMP_EQ' }[];
}

export interface SeccompProfile {
  defaultAction: 'SCMP_ACT_ALLOW';
  architectures: string[];
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

const AF_KEY = 15;
const AF_PACKET = 17;
const AF_ALG = 38;
const AF_VSOCK = 40;

function flagRules(names: string[], index: number, flags: number[]): SeccompRule[] {
  // One rule per flag: refused when (arg & flag) == flag.
  return flags.map((f) => ({
    names,
    action: 'SCMP_ACT_ERRNO',
    errnoRet: EPERM,
    args: [{ index, value: f, valueTwo: f, op: 'SCMP_CMP_MASKED_EQ' }],
  }));
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
    ...[AF_KEY, AF_PACKET, AF_ALG, AF_VSOCK].map((af): SeccompRule => ({
      names: ['socket'],
      action: 'SCMP_ACT_ERRNO',
      errnoRet: EPERM,
      args: [{ index: 0, value: af, valueTwo: 0, op: 'SCMP_CMP_EQ' }],
    })),
  ];
  if (profile === 'default')
    rules.push({ names: [...MOUNT_CALLS, 'setns'], action: 'SCMP_ACT_ERRNO', errnoRet: EPERM });
  return { defaultAction: 'SCMP_ACT_ALLOW', architectures: architectures(), syscalls: rules };
}
