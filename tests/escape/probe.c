/*
 * jaula-escape-probe: escape and abuse attempts, run from inside a guest by tests/escape.
 *
 *   jaula-escape-probe [--set KEY=VALUE]... ID... | all     run attempts, one JSON line each
 *   jaula-escape-probe --list                               the attempt ids, one a line
 *   jaula-escape-probe helper shm-create KEY                (setup) a SysV segment: prints its id
 *   jaula-escape-probe helper posix-shm-create NAME         (setup) /dev/shm/NAME
 *   jaula-escape-probe helper mq-create NAME                (setup) a POSIX message queue /NAME
 *   jaula-escape-probe helper hold SECONDS                  (setup) sleep: a process to be found
 *
 * Each attempt prints {"id":"...","blocked":true|false,"errno":"EPERM","detail":"..."} and,
 * when it applies, "absent":true (the kernel itself lacks the feature, whatever the guest's
 * profile) or "inconclusive":true (the attempt could not run, e.g. missing test context; it
 * then also reports blocked:false, so that a broken setup never passes for a blocked attempt).
 *
 * Payloads are harmless: capability checks are reached with arguments the kernel rejects right
 * after them (EPERM when blocked, EINVAL/ENOENT/... when the check passed), writes are open(2)
 * with O_WRONLY and no write, or a write of the value just read, sysrq gets 'h' only, and the
 * exhaustion attempts stop at a small bound and clean up. Each attempt runs in its own process
 * group with a timeout; everything it started is killed when it ends.
 *
 * Statically linked: it runs in any guest, whatever its libraries.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/if_ether.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <linux/userfaultfd.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef AF_ALG
#define AF_ALG 38
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif
#define KEXEC_SEGMENT_MAX 16

/* ---- results --------------------------------------------------------------------------------- */

typedef struct {
  int set;
  int blocked;
  int err;
  int absent;
  int inconclusive;
  char detail[1400];
} result;

static void verdict(result *r, int blocked, int err, const char *fmt, ...) {
  va_list ap;
  r->set = 1;
  r->blocked = blocked;
  r->err = err;
  va_start(ap, fmt);
  vsnprintf(r->detail, sizeof r->detail, fmt, ap);
  va_end(ap);
}
#define BLOCKED(r, e, ...) verdict((r), 1, (e), __VA_ARGS__)
#define OPEN(r, ...) verdict((r), 0, 0, __VA_ARGS__)
/* Missing context or an unusable environment: never counts as blocked. */
#define INCONCLUSIVE(r, ...) ((r)->inconclusive = 1, verdict((r), 0, 0, __VA_ARGS__))

static const char *errname(int e) {
  if (e == 0) return "";
  const char *n = strerrorname_np(e);
  return n ? n : "E?";
}

/* Append to a detail buffer. */
static void app(char *buf, size_t size, const char *fmt, ...) {
  size_t n = strlen(buf);
  if (n + 1 >= size) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf + n, size - n, fmt, ap);
  va_end(ap);
}

/* ---- test context (--set KEY=VALUE) --------------------------------------------------------- */

#define MAX_CTX 64
static char *ctx_keys[MAX_CTX], *ctx_vals[MAX_CTX];
static int nctx;

static const char *ctx(const char *key) {
  for (int i = 0; i < nctx; i++)
    if (!strcmp(ctx_keys[i], key)) return ctx_vals[i];
  return NULL;
}

/* fds the probe inherited from whoever started it (recorded before it opens anything). */
static int inherited[64], ninherited;
static char inherited_what[64][160];

/* ---- small helpers -------------------------------------------------------------------------- */

static ssize_t read_file(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, size - 1);
  int e = errno;
  close(fd);
  if (n < 0) {
    errno = e;
    return -1;
  }
  buf[n] = 0;
  return n;
}

/* A field "Name:\tvalue" of /proc/self/status, as an unsigned hex or decimal number. */
static int status_field(const char *name, unsigned long long *out, int hex) {
  char buf[8192];
  if (read_file("/proc/self/status", buf, sizeof buf) < 0) return -1;
  size_t len = strlen(name);
  for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
    if (!strncmp(l, name, len) && l[len] == ':') {
      *out = strtoull(l + len + 1, NULL, hex ? 16 : 10);
      return 0;
    }
  }
  return -1;
}

/* A scratch directory on a filesystem of the guest (tmpfs /tmp, else /dev, else /). */
static int scratch_dir(char *out, size_t size, const char *tag) {
  const char *bases[] = {"/tmp", "/dev/shm", "/dev", "/run", "/"};
  for (size_t i = 0; i < sizeof bases / sizeof *bases; i++) {
    snprintf(out, size, "%s/.jaula-probe-%s-%d", strcmp(bases[i], "/") ? bases[i] : "", tag, getpid());
    if (mkdir(out, 0700) == 0) return 0;
  }
  return -1;
}

/* The host-side identity of a uid inside the guest, from a uid_map text ("IN OUT COUNT" lines). */
static long long map_id(const char *map, long long id) {
  const char *p = map;
  while (p && *p) {
    long long in, out, count;
    if (sscanf(p, "%lld %lld %lld", &in, &out, &count) == 3 && id >= in && id < in + count)
      return out + (id - in);
    p = strpbrk(p, "\n;");
    if (p) p++;
  }
  return -1;
}

static void close_quiet(int fd) {
  if (fd >= 0) close(fd);
}

/* Classify the result of a privileged call reached with arguments the kernel rejects right after
 * its permission check: EPERM/EACCES mean the check stopped it, ENOSYS that the kernel (or a
 * seccomp filter) does not offer the call at all; anything else means the check passed. */
static void privileged_call(result *r, long rc, int err, const char *what, const char *layer) {
  if (rc >= 0) {
    OPEN(r, "%s succeeded", what);
  } else if (err == EPERM || err == EACCES) {
    BLOCKED(r, err, "%s was refused (%s)", what, layer);
  } else if (err == ENOSYS) {
    r->absent = 1;
    BLOCKED(r, err, "%s: the call does not exist here (kernel without it, or a seccomp filter)", what);
  } else {
    OPEN(r, "%s passed the permission check (it then failed with %s on the deliberately invalid "
            "arguments)",
         what, errname(err));
  }
}

static int is_devnull(const struct stat *st) {
  return S_ISCHR(st->st_mode) && major(st->st_rdev) == 1 && minor(st->st_rdev) == 3;
}

/* ---- masks, taken off as an intruder with mount rights would ------------------------------- */

/* What lift_masks() took off, for the attempt's detail ("" where the profile does not allow it). */
static char lifted[700];
static int lifted_mounts, lifted_rw;

/* Where the guest's profile lets it (CAP_SYS_ADMIN over its own user namespace and the mount
 * calls: full-os), take the masks and read-only mounts off /proc and /sys first, in a mount
 * namespace of this attempt's own (the guest's own mounts stay as they are), so that the attempt
 * meets what they hide. The default profile refuses unshare(CLONE_NEWNS): nothing is lifted. */
static void lift_masks(void) {
  lifted[0] = 0;
  lifted_mounts = lifted_rw = 0;
  if (unshare(CLONE_NEWNS) < 0) return;
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) return;
  static char info[1 << 17];
  for (int pass = 0; pass < 4; pass++) {
    if (read_file("/proc/self/mountinfo", info, sizeof info) < 0) return;
    char *points[512];
    int n = 0, any = 0;
    for (char *l = info; l && *l && n < 512;) {
      char *nl = strchr(l, '\n');
      if (nl) *nl = 0;
      char mp[4096];
      /* Masks and read-only binds over /proc/... and /sys/... (not the cgroup mounts). */
      if (sscanf(l, "%*s %*s %*s %*s %4095s", mp) == 1 &&
          (!strncmp(mp, "/proc/", 6) || (!strncmp(mp, "/sys/", 5) && strncmp(mp, "/sys/fs/cgroup", 14))))
        points[n++] = strdup(mp);
      l = nl ? nl + 1 : NULL;
    }
    for (int i = n - 1; i >= 0; i--) {
      /* Name the masks (/dev/null over a file, an empty tmpfs over a directory); count the rest
       * (lxcfs's files, read-only binds). */
      struct stat st;
      struct statfs sf;
      int mask = stat(points[i], &st) == 0 &&
                 (is_devnull(&st) || (S_ISDIR(st.st_mode) && statfs(points[i], &sf) == 0 && sf.f_type == 0x01021994));
      if (umount2(points[i], MNT_DETACH) == 0) {
        if (mask) app(lifted, sizeof lifted, "%s ", points[i]);
        lifted_mounts++;
        any = 1;
      }
      free(points[i]);
    }
    if (!any) break;
  }
  if (read_file("/proc/self/mountinfo", info, sizeof info) < 0) return;
  for (char *l = info; l && *l;) {
    char *nl = strchr(l, '\n');
    if (nl) *nl = 0;
    char mp[4096], opts[4096];
    if (sscanf(l, "%*s %*s %*s %*s %4095s %4095s", mp, opts) == 2 &&
        (!strcmp(mp, "/sys") || !strncmp(mp, "/sys/fs/cgroup", 14) || !strcmp(mp, "/proc")) &&
        !strncmp(opts, "ro", 2) &&
        mount(NULL, mp, NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0)
      lifted_rw++;
    l = nl ? nl + 1 : NULL;
  }
}

/* Run an attempt after lift_masks(), saying what was lifted. */
static void with_masks_lifted(result *r, void (*fn)(result *)) {
  lift_masks();
  fn(r);
  if (lifted_mounts || lifted_rw)
    app(r->detail, sizeof r->detail,
        " [first, in a mount namespace of its own: %d mounts over /proc and /sys taken off (among them "
        "%s), %d read-only mounts of /sys and the cgroups made read-write]",
        lifted_mounts, lifted[0] ? lifted : "none over a file", lifted_rw);
}

/* Linux >= 6.14 has a pid_max per PID namespace (the guest's own, not the host's). */
static int pid_max_namespaced(void) {
  struct utsname u;
  int major = 0, minor = 0;
  if (uname(&u) < 0 || sscanf(u.release, "%d.%d", &major, &minor) != 2) return 0;
  return major > 6 || (major == 6 && minor >= 14);
}

/* ---- capabilities and privileges ------------------------------------------------------------ */

static const struct {
  int cap;
  const char *name;
} DANGEROUS_CAPS[] = {
    {CAP_SYS_ADMIN, "CAP_SYS_ADMIN"},
    {CAP_SYS_MODULE, "CAP_SYS_MODULE"},
    {CAP_SYS_RAWIO, "CAP_SYS_RAWIO"},
    {CAP_SYS_PTRACE, "CAP_SYS_PTRACE"},
    {CAP_SYS_TIME, "CAP_SYS_TIME"},
    {CAP_SYSLOG, "CAP_SYSLOG"},
    {CAP_DAC_READ_SEARCH, "CAP_DAC_READ_SEARCH"},
    {CAP_SYS_RESOURCE, "CAP_SYS_RESOURCE"},
    {CAP_SYS_PACCT, "CAP_SYS_PACCT"},
    {CAP_LINUX_IMMUTABLE, "CAP_LINUX_IMMUTABLE"},
    {CAP_MAC_ADMIN, "CAP_MAC_ADMIN"},
    {CAP_MAC_OVERRIDE, "CAP_MAC_OVERRIDE"},
    {CAP_AUDIT_CONTROL, "CAP_AUDIT_CONTROL"},
    {CAP_AUDIT_READ, "CAP_AUDIT_READ"},
    {CAP_WAKE_ALARM, "CAP_WAKE_ALARM"},
    {CAP_BLOCK_SUSPEND, "CAP_BLOCK_SUSPEND"},
    {38, "CAP_PERFMON"},
    {39, "CAP_BPF"},
    {40, "CAP_CHECKPOINT_RESTORE"},
};

static void a_caps_bounding(result *r) {
  unsigned long long bnd;
  if (status_field("CapBnd", &bnd, 1) < 0) return INCONCLUSIVE(r, "cannot read CapBnd");
  char held[600] = "";
  for (size_t i = 0; i < sizeof DANGEROUS_CAPS / sizeof *DANGEROUS_CAPS; i++)
    if (bnd & (1ULL << DANGEROUS_CAPS[i].cap)) app(held, sizeof held, "%s ", DANGEROUS_CAPS[i].name);
  if (held[0]) return OPEN(r, "the bounding set (%llx) keeps %s", bnd, held);
  BLOCKED(r, 0, "the bounding set (%llx) holds none of the dangerous capabilities", bnd);
}

static void a_caps_raise(result *r) {
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  if (syscall(SYS_capget, &h, d) < 0) return INCONCLUSIVE(r, "capget: %s", strerror(errno));
  d[0].effective |= 1U << CAP_SYS_ADMIN;
  d[0].permitted |= 1U << CAP_SYS_ADMIN;
  if (syscall(SYS_capset, &h, d) < 0) return BLOCKED(r, errno, "capset(+CAP_SYS_ADMIN) was refused");
  unsigned long long eff = 0;
  status_field("CapEff", &eff, 1);
  if (eff & (1ULL << CAP_SYS_ADMIN)) return OPEN(r, "CAP_SYS_ADMIN is in the effective set (%llx)", eff);
  BLOCKED(r, 0, "capset returned 0 but CAP_SYS_ADMIN is not effective");
}

static void a_privs_setuid(result *r) {
  /* A setuid-root copy of this program, run by an unprivileged guest user: does it become root,
   * and is that root the host's root? Stopped by no_new_privs, nosuid, or a user namespace. */
  const char *dirs[] = {"/var/tmp", "/root", "/", "/tmp"};
  char path[256] = "";
  int out = -1;
  for (size_t i = 0; i < sizeof dirs / sizeof *dirs && out < 0; i++) {
    snprintf(path, sizeof path, "%s/.jaula-probe-suid-%d", strcmp(dirs[i], "/") ? dirs[i] : "", getpid());
    out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
  }
  if (out < 0) return INCONCLUSIVE(r, "no writable place for a setuid copy: %s", strerror(errno));
  int in = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  char buf[65536];
  ssize_t n;
  while (in >= 0 && (n = read(in, buf, sizeof buf)) > 0)
    if (write(out, buf, n) != n) break;
  close_quiet(in);
  close(out);
  if (chown(path, 0, 0) < 0 || chmod(path, 04755) < 0) {
    int e = errno;
    unlink(path);
    return BLOCKED(r, e, "cannot make a setuid-root file");
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return INCONCLUSIVE(r, "pipe: %s", strerror(errno));
  pid_t pid = fork();
  if (pid == 0) {
    dup2(p[1], 1);
    if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0) {
      printf("setuid-failed %d\n", errno);
      _exit(0);
    }
    execl(path, path, "helper", "suid-child", (char *)NULL);
    printf("exec-failed %d\n", errno);
    _exit(0);
  }
  close(p[1]);
  char line[512] = "";
  ssize_t got = read(p[0], line, sizeof line - 1);
  line[got > 0 ? got : 0] = 0;
  close(p[0]);
  waitpid(pid, NULL, 0);
  unlink(path);
  int e, euid;
  long long host;
  if (sscanf(line, "setuid-failed %d", &e) == 1)
    return INCONCLUSIVE(r, "could not become uid 65534: %s", strerror(e));
  if (sscanf(line, "exec-failed %d", &e) == 1) return BLOCKED(r, e, "the setuid copy could not be executed");
  if (sscanf(line, "euid=%d host=%lld", &euid, &host) != 2)
    return INCONCLUSIVE(r, "unexpected answer from the setuid child: %s", line);
  if (euid != 0)
    return BLOCKED(r, 0, "the setuid-root file gave no privilege (euid %d: no_new_privs or nosuid)", euid);
  if (host != 0)
    return BLOCKED(r, 0, "setuid made guest root, which is host uid %lld (user namespace)", host);
  OPEN(r, "uid 65534 ran a setuid-root file and became uid 0, which is the host's root");
}

static int helper_suid_child(void) {
  char map[4096] = "";
  read_file("/proc/self/uid_map", map, sizeof map);
  printf("euid=%d host=%lld\n", (int)geteuid(), map_id(map, geteuid()));
  return 0;
}

static void a_userns_host_root(result *r) {
  char map[4096];
  if (read_file("/proc/self/uid_map", map, sizeof map) < 0)
    return INCONCLUSIVE(r, "cannot read /proc/self/uid_map: %s", strerror(errno));
  long long host = map_id(map, 0);
  for (char *c = map; *c; c++)
    if (*c == '\n') *c = ';';
  if (host == 0) return OPEN(r, "uid 0 in the guest is uid 0 on the host (uid_map: %s)", map);
  BLOCKED(r, 0, "uid 0 in the guest is host uid %lld (uid_map: %s)", host, map);
}

static int ranges_overlap(const char *a, const char *b, char *why, size_t size) {
  const char *p = a;
  while (p && *p) {
    long long in, out, count;
    if (sscanf(p, "%lld %lld %lld", &in, &out, &count) == 3) {
      const char *q = b;
      while (q && *q) {
        long long in2, out2, count2;
        if (sscanf(q, "%lld %lld %lld", &in2, &out2, &count2) == 3 && out < out2 + count2 &&
            out2 < out + count) {
          snprintf(why, size, "host ids %lld-%lld and %lld-%lld overlap", out, out + count - 1, out2,
                   out2 + count2 - 1);
          return 1;
        }
        q = strpbrk(q, "\n;");
        if (q) q++;
      }
    }
    p = strpbrk(p, "\n;");
    if (p) p++;
  }
  return 0;
}

static void a_userns_disjoint(result *r) {
  const char *other_uid = ctx("other-uid-map"), *other_gid = ctx("other-gid-map");
  if (!other_uid || !other_gid)
    return INCONCLUSIVE(r, "needs --set other-uid-map=... and other-gid-map=... (another guest's maps)");
  char uid[4096], gid[4096], why[256];
  if (read_file("/proc/self/uid_map", uid, sizeof uid) < 0 || read_file("/proc/self/gid_map", gid, sizeof gid) < 0)
    return INCONCLUSIVE(r, "cannot read the id maps: %s", strerror(errno));
  if (ranges_overlap(uid, other_uid, why, sizeof why)) return OPEN(r, "uid maps of two guests: %s", why);
  if (ranges_overlap(gid, other_gid, why, sizeof why)) return OPEN(r, "gid maps of two guests: %s", why);
  BLOCKED(r, 0, "the host id ranges of this guest and the other guest are disjoint");
}

static void a_userns_unshare(result *r) {
  if (unshare(CLONE_NEWUSER) == 0) return OPEN(r, "unshare(CLONE_NEWUSER) made a new user namespace");
  BLOCKED(r, errno, "unshare(CLONE_NEWUSER) was refused");
}

/* ---- mounts and chroot ---------------------------------------------------------------------- */

static void a_mount_proc(result *r) {
  char dir[256];
  if (scratch_dir(dir, sizeof dir, "proc") < 0) return INCONCLUSIVE(r, "no scratch directory");
  int rc = mount("proc", dir, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  int e = errno;
  if (rc == 0) umount2(dir, MNT_DETACH);
  rmdir(dir);
  if (rc == 0) return OPEN(r, "mounted a new proc");
  BLOCKED(r, e, "mount -t proc was refused");
}

static void a_mount_sysfs_rw(result *r) {
  struct statvfs sv;
  if (statvfs("/sys", &sv) == 0 && !(sv.f_flag & ST_RDONLY)) return OPEN(r, "/sys is mounted read-write");
  if (mount(NULL, "/sys", NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0) {
    mount(NULL, "/sys", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    return OPEN(r, "remounted /sys read-write (and back)");
  }
  int e = errno;
  char dir[256];
  if (scratch_dir(dir, sizeof dir, "sysfs") == 0) {
    int rc = mount("sysfs", dir, "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    if (rc == 0) umount2(dir, MNT_DETACH);
    rmdir(dir);
    if (rc == 0) return OPEN(r, "mounted a new read-write sysfs");
  }
  BLOCKED(r, e, "remounting /sys read-write and mounting a new sysfs were refused");
}

static void a_mount_bind(result *r) {
  char dir[256];
  if (scratch_dir(dir, sizeof dir, "bind") < 0) return INCONCLUSIVE(r, "no scratch directory");
  int rc = mount("/etc", dir, NULL, MS_BIND, NULL);
  int e = errno;
  if (rc == 0) umount2(dir, MNT_DETACH);
  rmdir(dir);
  if (rc == 0) return OPEN(r, "bind-mounted /etc");
  BLOCKED(r, e, "a bind mount was refused");
}

static void a_mount_fsopen(result *r) {
  long fd = syscall(SYS_fsopen, "tmpfs", 1 /* FSOPEN_CLOEXEC */);
  int e = errno;
  if (fd >= 0) {
    close(fd);
    return OPEN(r, "fsopen(\"tmpfs\") gave a filesystem context");
  }
  if (e == ENOSYS) r->absent = 1;
  BLOCKED(r, e, "fsopen(\"tmpfs\") was refused");
}

static void a_mount_unmask(result *r) {
  /* A masked /proc file is /dev/null bind-mounted over it: try to take the mask off. */
  const char *masked[] = {"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/kmsg", "/proc/sched_debug"};
  const char *target = NULL;
  for (size_t i = 0; i < sizeof masked / sizeof *masked; i++) {
    struct stat st;
    if (stat(masked[i], &st) == 0 && is_devnull(&st)) {
      target = masked[i];
      break;
    }
  }
  if (!target) return OPEN(r, "nothing under /proc is masked (kcore, keys, timer_list, kmsg, sched_debug)");
  if (umount2(target, MNT_DETACH) == 0) {
    mount("/dev/null", target, NULL, MS_BIND, NULL); /* put the mask back */
    return OPEN(r, "unmounted the mask over %s", target);
  }
  BLOCKED(r, errno, "umount of the mask over %s was refused", target);
}

static void a_chroot_escape(result *r) {
  struct stat root0, root1;
  if (stat("/", &root0) < 0) return INCONCLUSIVE(r, "stat /: %s", strerror(errno));
  char dir[256];
  if (scratch_dir(dir, sizeof dir, "chroot") < 0) return INCONCLUSIVE(r, "no scratch directory");
  int p[2];
  if (pipe(p) < 0) return INCONCLUSIVE(r, "pipe");
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    char ans[64];
    int outside = open("/", O_RDONLY | O_DIRECTORY);
    if (chroot(dir) < 0) {
      snprintf(ans, sizeof ans, "chroot %d\n", errno);
    } else {
      /* The classic double chroot: climb from a directory outside the new root. */
      if (fchdir(outside) < 0) _exit(1);
      for (int i = 0; i < 256; i++)
        if (chdir("..") < 0) break;
      int rc = chroot(".");
      struct stat st;
      if (rc == 0 && stat("/", &st) == 0)
        snprintf(ans, sizeof ans, "root %llu %llu\n", (unsigned long long)st.st_dev,
                 (unsigned long long)st.st_ino);
      else
        snprintf(ans, sizeof ans, "chroot2 %d\n", errno);
    }
    if (write(p[1], ans, strlen(ans)) < 0) _exit(1);
    _exit(0);
  }
  close(p[1]);
  char ans[64] = "";
  ssize_t n = read(p[0], ans, sizeof ans - 1);
  ans[n > 0 ? n : 0] = 0;
  close(p[0]);
  waitpid(pid, NULL, 0);
  rmdir(dir);
  int e;
  unsigned long long dev, ino;
  if (sscanf(ans, "chroot %d", &e) == 1) return BLOCKED(r, e, "chroot(2) was refused");
  if (sscanf(ans, "chroot2 %d", &e) == 1) return BLOCKED(r, e, "the second chroot(2) was refused");
  if (sscanf(ans, "root %llu %llu", &dev, &ino) != 2) return INCONCLUSIVE(r, "no answer from the child");
  root1.st_dev = dev;
  root1.st_ino = ino;
  if (root1.st_dev == root0.st_dev && root1.st_ino == root0.st_ino)
    return BLOCKED(r, 0, "the climb stopped at the guest's own root (pivot_root, mount namespace)");
  OPEN(r, "the double chroot reached a directory above the guest's root (dev %llu ino %llu)", dev, ino);
}

/* ---- file descriptors ------------------------------------------------------------------------- */

/* Does `link` (a /proc/PID/fd/N, cwd or root link) lead somewhere the guest cannot name? */
static int foreign_link(const char *link, char *target, size_t size) {
  ssize_t n = readlink(link, target, size - 1);
  if (n < 0) return 0;
  target[n] = 0;
  if (target[0] != '/') return 0; /* pipe:, socket:, anon_inode: */
  struct stat via, named;
  if (stat(link, &via) < 0) return 0;
  if (strstr(target, " (deleted)")) return 0;
  if (stat(target, &named) < 0) return 1;
  return via.st_dev != named.st_dev || via.st_ino != named.st_ino;
}

static void a_fd_leaked(result *r) {
  char found[1000] = "";
  int leaks = 0, scanned = 0, unreadable = 0;
  for (int i = 0; i < ninherited; i++) {
    if (inherited[i] > 2) {
      app(found, sizeof found, "probe inherited fd %d -> %s; ", inherited[i], inherited_what[i]);
      leaks++;
    }
  }
  DIR *procs = opendir("/proc");
  struct dirent *pe;
  while (procs && (pe = readdir(procs))) {
    if (pe->d_name[0] < '0' || pe->d_name[0] > '9') continue;
    char dir[300], link[600], target[4096];
    const char *links[] = {"cwd", "root"};
    for (int i = 0; i < 2; i++) {
      snprintf(link, sizeof link, "/proc/%s/%s", pe->d_name, links[i]);
      if (foreign_link(link, target, sizeof target)) {
        app(found, sizeof found, "pid %s %s -> %s; ", pe->d_name, links[i], target);
        leaks++;
      }
    }
    snprintf(dir, sizeof dir, "/proc/%s/fd", pe->d_name);
    DIR *fds = opendir(dir);
    if (!fds) {
      unreadable++;
      continue;
    }
    scanned++;
    struct dirent *fe;
    while ((fe = readdir(fds))) {
      if (fe->d_name[0] == '.') continue;
      snprintf(link, sizeof link, "%s/%s", dir, fe->d_name);
      if (foreign_link(link, target, sizeof target)) {
        app(found, sizeof found, "pid %s fd %s -> %s; ", pe->d_name, fe->d_name, target);
        leaks++;
      }
    }
    closedir(fds);
  }
  if (procs) closedir(procs);
  if (leaks) return OPEN(r, "%d descriptor(s) lead outside the guest: %s", leaks, found);
  BLOCKED(r, 0, "no descriptor of %d processes leads outside the guest (%d not readable); the probe "
                "inherited only fds 0-2",
          scanned, unreadable);
}

/* ---- kernel code, kexec, handles, keys ------------------------------------------------------ */

static void a_kmod_init(result *r) {
  long rc = syscall(SYS_init_module, "", 0UL, "");
  privileged_call(r, rc, errno, "init_module(empty image)", "CAP_SYS_MODULE");
}

static void a_kmod_finit(result *r) {
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  long rc = syscall(SYS_finit_module, fd, "", 0);
  int e = errno;
  close_quiet(fd);
  privileged_call(r, rc, e, "finit_module(/dev/null)", "CAP_SYS_MODULE");
}

static void a_kmod_delete(result *r) {
  long rc = syscall(SYS_delete_module, "jaula_escape_probe_none", O_NONBLOCK);
  privileged_call(r, rc, errno, "delete_module(a module that does not exist)", "CAP_SYS_MODULE");
}

static void a_kexec_load(result *r) {
  /* One segment too many: refused with EINVAL right after the permission check. */
  long rc = syscall(SYS_kexec_load, 0UL, (unsigned long)KEXEC_SEGMENT_MAX + 1, NULL, 0UL);
  int e = errno;
  if (rc < 0 && e == ENOSYS) {
    /* kexec_file_load with bad fds: EPERM first, EBADF after the check. */
    rc = syscall(SYS_kexec_file_load, -1, -1, 0UL, "", 0UL);
    e = errno;
  }
  privileged_call(r, rc, e, "kexec_load", "CAP_SYS_BOOT in the initial user namespace");
}

struct handle_buf {
  struct file_handle h;
  unsigned char bytes[128];
};

static void a_open_by_handle(result *r) {
  /* The "shocker" escape: with CAP_DAC_READ_SEARCH any inode of the filesystem holding the guest's
   * tree can be opened by handle, the host's files included. Handle of the guest's own / first. */
  struct handle_buf hb;
  int mount_id;
  hb.h.handle_bytes = sizeof hb.bytes;
  if (name_to_handle_at(AT_FDCWD, "/", &hb.h, &mount_id, 0) < 0) {
    if (errno == EOPNOTSUPP) return INCONCLUSIVE(r, "the guest's / has no file handles (%s)", strerror(errno));
    return BLOCKED(r, errno, "name_to_handle_at(/) was refused");
  }
  int mfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int fd = open_by_handle_at(mfd, &hb.h, O_RDONLY | O_DIRECTORY);
  int e = errno;
  if (fd < 0) {
    close(mfd);
    return BLOCKED(r, e, "open_by_handle_at was refused");
  }
  close(fd);
  /* Try the filesystem's root (ext2/3/4 and others: inode 2, generation 0): outside the guest. */
  struct stat groot;
  stat("/", &groot);
  char extra[300] = "";
  if (hb.h.handle_type == 1 /* FILEID_INO32_GEN */ || hb.h.handle_type == 0x81 /* ext4 */) {
    struct handle_buf fsroot;
    fsroot.h.handle_bytes = 8;
    fsroot.h.handle_type = 1;
    uint32_t ino_gen[2] = {2, 0};
    memcpy(fsroot.h.f_handle, ino_gen, 8);
    int rfd = open_by_handle_at(mfd, &fsroot.h, O_RDONLY | O_DIRECTORY);
    if (rfd >= 0) {
      struct stat st;
      fstat(rfd, &st);
      DIR *d = fdopendir(rfd);
      int entries = 0;
      while (d && readdir(d)) entries++;
      if (d) closedir(d);
      snprintf(extra, sizeof extra, "; it opened the filesystem's root directory (inode %llu, %d entries, "
                                    "the guest's / is inode %llu): host files are readable",
               (unsigned long long)st.st_ino, entries, (unsigned long long)groot.st_ino);
    } else {
      snprintf(extra, sizeof extra, "; the filesystem root by handle: %s", errname(errno));
    }
  }
  close(mfd);
  OPEN(r, "open_by_handle_at opened an inode from a raw handle%s", extra);
}

static void a_keys_add(result *r) {
  long id = syscall(SYS_add_key, "user", "jaula-escape-probe", "x", 1UL, KEY_SPEC_PROCESS_KEYRING);
  if (id < 0) return BLOCKED(r, errno, "add_key was refused");
  syscall(SYS_keyctl, KEYCTL_INVALIDATE, id);
  OPEN(r, "add_key made a key in the kernel's keyring service (key %ld, invalidated again)", id);
}

static void a_keys_host_keyring(result *r) {
  long id = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0);
  if (id < 0) return BLOCKED(r, errno, "keyctl(KEYCTL_GET_KEYRING_ID) was refused");
  char desc[256] = "";
  long n = syscall(SYS_keyctl, KEYCTL_DESCRIBE, id, desc, sizeof desc - 1);
  if (n < 0) return BLOCKED(r, errno, "keyctl(KEYCTL_DESCRIBE) of the user keyring was refused");
  desc[sizeof desc - 1] = 0;
  const char *name = strrchr(desc, ';');
  name = name ? name + 1 : desc;
  if (!strcmp(name, "_uid.0"))
    return OPEN(r, "the guest's user keyring is the host root's (%s): keys are shared with the host", name);
  BLOCKED(r, 0, "the user keyring is the guest's own (%s)", name);
}

/* ---- bpf, perf, userfaultfd, io_uring -------------------------------------------------------- */

static void a_bpf(result *r) {
  struct bpf_insn insns[2] = {
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 0},
      {.code = BPF_JMP | BPF_EXIT},
  };
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
  a.insn_cnt = 2;
  a.insns = (uint64_t)(uintptr_t)insns;
  a.license = (uint64_t)(uintptr_t) "GPL";
  long fd = syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof a);
  if (fd >= 0) {
    close(fd);
    return OPEN(r, "bpf(BPF_PROG_LOAD) loaded a program");
  }
  if (errno == ENOSYS) r->absent = 1;
  BLOCKED(r, errno, "bpf(BPF_PROG_LOAD) was refused");
}

static long perf_open(int type, unsigned long long config, pid_t pid, int cpu, int exclude_kernel) {
  struct perf_event_attr a;
  memset(&a, 0, sizeof a);
  a.size = sizeof a;
  a.type = type;
  a.config = config;
  a.disabled = 1;
  a.exclude_kernel = exclude_kernel;
  a.exclude_hv = 1;
  return syscall(SYS_perf_event_open, &a, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC);
}

static void a_perf_self(result *r) {
  long fd = perf_open(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_TASK_CLOCK, 0, -1, 1);
  if (fd >= 0) {
    close(fd);
    return OPEN(r, "perf_event_open on itself gave a perf event");
  }
  if (errno == ENOSYS || errno == ENOENT) r->absent = 1;
  BLOCKED(r, errno, "perf_event_open on itself was refused");
}

static void a_perf_cpu(result *r) {
  long fd = perf_open(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_CLOCK, -1, 0, 0);
  if (fd >= 0) {
    close(fd);
    return OPEN(r, "perf_event_open watches all of CPU 0, host included");
  }
  if (errno == ENOSYS || errno == ENOENT) r->absent = 1;
  BLOCKED(r, errno, "a CPU-wide perf_event_open was refused");
}

static void a_userfaultfd(result *r) {
  long fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  if (fd >= 0) {
    close(fd);
    return OPEN(r, "userfaultfd() gave a descriptor (kernel faults too)");
  }
  int e = errno;
  fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
  if (fd >= 0) {
    close(fd);
    return OPEN(r, "userfaultfd(UFFD_USER_MODE_ONLY) gave a descriptor (plain: %s)", errname(e));
  }
  if (errno == ENOSYS) r->absent = 1;
  BLOCKED(r, errno, "userfaultfd was refused (plain: %s)", errname(e));
}

static void a_io_uring(result *r) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  long fd = syscall(SYS_io_uring_setup, 1, &p);
  if (fd >= 0) {
    close(fd);
    return OPEN(r, "io_uring_setup gave a ring");
  }
  if (errno == ENOSYS) r->absent = 1;
  BLOCKED(r, errno, "io_uring_setup was refused");
}

/* ---- sockets --------------------------------------------------------------------------------- */

static void try_socket(result *r, int domain, int type, int proto, const char *what) {
  int fd = socket(domain, type | SOCK_CLOEXEC, proto);
  if (fd >= 0) {
    close(fd);
    return OPEN(r, "socket(%s) was created", what);
  }
  if (errno == EAFNOSUPPORT || errno == EPROTONOSUPPORT || errno == ESOCKTNOSUPPORT) r->absent = 1;
  BLOCKED(r, errno, "socket(%s) was refused", what);
}

struct sock_try {
  int domain, type, proto;
  const char *what;
};

/* Several sockets that must all be refused: open when any is made. */
static void try_sockets(result *r, const struct sock_try *t, int n) {
  char refused[600] = "";
  int first = 0, all_absent = 1;
  for (int i = 0; i < n; i++) {
    int fd = socket(t[i].domain, t[i].type | SOCK_CLOEXEC, t[i].proto);
    if (fd >= 0) {
      close(fd);
      return OPEN(r, "socket(%s) was created", t[i].what);
    }
    int e = errno;
    if (e != EAFNOSUPPORT && e != EPROTONOSUPPORT && e != ESOCKTNOSUPPORT) all_absent = 0;
    if (!first || (first == EAFNOSUPPORT && e != EAFNOSUPPORT)) first = e;
    app(refused, sizeof refused, "%s%s:%s", i ? " " : "", t[i].what, errname(e));
  }
  if (all_absent) r->absent = 1;
  BLOCKED(r, first, "refused: %s", refused);
}

static void a_af_packet(result *r) {
  static const struct sock_try t[] = {
      {AF_PACKET, SOCK_RAW, 0, "AF_PACKET,SOCK_RAW"},
      {AF_PACKET, SOCK_DGRAM, 0, "AF_PACKET,SOCK_DGRAM"},
      {44 /* AF_XDP */, SOCK_RAW, 0, "AF_XDP"},
  };
  /* protocol 0: such a socket receives nothing until bound, and nothing is bound or sent */
  try_sockets(r, t, sizeof t / sizeof *t);
}

/* Raw IP of any protocol but ICMP/ICMPv6 (ping's), and IP_HDRINCL on an ICMP raw socket (it
 * would write whole IP headers: any protocol, any source address). Nothing is sent. */
static void a_raw_inet(result *r) {
  static const struct sock_try t[] = {
      {AF_INET, SOCK_RAW, IPPROTO_RAW, "AF_INET,SOCK_RAW,IPPROTO_RAW"},
      {AF_INET, SOCK_RAW, IPPROTO_TCP, "AF_INET,SOCK_RAW,IPPROTO_TCP"},
      {AF_INET, SOCK_RAW | SOCK_NONBLOCK, IPPROTO_UDP, "AF_INET,SOCK_RAW|SOCK_NONBLOCK,IPPROTO_UDP"},
      {AF_INET6, SOCK_RAW, IPPROTO_RAW, "AF_INET6,SOCK_RAW,IPPROTO_RAW"},
      {AF_INET6, SOCK_RAW, IPPROTO_TCP, "AF_INET6,SOCK_RAW,IPPROTO_TCP"},
  };
  try_sockets(r, t, sizeof t / sizeof *t);
  if (!r->blocked) return;
  char detail[sizeof r->detail];
  snprintf(detail, sizeof detail, "%s", r->detail);
  int err = r->err;
  static const struct {
    int domain, proto, level, opt;
    const char *what;
  } h[] = {{AF_INET, IPPROTO_ICMP, IPPROTO_IP, IP_HDRINCL, "IP_HDRINCL"},
           {AF_INET6, IPPROTO_ICMPV6, IPPROTO_IPV6, 36 /* IPV6_HDRINCL */, "IPV6_HDRINCL"}};
  for (size_t i = 0; i < sizeof h / sizeof *h; i++) {
    int fd = socket(h[i].domain, SOCK_RAW | SOCK_CLOEXEC, h[i].proto);
    if (fd < 0) {
      app(detail, sizeof detail, "; ICMP raw socket for %s:%s", h[i].what, errname(errno));
      continue;
    }
    int one = 1;
    int rc = setsockopt(fd, h[i].level, h[i].opt, &one, sizeof one);
    int e = errno;
    close(fd);
    if (rc == 0) return OPEN(r, "%s was set on an ICMP raw socket (%s)", h[i].what, detail);
    app(detail, sizeof detail, "; %s on an ICMP raw socket:%s", h[i].what, errname(e));
  }
  BLOCKED(r, err, "%s", detail);
}
static void a_af_alg(result *r) { try_socket(r, AF_ALG, SOCK_SEQPACKET, 0, "AF_ALG"); }
static void a_af_vsock(result *r) {
  /* Created only, never connected: the hypervisor's vsock services are not to be touched. */
  try_socket(r, AF_VSOCK, SOCK_STREAM, 0, "AF_VSOCK");
}

/* Unix sockets reachable in the guest's tree that no process of the guest's network namespace
 * bound: the host's, another guest's, or a daemon's API sockets. Connect only; nothing is sent. */
static char own_sockets[200000];
static int n_sock_checked, n_sock_foreign;
static char sock_found[1000];

static int own_socket(const char *path) {
  size_t len = strlen(path);
  for (char *l = own_sockets; (l = strstr(l, path)); l += len)
    if ((l == own_sockets || l[-1] == ' ') && (l[len] == '\n' || l[len] == 0)) return 1;
  return 0;
}

static void check_socket(const char *path) {
  if (own_socket(path)) return;
  n_sock_checked++;
  int types[] = {SOCK_STREAM, SOCK_SEQPACKET, SOCK_DGRAM};
  for (int i = 0; i < 3; i++) {
    int fd = socket(AF_UNIX, types[i] | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    int e = errno;
    close(fd);
    if (rc == 0) {
      n_sock_foreign++;
      app(sock_found, sizeof sock_found, "%s; ", path);
      return;
    }
    if (e != EPROTOTYPE) return;
  }
}

/* Visit every non-directory entry below `dir` (not /proc, /sys, /dev/pts), at most `budget`. */
static void walk_tree(const char *dir, int depth, int *budget, void (*visit)(const char *, const struct stat *)) {
  if (depth > 8 || *budget <= 0) return;
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) && --*budget > 0) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", strcmp(dir, "/") ? dir : "", e->d_name);
    if (!strcmp(p, "/proc") || !strcmp(p, "/sys") || !strcmp(p, "/dev/pts")) continue;
    struct stat st;
    if (lstat(p, &st) < 0) continue;
    if (S_ISDIR(st.st_mode)) walk_tree(p, depth + 1, budget, visit);
    else visit(p, &st);
  }
  closedir(d);
}

static void visit_socket(const char *path, const struct stat *st) {
  if (S_ISSOCK(st->st_mode)) check_socket(path);
}

static void a_host_sockets(result *r) {
  read_file("/proc/net/unix", own_sockets, sizeof own_sockets);
  const char *known[] = {"/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock",
                         "/run/podman/podman.sock", "/var/run/crio/crio.sock", "/run/dbus/system_bus_socket",
                         "/run/systemd/private", "/run/systemd/notify", "/run/jaula/jaula.sock",
                         "/var/lib/lxd/unix.socket", "/run/libvirt/libvirt-sock", "/run/snapd.socket"};
  for (size_t i = 0; i < sizeof known / sizeof *known; i++) {
    struct stat st;
    if (lstat(known[i], &st) == 0 && S_ISSOCK(st.st_mode)) check_socket(known[i]);
  }
  int budget = 200000;
  walk_tree("/", 0, &budget, visit_socket);
  if (n_sock_foreign)
    return OPEN(r, "connected to %d unix socket(s) bound outside the guest: %s", n_sock_foreign, sock_found);
  BLOCKED(r, 0, "no unix socket bound outside the guest is reachable (%d socket files tried)", n_sock_checked);
}

/* ---- clock and kernel log ----------------------------------------------------------------- */

static void a_clock_settime(result *r) {
  /* Writes the current time back: a no-op when it is allowed. */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  if (clock_settime(CLOCK_REALTIME, &ts) == 0) return OPEN(r, "clock_settime(CLOCK_REALTIME) set the host's clock");
  BLOCKED(r, errno, "clock_settime(CLOCK_REALTIME) was refused");
}

static void a_settimeofday(result *r) {
  /* Only a time zone out of range: EPERM before the check, EINVAL after it. */
  struct timezone tz = {.tz_minuteswest = 100000, .tz_dsttime = 0};
  long rc = syscall(SYS_settimeofday, NULL, &tz);
  privileged_call(r, rc, errno, "settimeofday(invalid time zone)", "CAP_SYS_TIME");
}

static void a_adjtimex(result *r) {
  /* A tick length far out of range: EPERM before the check, EINVAL after it. */
  struct timex tx;
  memset(&tx, 0, sizeof tx);
  tx.modes = ADJ_TICK;
  tx.tick = 1;
  long rc = syscall(SYS_adjtimex, &tx);
  privileged_call(r, rc, errno, "adjtimex(ADJ_TICK, invalid tick)", "CAP_SYS_TIME");
}

static void a_syslog(result *r) {
  char buf[256];
  int n = klogctl(3 /* SYSLOG_ACTION_READ_ALL: does not consume */, buf, sizeof buf);
  if (n >= 0) return OPEN(r, "syslog(READ_ALL) read %d bytes of the kernel log", n);
  BLOCKED(r, errno, "syslog(READ_ALL) was refused");
}

/* Open a kernel file that must be masked; never read it (reading /proc/kmsg consumes the log). */
static void masked_open(result *r, const char *path, int flags) {
  int fd = open(path, flags | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    if (errno == ENOENT) r->absent = 1;
    return BLOCKED(r, errno, "open(%s) failed", path);
  }
  struct stat st;
  fstat(fd, &st);
  close(fd);
  if (is_devnull(&st)) return BLOCKED(r, 0, "%s is masked (/dev/null)", path);
  OPEN(r, "%s opened: it is the kernel's file, not masked", path);
}

static void a_proc_kmsg(result *r) { masked_open(r, "/proc/kmsg", O_RDONLY); }
static void a_proc_kcore(result *r) { masked_open(r, "/proc/kcore", O_RDONLY); }

static void a_kallsyms(result *r) {
  char buf[4096];
  if (read_file("/proc/kallsyms", buf, sizeof buf) < 0) return BLOCKED(r, errno, "cannot read /proc/kallsyms");
  unsigned long long addr = strtoull(buf, NULL, 16);
  if (addr) return OPEN(r, "/proc/kallsyms shows kernel addresses (%llx...)", addr);
  BLOCKED(r, 0, "/proc/kallsyms shows zero addresses (kptr_restrict, no CAP_SYSLOG)");
}

static void a_proc_info(result *r) {
  const char *paths[] = {"/proc/timer_list", "/proc/sched_debug", "/proc/keys", "/proc/latency_stats",
                         "/proc/timer_stats", "/proc/acpi", "/proc/scsi", "/sys/firmware"};
  char leaked[600] = "", seen[600] = "";
  for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
    struct stat st;
    if (stat(paths[i], &st) < 0) continue;
    app(seen, sizeof seen, "%s ", paths[i]);
    if (S_ISDIR(st.st_mode)) {
      DIR *d = opendir(paths[i]);
      int n = 0;
      struct dirent *e;
      while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') n++;
      if (d) closedir(d);
      if (n) app(leaked, sizeof leaked, "%s (%d entries) ", paths[i], n);
    } else if (!is_devnull(&st)) {
      char buf[512];
      if (read_file(paths[i], buf, sizeof buf) > 0) app(leaked, sizeof leaked, "%s ", paths[i]);
    }
  }
  if (leaked[0]) return OPEN(r, "kernel information is readable: %s", leaked);
  BLOCKED(r, 0, "masked or empty: %s", seen[0] ? seen : "(none present)");
}

/* ---- /proc/sys, /sys, sysrq, binfmt_misc ------------------------------------------------------ */

static void a_sysrq(result *r) {
  int fd = open("/proc/sysrq-trigger", O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) r->absent = 1;
    return BLOCKED(r, errno, "open(/proc/sysrq-trigger, O_WRONLY) failed");
  }
  ssize_t n = write(fd, "h", 1); /* 'h': print the help to the kernel log, nothing else */
  int e = errno;
  close(fd);
  if (n == 1) return OPEN(r, "wrote sysrq 'h' (help) to the host kernel");
  BLOCKED(r, e, "/proc/sysrq-trigger opened but the write of 'h' failed");
}

/* open(O_WRONLY) each path and never write: a successful open is the finding. */
static void open_wronly_all(result *r, const char **paths, size_t n, const char *what) {
  char opened[800] = "", errs[800] = "";
  int first_err = 0, present = 0;
  for (size_t i = 0; i < n; i++) {
    int fd = open(paths[i], O_WRONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd >= 0) {
      close(fd);
      app(opened, sizeof opened, "%s ", paths[i]);
      present++;
    } else {
      if (errno != ENOENT) present++;
      if (!first_err || first_err == ENOENT) first_err = errno;
      app(errs, sizeof errs, "%s:%s ", paths[i], errname(errno));
    }
  }
  if (opened[0]) return OPEN(r, "opened for writing (nothing written): %s", opened);
  if (!present) r->absent = 1;
  BLOCKED(r, first_err, "%s refused: %s", what, errs);
}

static void a_core_pattern(result *r) {
  const char *p[] = {"/proc/sys/kernel/core_pattern"};
  open_wronly_all(r, p, 1, "writing core_pattern");
}

static void a_modprobe(result *r) {
  const char *p[] = {"/proc/sys/kernel/modprobe"};
  open_wronly_all(r, p, 1, "writing the modprobe path");
}

static void a_sysctl_knobs(result *r) {
  const char *p[] = {"/proc/sys/kernel/poweroff_cmd", "/proc/sys/kernel/panic", "/proc/sys/kernel/sysrq",
                     "/proc/sys/kernel/kptr_restrict", "/proc/sys/kernel/dmesg_restrict",
                     "/proc/sys/kernel/randomize_va_space", "/proc/sys/kernel/unprivileged_bpf_disabled",
                     "/proc/sys/kernel/perf_event_paranoid", "/proc/sys/vm/drop_caches",
                     "/proc/sys/vm/overcommit_memory", "/proc/sys/fs/suid_dumpable", "/proc/sys/kernel/pid_max"};
  size_t n = sizeof p / sizeof *p;
  if (pid_max_namespaced()) n--; /* the last one: the guest's own PID namespace's there */
  open_wronly_all(r, p, n, "host-wide /proc/sys knobs");
}

static void a_sys_knobs(result *r) {
  const char *p[] = {"/sys/kernel/uevent_helper", "/sys/kernel/mm/transparent_hugepage/enabled",
                     "/sys/kernel/mm/ksm/run", "/sys/power/state", "/sys/kernel/profiling",
                     "/sys/kernel/rcu_expedited"};
  open_wronly_all(r, p, sizeof p / sizeof *p, "host-wide /sys knobs");
}

static void a_binfmt_misc(result *r) {
  const char *p[] = {"/proc/sys/fs/binfmt_misc/register"};
  int fd = open(p[0], O_WRONLY | O_CLOEXEC);
  if (fd >= 0) {
    close(fd);
    return OPEN(r, "%s is open for writing (nothing registered)", p[0]);
  }
  char dir[256];
  if (scratch_dir(dir, sizeof dir, "binfmt") < 0) return INCONCLUSIVE(r, "no scratch directory");
  int rc = mount("binfmt_misc", dir, "binfmt_misc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  int e = errno;
  if (rc == 0) {
    char reg[300];
    snprintf(reg, sizeof reg, "%s/register", dir);
    fd = open(reg, O_WRONLY | O_CLOEXEC);
    e = errno;
    close_quiet(fd);
    umount2(dir, MNT_DETACH);
  }
  rmdir(dir);
  if (rc == 0 && fd >= 0) return OPEN(r, "mounted binfmt_misc and opened its register file (nothing registered)");
  if (rc == 0) return BLOCKED(r, e, "binfmt_misc mounted, but its register file did not open");
  BLOCKED(r, e, "mounting binfmt_misc was refused");
}

/* ---- cgroups ---------------------------------------------------------------------------------- */

/* Read a file and write the same value back: the write is the probe, the value does not change. */
static int write_back(const char *path, char *why, size_t size) {
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    snprintf(why, size, "%s: open: %s", path, errname(errno));
    return -errno;
  }
  char buf[4096];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  if (n < 0) {
    int e = errno;
    close(fd);
    snprintf(why, size, "%s: read: %s", path, errname(e));
    return -e;
  }
  if (n == 0) buf[n++] = '\n';
  ssize_t w = pwrite(fd, buf, n, 0);
  int e = errno;
  close(fd);
  if (w < 0) {
    snprintf(why, size, "%s: write back: %s", path, errname(e));
    return -e;
  }
  snprintf(why, size, "%s: wrote its own value back", path);
  return 0;
}

static void a_release_agent(result *r) {
  char why[400], all[1000] = "";
  int err = ENOENT;
  DIR *d = opendir("/sys/fs/cgroup");
  struct dirent *e;
  char cand[40][300];
  int nc = 0;
  snprintf(cand[nc++], sizeof cand[0], "/sys/fs/cgroup/release_agent");
  while (d && (e = readdir(d)) && nc < 40)
    if (e->d_name[0] != '.') snprintf(cand[nc++], sizeof cand[0], "/sys/fs/cgroup/%s/release_agent", e->d_name);
  if (d) closedir(d);
  for (int i = 0; i < nc; i++) {
    if (access(cand[i], F_OK) < 0) continue;
    int rc = write_back(cand[i], why, sizeof why);
    if (rc == 0) return OPEN(r, "%s", why);
    err = -rc;
    app(all, sizeof all, "%s; ", why);
  }
  /* Mount a cgroup v1 hierarchy of one's own: its root has a release_agent. An existing
   * controller's hierarchy first: a new named one (the last resort, where every controller is
   * cgroup v2's) exists on the whole host while it is mounted, and every runtime starting a
   * container meanwhile tries to mount it too and fails (a weakened guest's run once made
   * another test's guest fail to start so). */
  char dir[256];
  if (scratch_dir(dir, sizeof dir, "cgroup") < 0) return INCONCLUSIVE(r, "no scratch directory");
  const char *opts[] = {"rdma", "misc", "memory", "none,name=jaula-escape-probe"};
  for (size_t i = 0; i < sizeof opts / sizeof *opts; i++) {
    if (mount("cgroup", dir, "cgroup", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts[i]) < 0) {
      if (err == ENOENT || errno == EPERM) err = errno;
      app(all, sizeof all, "mount -o %s: %s; ", opts[i], errname(errno));
      continue;
    }
    char ra[300];
    snprintf(ra, sizeof ra, "%s/release_agent", dir);
    int rc = access(ra, F_OK) == 0 ? write_back(ra, why, sizeof why) : -ENOENT;
    umount2(dir, MNT_DETACH);
    if (rc == 0) {
      rmdir(dir);
      return OPEN(r, "mounted cgroup -o %s and wrote its release_agent (its own value)", opts[i]);
    }
    app(all, sizeof all, "mounted -o %s but: %s; ", opts[i], rc == -ENOENT ? "no release_agent" : why);
    err = -rc;
  }
  rmdir(dir);
  BLOCKED(r, err, "no release_agent is writable: %s", all);
}

static void cgroup_limit(result *r, const char *v1, const char *v2, const char *what) {
  char why[400];
  const char *path = access(v1, F_OK) == 0 ? v1 : v2;
  if (access(path, F_OK) < 0) return BLOCKED(r, ENOENT, "no %s file (%s, %s) is visible", what, v1, v2);
  int rc = write_back(path, why, sizeof why);
  if (rc == 0) return OPEN(r, "the guest can change its own %s: %s", what, why);
  BLOCKED(r, -rc, "%s", why);
}

static void a_cgroup_memory(result *r) {
  cgroup_limit(r, "/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max", "memory limit");
}
static void a_cgroup_pids(result *r) {
  cgroup_limit(r, "/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max", "pids limit");
}

/* ---- devices -------------------------------------------------------------------------------- */

static int host_disk(dev_t *out) {
  struct stat st;
  if (stat("/", &st) == 0 && major(st.st_dev) != 0) {
    *out = st.st_dev;
    return 0;
  }
  DIR *d = opendir("/sys/dev/block");
  struct dirent *e;
  unsigned ma, mi;
  while (d && (e = readdir(d))) {
    if (sscanf(e->d_name, "%u:%u", &ma, &mi) == 2) {
      *out = makedev(ma, mi);
      closedir(d);
      return 0;
    }
  }
  if (d) closedir(d);
  return -1;
}

static void mknod_open(result *r, mode_t type, dev_t dev, const char *what) {
  char path[128];
  snprintf(path, sizeof path, "/dev/.jaula-probe-node-%d", getpid());
  if (mknod(path, type | 0600, dev) < 0) return BLOCKED(r, errno, "mknod of %s was refused", what);
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  int e = errno;
  unlink(path);
  if (fd >= 0) {
    close(fd);
    return OPEN(r, "made and opened %s (%u:%u); nothing was read", what, major(dev), minor(dev));
  }
  BLOCKED(r, e, "mknod of %s (%u:%u) worked but opening it failed (device cgroup)", what, major(dev), minor(dev));
}

static void a_mknod_block(result *r) {
  /* The disk holding the guest's /, then every other block device the host has. */
  dev_t devs[64];
  int n = 0;
  if (host_disk(&devs[0]) == 0) n = 1;
  DIR *d = opendir("/sys/dev/block");
  struct dirent *e;
  unsigned ma, mi;
  while (d && (e = readdir(d)) && n < 64)
    if (sscanf(e->d_name, "%u:%u", &ma, &mi) == 2 && (n == 0 || makedev(ma, mi) != devs[0]))
      devs[n++] = makedev(ma, mi);
  if (d) closedir(d);
  if (!n) return INCONCLUSIVE(r, "no block device found to try");
  char tried[900] = "";
  int first = 0;
  for (int i = 0; i < n; i++) {
    result one;
    memset(&one, 0, sizeof one);
    mknod_open(&one, S_IFBLK, devs[i], i == 0 ? "the host's disk" : "a host block device");
    if (!one.blocked) return OPEN(r, "%s", one.detail);
    if (!first) first = one.err;
    app(tried, sizeof tried, "%u:%u:%s ", major(devs[i]), minor(devs[i]), errname(one.err));
  }
  BLOCKED(r, first, "mknod and open of the host's block devices: %s", tried);
}

static void a_mknod_kmsg(result *r) { mknod_open(r, S_IFCHR, makedev(1, 11), "/dev/kmsg"); }

static int allowed_dev(const struct stat *st) {
  if (!S_ISCHR(st->st_mode)) return 0;
  unsigned ma = major(st->st_rdev), mi = minor(st->st_rdev);
  if (ma == 1) return mi == 3 || mi == 5 || mi == 7 || mi == 8 || mi == 9;
  if (ma == 5) return mi <= 2;
  return ma == 136;
}

static int dev_opened, dev_tried;
static char dev_found[800], dev_err[400];

static void visit_device(const char *p, const struct stat *st) {
  if (!(S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) || allowed_dev(st)) return;
  dev_tried++;
  int fd = open(p, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd >= 0) {
    close(fd);
    dev_opened++;
    app(dev_found, sizeof dev_found, "%s (%c %u:%u) ", p, S_ISBLK(st->st_mode) ? 'b' : 'c', major(st->st_rdev),
        minor(st->st_rdev));
  } else {
    app(dev_err, sizeof dev_err, "%s:%s ", p, errname(errno));
  }
}

static void a_stray_devices(result *r) {
  /* Device nodes in the guest's tree beyond the allowed few (a hostile template may bring them). */
  int budget = 200000;
  walk_tree("/", 0, &budget, visit_device);
  if (dev_opened) return OPEN(r, "opened device nodes found in the guest: %s", dev_found);
  if (!dev_tried) return BLOCKED(r, 0, "no device node beyond the allowed ones exists in the guest");
  BLOCKED(r, EPERM, "%d device node(s) found, none opens: %s", dev_tried, dev_err);
}

/* ---- runtime binary, terminals --------------------------------------------------------------- */

static void a_proc_self_exe(result *r) {
  char target[4096] = "";
  ssize_t n = readlink("/proc/self/exe", target, sizeof target - 1);
  target[n > 0 ? n : 0] = 0;
  int fd = open("/proc/self/exe", O_WRONLY | O_CLOEXEC);
  if (fd >= 0) {
    close(fd); /* never written */
    return OPEN(r, "/proc/self/exe (%s) opened for writing: the binary could be overwritten", target);
  }
  BLOCKED(r, errno, "/proc/self/exe (%s) does not open for writing", target);
}

/* Processes whose binary the guest cannot name (the OCI runtime entering the guest during
 * `jaula exec`): keep an O_PATH handle on their /proc/PID/exe and, once they are gone (no more
 * ETXTBSY), try to reopen it for writing, as CVE-2019-5736 did. Nothing is ever written. */
static void a_runtime_exe(result *r) {
  const char *w = ctx("watch-ms");
  long watch = w ? atol(w) : 0;
  struct timespec t0, now;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int held[64], nheld = 0, glimpsed = 0, hidden = 0, err = 0;
  struct stat self_exe;
  if (stat("/proc/self/exe", &self_exe) < 0) return INCONCLUSIVE(r, "stat /proc/self/exe: %s", strerror(errno));
  char names[800] = "", seenpids[8192] = " ";
  do {
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d))) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9' || atoi(e->d_name) == getpid()) continue;
      char link[300], target[4096] = "", key[300];
      snprintf(link, sizeof link, "/proc/%s/exe", e->d_name);
      snprintf(key, sizeof key, " %s ", e->d_name);
      if (strstr(seenpids, key)) continue;
      struct stat st;
      if (stat(link, &st) == 0 && st.st_dev == self_exe.st_dev && st.st_ino == self_exe.st_ino) continue;
      int foreign = foreign_link(link, target, sizeof target);
      if (!target[0] && (errno == EACCES || errno == EPERM)) {
        /* Not dumpable (the runtime protects itself so): try the write open all the same. */
        app(seenpids, sizeof seenpids, "%s ", e->d_name);
        hidden++;
        int fd = open(link, O_WRONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd >= 0) {
          close(fd);
          closedir(d);
          return OPEN(r, "opened the binary of a hidden process (pid %s) for writing", e->d_name);
        }
        err = errno;
        continue;
      }
      if (!foreign && !strstr(target, "memfd:") && !strstr(target, " (deleted)")) continue;
      if (!target[0]) continue;
      app(seenpids, sizeof seenpids, "%s ", e->d_name);
      glimpsed++;
      char cmd[200] = "", cl[300];
      snprintf(cl, sizeof cl, "/proc/%s/cmdline", e->d_name);
      read_file(cl, cmd, sizeof cmd);
      app(names, sizeof names, "pid %s %s (exe %s); ", e->d_name, cmd, target);
      int fd = open(link, O_WRONLY | O_CLOEXEC | O_NONBLOCK);
      if (fd >= 0) {
        close(fd);
        closedir(d);
        return OPEN(r, "opened the binary of a process entering the guest (%s, %s) for writing", cmd, target);
      }
      err = errno;
      if (nheld < 64) {
        int pfd = open(link, O_PATH | O_CLOEXEC);
        if (pfd >= 0) held[nheld++] = pfd;
      }
    }
    if (d) closedir(d);
    clock_gettime(CLOCK_MONOTONIC, &now);
  } while ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 < watch);
  usleep(300 * 1000); /* the runtime processes end */
  for (int i = 0; i < nheld; i++) {
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", held[i]);
    int fd = open(p, O_WRONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd >= 0) {
      close(fd);
      return OPEN(r, "reopened the runtime's binary for writing after it ended (%s)", names);
    }
  }
  if (!glimpsed && !hidden)
    return BLOCKED(r, 0, "no process with a binary from outside the guest was seen in %ld ms", watch);
  BLOCKED(r, err, "in %ld ms: %d process(es) with a binary from outside the guest (%s) and %d whose binary is "
                  "hidden (not dumpable); none opens for writing, now or after they ended",
          watch, glimpsed, names, hidden);
}

/* The first of fds 0-2 that is a terminal, -1 if none; `foreign` is set when it is not a pty of
 * the guest's own devpts (e.g. the operator's terminal handed through by `jaula exec`). */
static int find_tty(int *foreign, char *what, size_t size) {
  struct stat pts;
  *foreign = 0;
  if (stat("/dev/pts/ptmx", &pts) < 0 && stat("/dev/pts", &pts) < 0) pts.st_dev = (dev_t)-1;
  int tty = -1;
  for (int fd = 0; fd <= 2; fd++) {
    if (!isatty(fd)) continue;
    struct stat st;
    fstat(fd, &st);
    char link[64], target[256] = "";
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    target[n > 0 ? n : 0] = 0;
    if (st.st_dev != pts.st_dev) {
      *foreign = 1;
      snprintf(what, size, "fd %d is %s (%u:%u), a terminal from outside the guest's devpts", fd, target,
               major(st.st_rdev), minor(st.st_rdev));
      return fd;
    }
    if (tty < 0) {
      tty = fd;
      snprintf(what, size, "fd %d is %s, the guest's own pty", fd, target);
    }
  }
  return tty;
}

static void a_host_terminal(result *r) {
  /* Run by `jaula exec` from a terminal: the command must not hold the operator's terminal (it
   * could read what is typed there after it, or change its settings). Nothing is injected. */
  int foreign;
  char what[400] = "";
  int tty = find_tty(&foreign, what, sizeof what);
  if (tty < 0) {
    if (ctx("caller-has-terminal")) return BLOCKED(r, 0, "jaula exec ran from a terminal, yet fds 0-2 are no terminal: the command got pipes of its own");
    return INCONCLUSIVE(r, "no terminal on fds 0-2: run this attempt through jaula exec from a terminal");
  }
  if (foreign) return OPEN(r, "%s: its input can be read and its settings changed from inside", what);
  BLOCKED(r, 0, "%s", what);
}

static void a_tiocsti(result *r) {
  int foreign;
  char what[400] = "";
  int tty = find_tty(&foreign, what, sizeof what);
  if (tty < 0) return INCONCLUSIVE(r, "no terminal on fds 0-2: run this attempt through jaula enter");
  /* Never inject into a terminal from outside: that the guest holds one is the finding. */
  if (foreign) return OPEN(r, "%s: input could be injected into it", what);
  /* Injecting into a terminal that is not one's controlling terminal (the attack on a pty a
   * privileged process left open) needs CAP_SYS_ADMIN: try it without a controlling terminal,
   * on the guest's own pty, and take the injected blank back out. */
  int p[2];
  if (pipe(p) < 0) return INCONCLUSIVE(r, "pipe");
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    setsid();
    char c = ' ';
    int rc = ioctl(tty, TIOCSTI, &c);
    int e = rc < 0 ? errno : 0;
    if (rc == 0) tcflush(tty, TCIFLUSH);
    if (write(p[1], &e, sizeof e) < 0) _exit(1);
    _exit(0);
  }
  close(p[1]);
  int e = -1;
  if (read(p[0], &e, sizeof e) != sizeof e) e = -1;
  close(p[0]);
  waitpid(pid, NULL, 0);
  if (e == -1) return INCONCLUSIVE(r, "no answer from the child");
  if (e == 0) return OPEN(r, "%s; TIOCSTI injected input into it without it being the controlling terminal", what);
  BLOCKED(r, e, "%s; TIOCSTI into a terminal that is not the caller's controlling terminal was refused", what);
}

/* ---- other guests and the host: processes, IPC, files, environment ------------------------- */

/* "PID:STARTTIME,..." of processes outside the guest (host pids). */
static int foreign_visible(const char *spec, int do_ptrace, result *r) {
  char *list = strdup(spec), *save = NULL;
  char detail[600] = "";
  int open_found = 0;
  for (char *item = strtok_r(list, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
    long pid;
    unsigned long long start;
    if (sscanf(item, "%ld:%llu", &pid, &start) != 2) continue;
    if (kill(pid, 0) < 0) {
      app(detail, sizeof detail, "pid %ld: %s; ", pid, errname(errno));
      continue;
    }
    /* A pid of the guest's own namespace may carry the same number: compare start times. */
    char path[64], stat_[4096];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    unsigned long long st = 0;
    if (read_file(path, stat_, sizeof stat_) > 0) {
      char *c = strrchr(stat_, ')');
      int field = 2;
      for (char *t = c ? c + 1 : stat_; t && *t; t++)
        if (*t == ' ' && ++field == 22) {
          st = strtoull(t + 1, NULL, 10);
          break;
        }
    }
    if (st != start) {
      app(detail, sizeof detail, "pid %ld is another (guest) process; ", pid);
      continue;
    }
    if (do_ptrace) {
      if (ptrace(PTRACE_SEIZE, pid, 0, 0) == 0) {
        ptrace(PTRACE_DETACH, pid, 0, 0);
        app(detail, sizeof detail, "pid %ld: attached with ptrace; ", pid);
        open_found++;
      } else {
        app(detail, sizeof detail, "pid %ld visible, ptrace: %s; ", pid, errname(errno));
      }
    } else {
      app(detail, sizeof detail, "pid %ld can be signalled; ", pid);
      open_found++;
    }
  }
  free(list);
  if (open_found) OPEN(r, "%s", detail);
  else BLOCKED(r, ESRCH, "%s", detail);
  return open_found;
}

static void a_kill_other(result *r) {
  const char *s = ctx("foreign-pids");
  if (!s) return INCONCLUSIVE(r, "needs --set foreign-pids=PID:STARTTIME,...");
  foreign_visible(s, 0, r);
}

static void a_ptrace_other(result *r) {
  const char *s = ctx("foreign-pids");
  if (!s) return INCONCLUSIVE(r, "needs --set foreign-pids=PID:STARTTIME,...");
  foreign_visible(s, 1, r);
}

static void sysv_shm(result *r, const char *id_key, const char *key_key, const char *whose) {
  const char *ids = ctx(id_key), *keys = ctx(key_key);
  if (!ids || !keys) return INCONCLUSIVE(r, "needs --set %s=ID and %s=KEY", id_key, key_key);
  int id = atoi(ids);
  key_t key = (key_t)strtol(keys, NULL, 0);
  struct shmid_ds ds;
  if (shmctl(id, IPC_STAT, &ds) == 0 && ds.shm_perm.__key == key)
    return OPEN(r, "shmctl(IPC_STAT) reached %s segment %d", whose, id);
  int e1 = errno;
  int got = shmget(key, 0, 0);
  if (got >= 0) return OPEN(r, "shmget found %s key 0x%x", whose, (unsigned)key);
  BLOCKED(r, errno, "%s SysV segment is out of reach (IPC_STAT by id: %s, shmget by key: %s)", whose,
          errname(e1), errname(errno));
}

static void a_shm_host(result *r) { sysv_shm(r, "host-shm-id", "host-shm-key", "the host's"); }
static void a_shm_other(result *r) { sysv_shm(r, "other-shm-id", "other-shm-key", "another guest's"); }

static void a_posix_shm_other(result *r) {
  const char *name = ctx("other-posix-shm");
  if (!name) return INCONCLUSIVE(r, "needs --set other-posix-shm=NAME");
  char path[300];
  snprintf(path, sizeof path, "/dev/shm/%s", name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    close(fd);
    return OPEN(r, "opened another guest's POSIX shared memory %s", path);
  }
  BLOCKED(r, errno, "another guest's %s is not visible", path);
}

static void a_mqueue_other(result *r) {
  const char *name = ctx("other-mq");
  if (!name) return INCONCLUSIVE(r, "needs --set other-mq=NAME");
  long fd = syscall(SYS_mq_open, name, O_RDONLY | O_CLOEXEC, 0, NULL);
  if (fd >= 0) {
    close(fd);
    return OPEN(r, "opened another guest's message queue /%s", name);
  }
  BLOCKED(r, errno, "another guest's message queue /%s is not visible", name);
}

static void a_files_other(result *r) {
  const char *s = ctx("foreign-files");
  if (!s) return INCONCLUSIVE(r, "needs --set foreign-files=HOSTPATH,...");
  char *list = strdup(s), *save = NULL, detail[800] = "";
  int err = ENOENT;
  for (char *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
    char tries[3][4200];
    snprintf(tries[0], sizeof tries[0], "%s", p);
    snprintf(tries[1], sizeof tries[1], "/../../../../..%s", p);
    snprintf(tries[2], sizeof tries[2], "/proc/1/root/../../..%s", p);
    for (int i = 0; i < 3; i++) {
      int fd = open(tries[i], O_RDONLY | O_CLOEXEC);
      if (fd >= 0) {
        close(fd);
        free(list);
        return OPEN(r, "opened %s, a file outside the guest", tries[i]);
      }
      err = errno;
      app(detail, sizeof detail, "%s:%s ", tries[i], errname(errno));
    }
  }
  free(list);
  BLOCKED(r, err, "%s", detail);
}

static void a_env_secrets(result *r) {
  const char *canary = ctx("canary");
  if (!canary) return INCONCLUSIVE(r, "needs --set canary=TOKEN (a value set in the host's environment)");
  char found[800] = "";
  DIR *d = opendir("/proc");
  struct dirent *e;
  int procs = 0;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    char path[300], env[65536];
    snprintf(path, sizeof path, "/proc/%s/environ", e->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n = read(fd, env, sizeof env - 1);
    close(fd);
    if (n < 0) continue;
    env[n] = 0;
    procs++;
    for (char *v = env; v < env + n; v += strlen(v) + 1) {
      char name[128];
      size_t len = strcspn(v, "=");
      snprintf(name, sizeof name, "%.*s", (int)(len < sizeof name ? len : sizeof name - 1), v);
      if (!strncmp(v, "JAULA_", 6) || strstr(v, canary))
        app(found, sizeof found, "pid %s: %s; ", e->d_name, name);
    }
  }
  if (d) closedir(d);
  if (found[0]) return OPEN(r, "host variables reached the guest (names only): %s", found);
  BLOCKED(r, 0, "no JAULA_* variable and no host canary in the environment of %d processes", procs);
}

/* ---- exhaustion ------------------------------------------------------------------------------ */

static long long cgroup_number(const char *v1, const char *v2, int *unlimited) {
  char buf[64];
  *unlimited = 0;
  if (read_file(v1, buf, sizeof buf) < 0 && read_file(v2, buf, sizeof buf) < 0) return -1;
  if (!strncmp(buf, "max", 3)) {
    *unlimited = 1;
    return -1;
  }
  return strtoll(buf, NULL, 10);
}

static void a_fork_bomb(result *r) {
  int unlimited;
  long long limit = cgroup_number("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max", &unlimited);
  /* Without a limit: stop at a demonstration bound instead of hurting the host. */
  long cap = (!unlimited && limit > 0 && limit <= 16384) ? limit + 16 : 256;
  pid_t *kids = calloc(cap, sizeof *kids);
  long n = 0;
  int err = 0;
  while (n < cap) {
    pid_t p = fork();
    if (p == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      pause();
      _exit(0);
    }
    if (p < 0) {
      err = errno;
      break;
    }
    kids[n++] = p;
  }
  for (long i = 0; i < n; i++) kill(kids[i], SIGKILL);
  for (long i = 0; i < n; i++) waitpid(kids[i], NULL, 0);
  free(kids);
  if (err) return BLOCKED(r, err, "fork failed after %ld processes (pids limit %lld)", n, limit);
  if (unlimited || limit < 0)
    return OPEN(r, "no pids limit: forked %ld processes and stopped there on purpose", n);
  OPEN(r, "forked %ld processes without hitting the pids limit %lld", n, limit);
}

static void a_memory(result *r) {
  int unlimited;
  long long limit = cgroup_number("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max",
                                  &unlimited);
  /* The host's memory comes from the test: inside, /proc/meminfo and sysinfo(2) show the guest's own limit. */
  const char *hm = ctx("host-mem-bytes");
  char mi[4096];
  long long total = hm ? atoll(hm) : 0;
  if (!hm && read_file("/proc/meminfo", mi, sizeof mi) > 0)
    total = strtoll(mi + strcspn(mi, "0123456789"), NULL, 10) * 1024;
  if (unlimited || limit < 0 || (total > 0 && limit >= total))
    return OPEN(r, "no memory limit below the host's %lld MiB (limit: %s)", total >> 20,
                unlimited || limit < 0 ? "none" : "above the host's memory");
  long long cap = 1LL << 30;
  if (limit > cap)
    return BLOCKED(r, 0, "a memory limit of %lld MiB is set (not filled: above the probe's 1 GiB bound)", limit >> 20);
  /* Fill it in a child: the child must be stopped (killed by the OOM killer or refused memory). */
  pid_t pid = fork();
  if (pid == 0) {
    long long want = limit + (64LL << 20), done = 0;
    while (done < want) {
      char *p = mmap(NULL, 8 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) _exit(3);
      for (long i = 0; i < (8 << 20); i += 4096) p[i] = 1;
      done += 8 << 20;
    }
    _exit(0);
  }
  int st;
  waitpid(pid, &st, 0);
  if (WIFSIGNALED(st))
    return BLOCKED(r, ENOMEM, "a child filling the %lld MiB limit was killed by signal %d", limit >> 20, WTERMSIG(st));
  if (WIFEXITED(st) && WEXITSTATUS(st) == 3) return BLOCKED(r, ENOMEM, "allocation beyond the limit failed");
  OPEN(r, "a child allocated more than the %lld MiB limit", limit >> 20);
}

static void a_disk(result *r) {
  /* Write up to a small bound; a per-guest quota or filesystem of its own must show. */
  const char *b = ctx("disk-bound-mb");
  long bound = (b ? atol(b) : 64) << 20;
  const char *hostb = ctx("host-fs-bytes");
  struct statfs sf;
  if (statfs("/", &sf) < 0) return INCONCLUSIVE(r, "statfs /: %s", strerror(errno));
  unsigned long long size = (unsigned long long)sf.f_blocks * sf.f_bsize;
  char path[128];
  snprintf(path, sizeof path, "/.jaula-probe-fill-%d", getpid());
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return BLOCKED(r, errno, "the guest's / is not writable");
  static char chunk[1 << 20];
  long written = 0;
  int err = 0;
  while (written < bound) {
    ssize_t w = write(fd, chunk, sizeof chunk);
    if (w < 0) {
      err = errno;
      break;
    }
    written += w;
  }
  fsync(fd);
  close(fd);
  unlink(path);
  if (err == ENOSPC || err == EDQUOT)
    return BLOCKED(r, err, "writing stopped after %ld MiB", written >> 20);
  if (hostb && size < strtoull(hostb, NULL, 10))
    return BLOCKED(r, 0, "the guest's / is a filesystem or quota of its own (%llu MiB, smaller than the host's)",
                   size >> 20);
  OPEN(r, "wrote %ld MiB (and removed it) with no quota: / is the host's filesystem (%llu MiB, %llu MiB free)",
       written >> 20, size >> 20, ((unsigned long long)sf.f_bavail * sf.f_bsize) >> 20);
}

/* The attempts on what masks and read-only mounts hide, after lifting them where the guest may. */
static void l_proc_kmsg(result *r) { with_masks_lifted(r, a_proc_kmsg); }
static void l_proc_kcore(result *r) { with_masks_lifted(r, a_proc_kcore); }
static void l_proc_info(result *r) { with_masks_lifted(r, a_proc_info); }
static void l_sysrq(result *r) { with_masks_lifted(r, a_sysrq); }
static void l_core_pattern(result *r) { with_masks_lifted(r, a_core_pattern); }
static void l_modprobe(result *r) { with_masks_lifted(r, a_modprobe); }
static void l_sysctl_knobs(result *r) { with_masks_lifted(r, a_sysctl_knobs); }
static void l_sys_knobs(result *r) { with_masks_lifted(r, a_sys_knobs); }
static void l_release_agent(result *r) { with_masks_lifted(r, a_release_agent); }
static void l_cgroup_memory(result *r) { with_masks_lifted(r, a_cgroup_memory); }
static void l_cgroup_pids(result *r) { with_masks_lifted(r, a_cgroup_pids); }

/* ---- the table ------------------------------------------------------------------------------ */

typedef struct {
  const char *id;
  void (*fn)(result *);
  int timeout;
} attempt;

static const attempt ATTEMPTS[] = {
    {"caps.bounding-set", a_caps_bounding, 10},
    {"caps.raise", a_caps_raise, 10},
    {"privs.setuid-root", a_privs_setuid, 20},
    {"userns.host-root", a_userns_host_root, 10},
    {"userns.disjoint-maps", a_userns_disjoint, 10},
    {"userns.unshare", a_userns_unshare, 10},
    {"mount.proc", a_mount_proc, 10},
    {"mount.sysfs-rw", a_mount_sysfs_rw, 10},
    {"mount.bind", a_mount_bind, 10},
    {"mount.fsopen", a_mount_fsopen, 10},
    {"mount.unmask", a_mount_unmask, 10},
    {"chroot.double", a_chroot_escape, 10},
    {"fd.leaked", a_fd_leaked, 20},
    {"kmod.init_module", a_kmod_init, 10},
    {"kmod.finit_module", a_kmod_finit, 10},
    {"kmod.delete_module", a_kmod_delete, 10},
    {"kexec.load", a_kexec_load, 10},
    {"fs.open_by_handle_at", a_open_by_handle, 10},
    {"keys.add_key", a_keys_add, 10},
    {"keys.host-keyring", a_keys_host_keyring, 10},
    {"bpf.prog_load", a_bpf, 10},
    {"perf.self", a_perf_self, 10},
    {"perf.cpu-wide", a_perf_cpu, 10},
    {"userfaultfd", a_userfaultfd, 10},
    {"io_uring.setup", a_io_uring, 10},
    {"net.af_packet", a_af_packet, 10},
    {"net.raw_inet", a_raw_inet, 10},
    {"net.af_alg", a_af_alg, 10},
    {"net.af_vsock", a_af_vsock, 10},
    {"sock.host-api", a_host_sockets, 30},
    {"time.clock_settime", a_clock_settime, 10},
    {"time.settimeofday", a_settimeofday, 10},
    {"time.adjtimex", a_adjtimex, 10},
    {"klog.syslog", a_syslog, 10},
    {"klog.proc-kmsg", l_proc_kmsg, 10},
    {"klog.kallsyms", a_kallsyms, 10},
    {"proc.kcore", l_proc_kcore, 10},
    {"proc.info-leaks", l_proc_info, 10},
    {"proc.sysrq-trigger", l_sysrq, 10},
    {"sysctl.core_pattern", l_core_pattern, 10},
    {"sysctl.modprobe", l_modprobe, 10},
    {"sysctl.host-knobs", l_sysctl_knobs, 10},
    {"sys.host-knobs", l_sys_knobs, 10},
    {"binfmt_misc.register", a_binfmt_misc, 10},
    {"cgroup.release_agent", l_release_agent, 10},
    {"cgroup.memory-limit", l_cgroup_memory, 10},
    {"cgroup.pids-limit", l_cgroup_pids, 10},
    {"dev.mknod-disk", a_mknod_block, 10},
    {"dev.mknod-kmsg", a_mknod_kmsg, 10},
    {"dev.planted-nodes", a_stray_devices, 30},
    {"exec.proc-self-exe", a_proc_self_exe, 10},
    {"exec.runtime-exe", a_runtime_exe, 60},
    {"tty.tiocsti", a_tiocsti, 10},
    {"tty.host-terminal", a_host_terminal, 10},
    {"guest.kill", a_kill_other, 10},
    {"guest.ptrace", a_ptrace_other, 10},
    {"ipc.host-sysv-shm", a_shm_host, 10},
    {"ipc.guest-sysv-shm", a_shm_other, 10},
    {"ipc.guest-posix-shm", a_posix_shm_other, 10},
    {"ipc.guest-mqueue", a_mqueue_other, 10},
    {"guest.files", a_files_other, 10},
    {"env.secrets", a_env_secrets, 10},
    {"dos.fork", a_fork_bomb, 120},
    {"dos.memory", a_memory, 120},
    {"dos.disk", a_disk, 120},
};
#define NATTEMPTS (sizeof ATTEMPTS / sizeof *ATTEMPTS)

static void json_str(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') printf("\\%c", c);
    else if (c < 0x20 || c >= 0x7f) printf("\\u%04x", c);
    else putchar(c);
  }
  putchar('"');
}

static void print_result(const char *id, const result *r) {
  printf("{\"id\":");
  json_str(id);
  printf(",\"blocked\":%s,\"errno\":", r->blocked ? "true" : "false");
  json_str(errname(r->err));
  printf(",\"detail\":");
  json_str(r->detail);
  if (r->absent) printf(",\"absent\":true");
  if (r->inconclusive) printf(",\"inconclusive\":true");
  printf("}\n");
  fflush(stdout);
}

static void run_attempt(const attempt *a) {
  result r;
  memset(&r, 0, sizeof r);
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) {
    INCONCLUSIVE(&r, "pipe: %s", strerror(errno));
    return print_result(a->id, &r);
  }
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    setpgid(0, 0);
    result mine;
    memset(&mine, 0, sizeof mine);
    a->fn(&mine);
    if (!mine.set) INCONCLUSIVE(&mine, "the attempt gave no verdict");
    ssize_t w = write(p[1], &mine, sizeof mine);
    _exit(w == (ssize_t)sizeof mine ? 0 : 1);
  }
  close(p[1]);
  if (pid < 0) {
    close(p[0]);
    INCONCLUSIVE(&r, "fork: %s", strerror(errno));
    return print_result(a->id, &r);
  }
  setpgid(pid, pid);
  struct pollfd pf = {.fd = p[0], .events = POLLIN};
  size_t got = 0;
  int timed_out = 0;
  struct timespec t0, now;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (got < sizeof r) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    long left = a->timeout * 1000L - ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000);
    if (left <= 0) {
      timed_out = 1;
      break;
    }
    int rc = poll(&pf, 1, (int)left);
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) continue;
    ssize_t n = read(p[0], (char *)&r + got, sizeof r - got);
    if (n <= 0) break;
    got += n;
  }
  close(p[0]);
  kill(-pid, SIGKILL); /* whatever the attempt left running */
  int st;
  waitpid(pid, &st, 0);
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
  if (got != sizeof r) {
    memset(&r, 0, sizeof r);
    if (timed_out) INCONCLUSIVE(&r, "the attempt did not end within %d s", a->timeout);
    else if (WIFSIGNALED(st)) INCONCLUSIVE(&r, "the attempt died of signal %d", WTERMSIG(st));
    else INCONCLUSIVE(&r, "the attempt ended without a verdict");
  }
  print_result(a->id, &r);
}

static void record_inherited(void) {
  /* Before anything is opened: which fds did `jaula exec` (or enter) hand over? */
  for (int fd = 0; fd < 1024 && ninherited < 64; fd++) {
    if (fcntl(fd, F_GETFD) < 0) continue;
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, inherited_what[ninherited], sizeof inherited_what[0] - 1);
    inherited_what[ninherited][n > 0 ? n : 0] = 0;
    inherited[ninherited++] = fd;
  }
}

static int helper(int argc, char **argv) {
  if (argc >= 1 && !strcmp(argv[0], "suid-child")) return helper_suid_child();
  if (argc >= 2 && !strcmp(argv[0], "shm-create")) {
    key_t key = (key_t)strtol(argv[1], NULL, 0);
    int id = shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0600);
    if (id < 0) return perror("shmget"), 1;
    printf("%d\n", id);
    return 0;
  }
  if (argc >= 2 && !strcmp(argv[0], "posix-shm-create")) {
    char path[300];
    snprintf(path, sizeof path, "/dev/shm/%s", argv[1]);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) return perror(path), 1;
    close(fd);
    return 0;
  }
  if (argc >= 2 && !strcmp(argv[0], "mq-create")) {
    long fd = syscall(SYS_mq_open, argv[1], O_RDWR | O_CREAT | O_EXCL, 0600, NULL);
    if (fd < 0) return perror("mq_open"), 1;
    return 0;
  }
  if (argc >= 2 && !strcmp(argv[0], "hold")) {
    sleep((unsigned)atoi(argv[1]));
    return 0;
  }
  fprintf(stderr, "jaula-escape-probe: unknown helper\n");
  return 2;
}

int main(int argc, char **argv) {
  record_inherited();
  if (argc >= 2 && !strcmp(argv[1], "helper")) return helper(argc - 2, argv + 2);
  if (argc >= 2 && !strcmp(argv[1], "--list")) {
    for (size_t i = 0; i < NATTEMPTS; i++) printf("%s\n", ATTEMPTS[i].id);
    return 0;
  }
  int ran = 0;
  signal(SIGPIPE, SIG_IGN);
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--set") && i + 1 < argc) {
      char *kv = argv[++i], *eq = strchr(kv, '=');
      if (!eq || nctx >= MAX_CTX) {
        fprintf(stderr, "jaula-escape-probe: --set wants KEY=VALUE\n");
        return 2;
      }
      *eq = 0;
      ctx_keys[nctx] = kv;
      ctx_vals[nctx++] = eq + 1;
      continue;
    }
    int all = !strcmp(argv[i], "all"), found = 0;
    for (size_t j = 0; j < NATTEMPTS; j++)
      if (all || !strcmp(argv[i], ATTEMPTS[j].id)) {
        run_attempt(&ATTEMPTS[j]);
        found = ran = 1;
      }
    if (!found) {
      fprintf(stderr, "jaula-escape-probe: no attempt \"%s\" (see --list)\n", argv[i]);
      return 2;
    }
  }
  if (!ran) {
    fprintf(stderr, "usage: jaula-escape-probe [--set KEY=VALUE]... ID...|all  (or --list)\n");
    return 2;
  }
  return 0;
}
