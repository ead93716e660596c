/*
 * sysinfo(2) as the guest sees it: the shim answers the guest's seccomp notifications for it.
 */
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <unistd.h>

/* How far below the guest's root cgroup a caller's cgroup is followed up. */
#define MAX_LEVELS 16

/* The guest's init's start (clock ticks after boot), read once. */
long long init_start = -1;

/* A number from a cgroup file; -1 when absent; "max" or v1's huge values count as unlimited (-2). */
static long long cg_num(const char *dir, const char *name) {
  char path[2048], buf[64];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (read_small(path, buf, sizeof buf) < 0) return -1;
  if (!strncmp(buf, "max", 3)) return -2;
  long long v = strtoll(buf, NULL, 10);
  return v >= (1LL << 62) || v < 0 ? -2 : v;
}

static long long stat_key(const char *dir, const char *file, const char *key) {
  char path[2048], buf[8192];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  if (read_small(path, buf, sizeof buf) < 0) return -1;
  size_t kl = strlen(key);
  char *save;
  for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
    if (!strncmp(line, key, kl) && line[kl] == ' ') return strtoll(line + kl + 1, NULL, 10);
  return -1;
}

/* The caller's cgroup in hierarchy h when it is the guest's or below it (else the guest's). */
static void caller_cgroup(pid_t pid, const struct hier *h, char *out, size_t size) {
  char path[64], buf[8192];
  snprintf(out, size, "%s", h->guest);
  snprintf(path, sizeof path, "/proc/%d/cgroup", pid);
  if (read_small(path, buf, sizeof buf) < 0) return;
  char *save;
  for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char *p;
    if (hier_of_line(line, &p) != h) continue;
    size_t gl = strlen(h->guest);
    if (!strncmp(p, h->guest, gl) && (p[gl] == 0 || p[gl] == '/')) snprintf(out, size, "%s", p);
    return;
  }
}

static unsigned long long min_ull(unsigned long long a, unsigned long long b) {
  return a < b ? a : b;
}

/* The host's sysinfo, narrowed to the guest of process `pid`: the lowest memory and swap limits
 * from the caller's cgroup up to the guest's (a sub-cgroup without a limit of its own is still
 * bound by the guest's), the guest's tasks, the uptime since its init started. */
static void guest_sysinfo(pid_t pid, struct sysinfo *si) {
  sysinfo(si);
  unsigned long long unit = si->mem_unit ? si->mem_unit : 1;
  unsigned long long total = (unsigned long long)si->totalram * unit, avail = (unsigned long long)si->freeram * unit;
  unsigned long long tswap = (unsigned long long)si->totalswap * unit, fswap = (unsigned long long)si->freeswap * unit;
  const struct hier *m = hier_of("memory");
  if (m && m->guest[0]) {
    char cg[1024], best[1600] = "";
    caller_cgroup(pid, m, cg, sizeof cg);
    unsigned long long lim_min = total, free_min = avail, sw_min = tswap, swfree_min = fswap;
    for (int level = 0;; level++) {
      if (level == MAX_LEVELS) snprintf(cg, sizeof cg, "%s", m->guest);
      char dir[1600];
      snprintf(dir, sizeof dir, "%s%s", m->mnt, cg);
      long long lim = cg_num(dir, m->v2 ? "memory.max" : "memory.limit_in_bytes"), use = 0;
      if (lim >= 0) {
        use = cg_num(dir, m->v2 ? "memory.current" : "memory.usage_in_bytes");
        if (use < 0) use = 0;
        if ((unsigned long long)lim < lim_min) {
          lim_min = (unsigned long long)lim;
          snprintf(best, sizeof best, "%s", dir);
        }
        free_min = min_ull(free_min, use < lim ? (unsigned long long)(lim - use) : 0);
      }
      long long sl = -1, su = 0;
      if (m->v2) {
        sl = cg_num(dir, "memory.swap.max");
        if (sl >= 0) su = cg_num(dir, "memory.swap.current");
      } else if (lim >= 0) { /* v1 counts memory and swap together in memsw */
        long long ms = cg_num(dir, "memory.memsw.limit_in_bytes");
        if (ms >= 0) {
          sl = ms > lim ? ms - lim : 0;
          long long mu = cg_num(dir, "memory.memsw.usage_in_bytes");
          su = mu > use ? mu - use : 0;
        }
      }
      if (sl >= 0) {
        if (su < 0) su = 0;
        sw_min = min_ull(sw_min, (unsigned long long)sl);
        swfree_min = min_ull(swfree_min, su < sl ? (unsigned long long)(sl - su) : 0);
      }
      if (!strcmp(cg, m->guest)) break;
      char *slash = strrchr(cg, '/');
      if (!slash) break;
      if (slash == cg) slash[1] = 0;
      else *slash = 0;
    }
    if (best[0]) {
      si->totalram = lim_min / unit;
      si->freeram = min_ull(free_min, lim_min) / unit;
      si->bufferram = 0;
      long long shmem = stat_key(best, "memory.stat", m->v2 ? "shmem" : "total_shmem");
      if (shmem >= 0) si->sharedram = min_ull((unsigned long long)shmem, lim_min) / unit;
    }
    if (sw_min < tswap) {
      si->totalswap = sw_min / unit;
      si->freeswap = min_ull(swfree_min, sw_min) / unit;
    }
  }
  const struct hier *p = hier_of("pids");
  if (p && p->guest[0]) {
    char dir[1600];
    snprintf(dir, sizeof dir, "%s%s", p->mnt, p->guest);
    long long n = cg_num(dir, "pids.current");
    if (n >= 0) si->procs = (unsigned short)(n > 65535 ? 65535 : n);
  }
  if (init_start >= 0 && init_start <= si->uptime) si->uptime -= init_start;
}

/* The init's start (field 22 of its stat, in clock ticks), in seconds after boot. */
long long read_start(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  if (read_small(path, buf, sizeof buf) <= 0) return -1;
  char *p = strrchr(buf, ')');
  for (int f = 2; p && f < 22; f++) p = strchr(p + 1, ' ');
  return p ? strtoll(p + 1, NULL, 10) / sysconf(_SC_CLK_TCK) : -1;
}

/* The i386 and arm kernels' struct sysinfo (compat_sysinfo): what a 32-bit caller reads. */
struct sysinfo32 {
  int32_t uptime;
  uint32_t loads[3];
  uint32_t totalram, freeram, sharedram, bufferram, totalswap, freeswap;
  uint16_t procs, pad;
  uint32_t totalhigh, freehigh, mem_unit;
  char f[8];
};

/* As the kernel does for 32-bit callers: sizes in a unit large enough that they fit 32 bits. */
static void to_sysinfo32(const struct sysinfo *s, struct sysinfo32 *c) {
  memset(c, 0, sizeof *c);
  unsigned long long unit = s->mem_unit ? s->mem_unit : 1;
  unsigned long long b[6] = {s->totalram * unit, s->freeram * unit, s->sharedram * unit,
                             s->bufferram * unit, s->totalswap * unit, s->freeswap * unit};
  unsigned long long most = 0;
  for (int i = 0; i < 6; i++) most = b[i] > most ? b[i] : most;
  uint32_t u = 1;
  while (most / u > 0xffffffffULL && u < (1U << 30)) u <<= 1;
  c->uptime = s->uptime > 0x7fffffff ? 0x7fffffff : (int32_t)s->uptime;
  for (int i = 0; i < 3; i++) c->loads[i] = (uint32_t)s->loads[i];
  c->totalram = (uint32_t)min_ull(b[0] / u, 0xffffffffULL);
  c->freeram = (uint32_t)min_ull(b[1] / u, 0xffffffffULL);
  c->sharedram = (uint32_t)min_ull(b[2] / u, 0xffffffffULL);
  c->bufferram = (uint32_t)min_ull(b[3] / u, 0xffffffffULL);
  c->totalswap = (uint32_t)min_ull(b[4] / u, 0xffffffffULL);
  c->freeswap = (uint32_t)min_ull(b[5] / u, 0xffffffffULL);
  c->procs = s->procs;
  c->mem_unit = u;
}

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#define COMPAT_ARCH AUDIT_ARCH_I386
#define COMPAT_SYSINFO 116
#define X32_BIT 0x40000000
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#define COMPAT_ARCH AUDIT_ARCH_ARM
#define COMPAT_SYSINFO 116
#define X32_BIT 0
#endif

/* Answer one notification from a guest's seccomp filter (it only ever asks about sysinfo, from
 * any of the filter's architectures: a 32-bit caller gets the 32-bit layout, never the host's). */
int handle_notify(int fd) {
  static struct seccomp_notif_sizes sizes;
  if (!sizes.seccomp_notif && syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0) return -1;
  char reqbuf[1024], respbuf[1024];
  if (sizes.seccomp_notif > sizeof reqbuf || sizes.seccomp_notif_resp > sizeof respbuf) return -1;
  struct seccomp_notif *req = (struct seccomp_notif *)reqbuf;
  struct seccomp_notif_resp *resp = (struct seccomp_notif_resp *)respbuf;
  memset(reqbuf, 0, sizeof reqbuf);
  memset(respbuf, 0, sizeof respbuf);
  if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, req) < 0) return errno == EINTR || errno == ENOENT ? 0 : -1;
  resp->id = req->id;
  int native = req->data.arch == NATIVE_ARCH &&
               (req->data.nr == SYS_sysinfo || (X32_BIT && req->data.nr == (SYS_sysinfo | X32_BIT)));
  int compat = req->data.arch == COMPAT_ARCH && req->data.nr == COMPAT_SYSINFO;
  if (native || compat) {
    struct sysinfo si;
    struct sysinfo32 si32;
    guest_sysinfo((pid_t)req->pid, &si);
    const void *data = &si;
    size_t size = sizeof si;
    uint64_t at = req->data.args[0];
    if (compat) {
      to_sysinfo32(&si, &si32);
      data = &si32;
      size = sizeof si32;
      at &= 0xffffffffULL;
    }
    char mem[64];
    snprintf(mem, sizeof mem, "/proc/%u/mem", req->pid);
    int mfd = open(mem, O_RDWR | O_CLOEXEC);
    /* Check the caller still waits (its PID was not reused) before writing to its memory. */
    if (ioctl(fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &req->id) < 0) {
      if (mfd >= 0) close(mfd);
      return 0;
    }
    if (mfd < 0 || pwrite(mfd, data, size, (off_t)at) != (ssize_t)size) resp->error = -EFAULT;
    if (mfd >= 0) close(mfd);
  } else {
    resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
  }
  if (ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, resp) < 0 && errno != ENOENT) return -1;
  return 0;
}
