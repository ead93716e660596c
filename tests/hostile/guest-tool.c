/*
 * jaula-hostile-tool: what a hostile guest does to its host in tests/hostile.test.ts. Copied
 * into the test guests (static: it needs nothing from their trees). Each action prints one line.
 *
 *   xattr-pad FILE N       sets N user.* xattrs with long names on FILE (their list passes
 *                          64 KiB, the most listxattr(2) returns: E2BIG), then user.hidden
 *                          and security.capability: what a guest hides from hashify
 *   xattrs FILE            the xattr names of FILE (or "E2BIG")
 *   sysinfo                sysinfo(2) as a 64-bit caller: "ram=B free=B swap=B procs=N up=S"
 *   sysinfo32              the same through the 32-bit system call (int 0x80, nr 116)
 *   sysinfo-loop SECONDS   calls sysinfo(2) for SECONDS: "calls=N ms=M"
 *   wait-sysinfo FILE      waits until FILE exists, then does what "sysinfo" does
 * and on the host side, against the supervisor's sockets:
 *   send-fd SOCKET FILE    connects to SOCKET and passes an open FILE (SCM_RIGHTS)
 *   connect SOCKET         connects, sends nothing, and says when the other side closed
 *                          ("closed after MS ms") or that it did not within 10 s ("held")
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

static int xattr_pad(const char *file, int n) {
  char name[256], pad[201];
  memset(pad, 'p', 200);
  pad[200] = 0;
  for (int i = 0; i < n; i++) {
    snprintf(name, sizeof name, "user.%04d.%s", i, pad);
    if (setxattr(file, name, "1", 1, 0) < 0) {
      printf("setxattr %d: %s\n", i, strerror(errno));
      return 1;
    }
  }
  if (setxattr(file, "user.hidden", "smuggled", 8, 0) < 0) {
    printf("setxattr user.hidden: %s\n", strerror(errno));
    return 1;
  }
  /* VFS_CAP_REVISION_2: CAP_NET_RAW (13) permitted and effective. */
  uint32_t cap[5] = {0x02000000 | 1, 1u << 13, 0, 0, 0};
  int r = setxattr(file, "security.capability", cap, sizeof cap, 0);
  printf("padded %d, capability %s\n", n, r == 0 ? "set" : strerror(errno));
  return 0;
}

static int xattrs(const char *file) {
  static char list[65536];
  ssize_t n = listxattr(file, list, sizeof list);
  if (n < 0) {
    printf("%s\n", errno == E2BIG ? "E2BIG" : strerror(errno));
    return 0;
  }
  int count = 0;
  for (char *k = list; k < list + n; k += strlen(k) + 1) count++;
  printf("count=%d", count);
  for (char *k = list; k < list + n; k += strlen(k) + 1)
    if (strncmp(k, "user.0", 6)) printf(" %s", k);
  printf("\n");
  return 0;
}

static void print_info(unsigned long long unit, unsigned long long ram, unsigned long long freeram,
                       unsigned long long swap, unsigned procs, long long up) {
  printf("ram=%llu free=%llu swap=%llu procs=%u up=%lld\n", ram * unit, freeram * unit, swap * unit, procs, up);
}

static int do_sysinfo(void) {
  struct sysinfo si;
  if (sysinfo(&si) < 0) {
    printf("sysinfo: %s\n", strerror(errno));
    return 1;
  }
  print_info(si.mem_unit ? si.mem_unit : 1, si.totalram, si.freeram, si.totalswap, si.procs, si.uptime);
  return 0;
}

/* The i386 kernel's struct sysinfo (compat_sysinfo). */
struct sysinfo32 {
  int32_t uptime;
  uint32_t loads[3];
  uint32_t totalram, freeram, sharedram, bufferram, totalswap, freeswap;
  uint16_t procs, pad;
  uint32_t totalhigh, freehigh, mem_unit;
  char f[8];
};

static int do_sysinfo32(void) {
#if defined(__x86_64__)
  /* int 0x80 takes 32-bit pointers: the buffer must lie below 4 GiB. */
  struct sysinfo32 *si = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
  if (si == MAP_FAILED) {
    printf("mmap: %s\n", strerror(errno));
    return 1;
  }
  memset(si, 0, sizeof *si);
  long ret = 116; /* __NR_sysinfo on i386 */
  __asm__ volatile("int $0x80" : "+a"(ret) : "b"((uint32_t)(uintptr_t)si) : "memory");
  if (ret < 0) {
    printf("sysinfo32: %s\n", strerror((int)-ret));
    return 1;
  }
  print_info(si->mem_unit ? si->mem_unit : 1, si->totalram, si->freeram, si->totalswap, si->procs, si->uptime);
  return 0;
#else
  printf("sysinfo32: not an x86-64 build\n");
  return 1;
#endif
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000 + (double)ts.tv_nsec / 1e6;
}

static int sysinfo_loop(double seconds) {
  struct sysinfo si;
  double t0 = now_ms(), t = t0;
  unsigned long calls = 0;
  while (t - t0 < seconds * 1000) {
    if (sysinfo(&si) < 0) {
      printf("sysinfo: %s\n", strerror(errno));
      return 1;
    }
    calls++;
    t = now_ms();
  }
  printf("calls=%lu ms=%.0f\n", calls, t - t0);
  return 0;
}

static int connect_to(const char *path) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  if (s < 0 || connect(s, (struct sockaddr *)&addr, sizeof addr) < 0) {
    printf("connect: %s\n", strerror(errno));
    return -1;
  }
  return s;
}

static int send_fd(const char *path, const char *file) {
  int s = connect_to(path), fd = open(file, O_RDONLY);
  if (s < 0 || fd < 0) return 1;
  char byte = 0;
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } control;
  memset(&control, 0, sizeof control);
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  if (sendmsg(s, &msg, 0) < 0) {
    printf("sendmsg: %s\n", strerror(errno));
    return 1;
  }
  printf("sent\n");
  return 0;
}

static int hold(const char *path) {
  int s = connect_to(path);
  if (s < 0) return 1;
  double t0 = now_ms();
  struct pollfd p = {s, POLLIN, 0};
  char c;
  if (poll(&p, 1, 10000) == 1 && read(s, &c, 1) <= 0) printf("closed after %.0f ms\n", now_ms() - t0);
  else printf("held\n");
  return 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 4 && !strcmp(argv[1], "xattr-pad")) return xattr_pad(argv[2], atoi(argv[3]));
  if (argc == 3 && !strcmp(argv[1], "xattrs")) return xattrs(argv[2]);
  if (argc == 2 && !strcmp(argv[1], "sysinfo")) return do_sysinfo();
  if (argc == 2 && !strcmp(argv[1], "sysinfo32")) return do_sysinfo32();
  if (argc == 3 && !strcmp(argv[1], "sysinfo-loop")) return sysinfo_loop(atof(argv[2]));
  if (argc == 3 && !strcmp(argv[1], "wait-sysinfo")) {
    struct stat st;
    struct timespec ts = {0, 20 * 1000 * 1000};
    while (stat(argv[2], &st) < 0) nanosleep(&ts, NULL);
    return do_sysinfo();
  }
  if (argc == 4 && !strcmp(argv[1], "send-fd")) return send_fd(argv[2], argv[3]);
  if (argc == 3 && !strcmp(argv[1], "connect")) return hold(argv[2]);
  fprintf(stderr, "usage: jaula-hostile-tool xattr-pad FILE N | xattrs FILE | sysinfo | sysinfo32 | "
                  "sysinfo-loop SECONDS | wait-sysinfo FILE | send-fd SOCKET FILE | connect SOCKET\n");
  return 2;
}
