/*
 * jaula-helper: the small, long-lived and privileged parts of jaula that must not be Node.js.
 *
 *   jaula-helper shim --dir DIR --id ID [--log-max BYTES] --runtime ARGV... --exit ARGV...
 *       The per-guest supervisor (like conmon). It makes itself a child subreaper, runs
 *       `ARGV... run --detach --bundle . --pid-file ../init.pid --console-socket ../console.sock ID`
 *       in DIR/bundle (one runtime call: create and start),
 *       receives the guest's console (a pty master) and copies it to DIR/console.log, tells its
 *       parent on fd 3 "ok PID" or "err MESSAGE", waits for the guest's init to end, writes
 *       DIR/exit atomically and then executes the exit command (jaula's cleanup).
 *       It holds no guest state in memory: a few hundred kilobytes per running guest.
 *       Console clients (jaula console) connect to DIR/attach.sock: they get the console's
 *       output and type on it, up to 8 at once.
 *       With --sysinfo it also listens on DIR/seccomp.sock for the seccomp notification fds
 *       of the guest's processes (the spec's listenerPath) and answers their sysinfo(2) calls
 *       with the guest's own view: its memory and swap limits and use, its tasks, its uptime
 *       (busybox free and uptime call sysinfo(2); lxcfs covers the /proc files).
 *
 *   jaula-helper netns-move NSPATH IFNAME NEWNAME
 *       Moves the host's network device IFNAME into the network namespace bound at NSPATH,
 *       renamed NEWNAME (one rtnetlink request: IFLA_NET_NS_FD + IFLA_IFNAME). iproute2 can only
 *       name a namespace by pid or by a name under /var/run/netns.
 *
 *   jaula-helper userns-create PATH HOSTID SIZE
 *       Creates a user namespace mapping IDs 0..SIZE-1 inside to HOSTID..HOSTID+SIZE-1 (uids and
 *       gids) and binds it to PATH, so the guest, its network namespace and its idmapped root all
 *       use that one namespace.
 *
 *   jaula-helper netns-create PATH [--userns USERNS] [--ping GID-LOW GID-HIGH]
 *       Creates a network namespace bound to PATH, owned by the user namespace bound at USERNS
 *       (an unprivileged guest's), else by the host's; loopback up; optionally letting those gids
 *       use ICMP echo sockets (ping without raw sockets).
 *
 *   jaula-helper idmap-mount [--recursive] [--keep-flags] HOSTID SIZE SRC DST [SRC DST]...
 *       Bind-mounts each SRC on its DST, idmapped 0..SIZE-1 -> HOSTID..: a file owned by uid 0
 *       on disk belongs to the guest's root, which is an unprivileged uid on the host. One
 *       process and one user namespace for all of a guest's layers (and its fstab binds;
 *       --recursive: with the mounts below each SRC, as an rbind). The view is the guest's own:
 *       nosuid and nodev of jaula's storage mounts (the pool, quota images) are cleared on it
 *       (it lies behind the guest's barrier directory); --keep-flags keeps them (an fstab bind
 *       of the host's keeps the host's nosuid and nodev).
 *
 *   jaula-helper pty-exec ROWS COLS SOCKET -- ARGV...
 *       An interactive session on a pty made inside a guest, for jaulad's consoles: runs ARGV
 *       (`runtime exec --tty --console-socket SOCKET ...`), receives the pty master over SOCKET,
 *       copies fd 0 to it and it to fd 1, applies "ROWS COLS" lines read on fd 3 as window sizes
 *       (the guest's foreground job gets SIGWINCH), and exits with the runtime's status. The
 *       guest's programs hold only the guest's own pty, never one of the host.
 *
 *   jaula-helper notify SOCKET NAME INSTANCE -- FALLBACK...
 *       The shim's exit command: tells jaulad (on SOCKET) that the guest's init ended, so that
 *       jaulad records it and cleans up itself; runs FALLBACK (`jaula __exited`) if it does not.
 *
 *   jaula-helper private-cgroup2 -- ARGV...
 *       Runs ARGV in a private mount namespace where /sys/fs/cgroup/unified is unmounted, so
 *       crun accepts a hybrid cgroup host (it refuses "cgroups in hybrid mode").
 *
 * Statically linked: it does not depend on the host's or any guest's libraries.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <termios.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/seccomp.h>
#include <sys/mount.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/sysinfo.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SYNC_FD 3

static void die(const char *fmt, ...) {
  va_list ap;
  char buf[1024];
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(stderr, "jaula-helper: %s\n", buf);
  dprintf(SYNC_FD, "err %s\n", buf);
  exit(1);
}

/* ---- console log ---------------------------------------------------------------------------- */

static int log_fd = -1;
static long long log_size = 0, log_max = 1 << 20;

static void log_open(void) {
  log_fd = open("console.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  struct stat st;
  log_size = (log_fd >= 0 && fstat(log_fd, &st) == 0) ? st.st_size : 0;
}

static void log_write(const char *buf, ssize_t n) {
  if (log_fd < 0) return;
  if (log_size + n > log_max) { /* keep one previous file: console.log.1 */
    close(log_fd);
    rename("console.log", "console.log.1");
    log_open();
    if (log_fd < 0) return;
  }
  ssize_t w = write(log_fd, buf, (size_t)n);
  if (w > 0) log_size += w;
}

/* ---- console clients: jaula console, attached on DIR/attach.sock ------------------------------- */

/*
 * Whoever connects to attach.sock (root only: the socket is 0600 in jaula's run directory) gets
 * the console's output from then on, and what it sends is typed on the console. Neither side
 * may stall the supervisor: a client that does not read loses output (a slow terminal misses
 * lines, as on a serial console), input the guest does not read is dropped as a full tty's is.
 */
#define MAX_CLIENTS 8
static int clients[MAX_CLIENTS];
static int nclients = 0;

static void client_drop(int i) {
  close(clients[i]);
  clients[i] = clients[--nclients];
}

static void clients_send(const char *buf, ssize_t n) {
  for (int i = nclients - 1; i >= 0; i--) {
    ssize_t w = send(clients[i], buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN && errno != EINTR) client_drop(i);
  }
}

static int attach_listen(void) {
  unlink("attach.sock");
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  strcpy(addr.sun_path, "attach.sock");
  mode_t old = umask(0077);
  int ok = fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 && listen(fd, MAX_CLIENTS) == 0;
  umask(old);
  if (!ok && fd >= 0) close(fd);
  return ok ? fd : -1;
}

static void attach_accept(int lsock) {
  int c;
  while ((c = accept4(lsock, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
    if (nclients < MAX_CLIENTS) clients[nclients++] = c;
    else close(c);
  }
}

/* Input of client i to the console; returns -1 when the client is gone (and dropped). */
static int client_input(int i, int master) {
  char buf[4096];
  ssize_t n = read(clients[i], buf, sizeof buf);
  if (n > 0) {
    if (master >= 0 && write(master, buf, (size_t)n) < 0) { /* a full tty: dropped */
    }
    return 0;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
  client_drop(i);
  return -1;
}

/* Returns 0 while the master is open, -1 once it reached EOF/EIO (no slave left). */
static int drain(int master) {
  char buf[16384];
  for (;;) {
    ssize_t n = read(master, buf, sizeof buf);
    if (n > 0) {
      log_write(buf, n);
      if (nclients) clients_send(buf, n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return 0;
    return -1;
  }
}

/* ---- receiving the console fd over the console socket ------------------------------------------ */

static int recv_fd(int sock) {
  char data[256];
  struct iovec iov = {.iov_base = data, .iov_len = sizeof data};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } control;
  struct msghdr msg = {0};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;
  ssize_t n;
  do n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return -1;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      int fd;
      memcpy(&fd, CMSG_DATA(c), sizeof fd);
      return fd;
    }
  }
  errno = EBADMSG;
  return -1;
}

/* ---- sysinfo(2) as the guest sees it ---------------------------------------------------------- */

#define MAX_NOTIFY 64

/* Read a small file into buf (NUL-terminated); returns its length or -1. */
static ssize_t read_small(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t len = 0;
  ssize_t n;
  while (len < size - 1 && (n = read(fd, buf + len, size - 1 - len)) > 0) len += (size_t)n;
  close(fd);
  buf[len] = 0;
  return (ssize_t)len;
}

/* A number from a cgroup file; -1 when absent; "max" or v1's huge values count as unlimited (-2). */
static long long cg_num(const char *dir, const char *name) {
  char path[4200], buf[64];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (read_small(path, buf, sizeof buf) < 0) return -1;
  if (!strncmp(buf, "max", 3)) return -2;
  long long v = strtoll(buf, NULL, 10);
  return v >= (1LL << 62) || v < 0 ? -2 : v;
}

/* The mount point of the v1 hierarchy with `ctrl`, or of cgroup2 when ctrl is NULL. */
static int cgroup_mount(const char *ctrl, char *out, size_t size) {
  static char info[65536];
  if (read_small("/proc/self/mountinfo", info, sizeof info) < 0) return -1;
  char *save;
  for (char *line = strtok_r(info, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char *dash = strstr(line, " - ");
    if (!dash) continue;
    char type[32] = "", opts[512] = "", point[1024] = "";
    if (sscanf(dash + 3, "%31s %*s %511s", type, opts) < 1) continue;
    if (sscanf(line, "%*s %*s %*s %*s %1023s", point) != 1) continue;
    if (ctrl == NULL ? !strcmp(type, "cgroup2") : !strcmp(type, "cgroup")) {
      if (ctrl) {
        int found = 0;
        char *p = opts;
        size_t cl = strlen(ctrl);
        while (p && *p) {
          if (!strncmp(p, ctrl, cl) && (p[cl] == ',' || p[cl] == 0)) found = 1;
          p = strchr(p, ',');
          if (p) p++;
        }
        if (!found) continue;
      }
      snprintf(out, size, "%s", point);
      return 0;
    }
  }
  return -1;
}

/* The guest's cgroup directory of `ctrl` (v1) or its v2 directory, from /proc/PID/cgroup. */
static int guest_cgroup(pid_t pid, const char *ctrl, char *out, size_t size) {
  char path[64], buf[8192], mnt[1024];
  snprintf(path, sizeof path, "/proc/%d/cgroup", pid);
  if (read_small(path, buf, sizeof buf) < 0) return -1;
  int v1 = cgroup_mount(ctrl, mnt, sizeof mnt) == 0;
  if (!v1 && cgroup_mount(NULL, mnt, sizeof mnt) < 0) return -1;
  char *save;
  for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
    if (!b) continue;
    *b = 0;
    const char *ctrls = a + 1;
    int match = 0;
    if (!v1) match = *ctrls == 0;
    else {
      size_t cl = strlen(ctrl);
      for (const char *p = ctrls; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (!strncmp(p, ctrl, cl) && (p[cl] == ',' || p[cl] == 0)) match = 1;
    }
    if (match) {
      snprintf(out, size, "%s%s", mnt, b + 1);
      return v1 ? 1 : 2;
    }
  }
  return -1;
}

static long long stat_key(const char *dir, const char *file, const char *key) {
  char path[4200], buf[8192];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  if (read_small(path, buf, sizeof buf) < 0) return -1;
  size_t kl = strlen(key);
  char *save;
  for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
    if (!strncmp(line, key, kl) && line[kl] == ' ') return strtoll(line + kl + 1, NULL, 10);
  return -1;
}

/* The host's sysinfo, narrowed to the guest of process `pid` whose init is `init_pid`. */
static void guest_sysinfo(pid_t pid, pid_t init_pid, struct sysinfo *si) {
  sysinfo(si);
  unsigned long long unit = si->mem_unit ? si->mem_unit : 1;
  unsigned long long total = (unsigned long long)si->totalram * unit;
  unsigned long long tswap = (unsigned long long)si->totalswap * unit;
  char dir[4096];
  int v = guest_cgroup(pid, "memory", dir, sizeof dir);
  if (v > 0) {
    long long limit = cg_num(dir, v == 1 ? "memory.limit_in_bytes" : "memory.max");
    long long usage = cg_num(dir, v == 1 ? "memory.usage_in_bytes" : "memory.current");
    long long shmem = stat_key(dir, "memory.stat", v == 1 ? "total_shmem" : "shmem");
    if (limit > 0 && (unsigned long long)limit < total) {
      total = (unsigned long long)limit;
      si->totalram = total / unit;
      si->freeram = usage >= 0 && (unsigned long long)usage < total ? (total - (unsigned long long)usage) / unit : 0;
      si->bufferram = 0;
      if (shmem >= 0) si->sharedram = (unsigned long long)shmem / unit;
    }
    long long sw_limit = -1, sw_used = -1;
    if (v == 1) {
      long long memsw = cg_num(dir, "memory.memsw.limit_in_bytes");
      long long memsw_use = cg_num(dir, "memory.memsw.usage_in_bytes");
      if (memsw >= 0 && limit >= 0) sw_limit = memsw - limit;
      if (memsw_use >= 0 && usage >= 0) sw_used = memsw_use > usage ? memsw_use - usage : 0;
    } else {
      sw_limit = cg_num(dir, "memory.swap.max");
      sw_used = cg_num(dir, "memory.swap.current");
    }
    if (sw_limit >= 0 && (unsigned long long)sw_limit < tswap) {
      si->totalswap = (unsigned long long)sw_limit / unit;
      unsigned long long used = sw_used > 0 ? (unsigned long long)sw_used : 0;
      si->freeswap = used < (unsigned long long)sw_limit ? ((unsigned long long)sw_limit - used) / unit : 0;
    }
  }
  v = guest_cgroup(pid, "pids", dir, sizeof dir);
  if (v > 0) {
    long long n = cg_num(dir, "pids.current");
    if (n >= 0) si->procs = (unsigned short)(n > 65535 ? 65535 : n);
  }
  /* Uptime: since the guest's init started (field 22 of its stat, in clock ticks). */
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", init_pid);
  if (read_small(path, buf, sizeof buf) > 0) {
    char *p = strrchr(buf, ')');
    for (int f = 2; p && f < 22; f++) p = strchr(p + 1, ' ');
    if (p) {
      long long start = strtoll(p + 1, NULL, 10) / sysconf(_SC_CLK_TCK);
      if (start <= si->uptime) si->uptime -= start;
    }
  }
}

/* Answer one notification from a guest's seccomp filter (it only ever asks about sysinfo). */
static int handle_notify(int fd, pid_t init_pid) {
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
  if (req->data.nr == SYS_sysinfo) {
    struct sysinfo si;
    guest_sysinfo((pid_t)req->pid, init_pid, &si);
    char mem[64];
    snprintf(mem, sizeof mem, "/proc/%u/mem", req->pid);
    int mfd = open(mem, O_RDWR | O_CLOEXEC);
    /* Check the caller still waits (its PID was not reused) before writing to its memory. */
    if (ioctl(fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &req->id) < 0) {
      if (mfd >= 0) close(mfd);
      return 0;
    }
    if (mfd < 0 || pwrite(mfd, &si, sizeof si, (off_t)req->data.args[0]) != (ssize_t)sizeof si) resp->error = -EFAULT;
    if (mfd >= 0) close(mfd);
  } else {
    resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
  }
  if (ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, resp) < 0 && errno != ENOENT) return -1;
  return 0;
}

/* ---- pty-exec: an interactive session for jaulad --------------------------------------------- */

static void set_winsize(int fd, const char *rows, const char *cols) {
  struct winsize ws = {0};
  ws.ws_row = (unsigned short)atoi(rows);
  ws.ws_col = (unsigned short)atoi(cols);
  if (ws.ws_row && ws.ws_col) ioctl(fd, TIOCSWINSZ, &ws);
}

static int write_all(int fd, const char *buf, ssize_t n) {
  while (n > 0) {
    ssize_t w = write(fd, buf, (size_t)n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) {
      struct pollfd p = {fd, POLLOUT, 0};
      poll(&p, 1, 1000);
      continue;
    }
    if (w <= 0) return -1;
    buf += w;
    n -= w;
  }
  return 0;
}

static int pty_exec(int argc, char **argv) {
  if (argc < 5 || strcmp(argv[3], "--")) {
    fprintf(stderr, "jaula-helper: usage: pty-exec ROWS COLS SOCKET -- ARGV...\n");
    return 2;
  }
  const char *rows = argv[0], *cols = argv[1], *sockpath = argv[2];
  char **args = argv + 4;
  signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  unlink(sockpath);
  int lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(sockpath) >= sizeof addr.sun_path) {
    fprintf(stderr, "jaula-helper: pty-exec: socket path too long\n");
    return 1;
  }
  strcpy(addr.sun_path, sockpath);
  if (sfd < 0 || lsock < 0 || bind(lsock, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lsock, 1) < 0) {
    fprintf(stderr, "jaula-helper: pty-exec: console socket: %s\n", strerror(errno));
    return 1;
  }
  pid_t rt = fork();
  if (rt < 0) return 1;
  if (rt == 0) {
    sigprocmask(SIG_UNBLOCK, &mask, NULL);
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    syscall(SYS_close_range, 3, ~0U, 0);
    execvp(args[0], args);
    fprintf(stderr, "jaula-helper: cannot execute \"%s\": %s\n", args[0], strerror(errno));
    _exit(127);
  }
  int master = -1, status = -1, in_open = 1, ctl_open = fcntl(3, F_GETFD) >= 0;
  char ctl[256];
  size_t ctl_len = 0;
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  while (status < 0) {
    struct pollfd p[5] = {{sfd, POLLIN, 0},
                          {master < 0 ? lsock : -1, POLLIN, 0},
                          {master, POLLIN, 0},
                          {master >= 0 && in_open ? 0 : -1, POLLIN, 0},
                          {master >= 0 && ctl_open ? 3 : -1, POLLIN, 0}};
    if (poll(p, 5, -1) < 0 && errno != EINTR) break;
    if (p[1].revents & POLLIN) {
      int c = accept4(lsock, NULL, NULL, SOCK_CLOEXEC);
      if (c >= 0) {
        master = recv_fd(c);
        close(c);
        if (master >= 0) set_winsize(master, rows, cols);
      }
    }
    if (master >= 0 && p[2].revents) {
      char buf[16384];
      ssize_t n = read(master, buf, sizeof buf);
      if (n > 0) write_all(1, buf, n);
      else if (n < 0 && errno != EINTR && errno != EAGAIN) {
        close(master);
        master = -1;
      } else if (n == 0) {
        close(master);
        master = -1;
      }
    }
    /* Window sizes before input: a resize sent before a command applies to that command. */
    if (master >= 0 && p[4].revents) {
      ssize_t n = read(3, ctl + ctl_len, sizeof ctl - 1 - ctl_len);
      if (n <= 0) ctl_open = 0;
      else {
        ctl_len += (size_t)n;
        ctl[ctl_len] = 0;
        char *nl;
        while ((nl = strchr(ctl, '\n'))) {
          *nl = 0;
          char r[16] = "", c[16] = "";
          if (sscanf(ctl, "%15s %15s", r, c) == 2) set_winsize(master, r, c);
          size_t used = (size_t)(nl - ctl) + 1;
          memmove(ctl, nl + 1, ctl_len - used + 1);
          ctl_len -= used;
        }
        if (ctl_len >= sizeof ctl - 1) ctl_len = 0;
      }
    }
    if (master >= 0 && p[3].revents) {
      char buf[16384];
      ssize_t n = read(0, buf, sizeof buf);
      if (n > 0) write_all(master, buf, n);
      else if (n == 0 || (errno != EINTR && errno != EAGAIN)) in_open = 0;
    }
    if (p[0].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) > 0) {
      }
      int st;
      pid_t w;
      while ((w = waitpid(-1, &st, WNOHANG)) > 0)
        if (w == rt) status = st;
    }
  }
  if (master >= 0) { /* what the session wrote last */
    char buf[16384];
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    ssize_t n;
    while ((n = read(master, buf, sizeof buf)) > 0) write_all(1, buf, n);
  }
  close(lsock);
  unlink(sockpath);
  if (status < 0) return 1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- shim ------------------------------------------------------------------------------------- */

static int shim(int argc, char **argv) {
  const char *dir = NULL, *id = NULL;
  char **runtime = NULL, **exitcmd = NULL;
  int nruntime = 0, want_sysinfo = 0;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
    else if (!strcmp(argv[i], "--id") && i + 1 < argc) id = argv[++i];
    else if (!strcmp(argv[i], "--log-max") && i + 1 < argc) log_max = atoll(argv[++i]);
    else if (!strcmp(argv[i], "--sysinfo")) want_sysinfo = 1;
    else if (!strcmp(argv[i], "--runtime")) {
      runtime = &argv[i + 1];
      while (i + 1 < argc && strcmp(argv[i + 1], "--exit")) i++, nruntime++;
    } else if (!strcmp(argv[i], "--exit")) {
      exitcmd = &argv[i + 1];
      break;
    } else die("shim: unknown argument \"%s\"", argv[i]);
  }
  if (!dir || !id || !runtime || !nruntime || !exitcmd || !exitcmd[0])
    die("shim: usage: shim --dir DIR --id ID [--sysinfo] --runtime ARGV... --exit ARGV...");
  /* Nothing jaula's caller left open may live on in the supervisor or the guest. */
  syscall(SYS_close_range, SYNC_FD + 1, ~0U, 0);
  fcntl(SYNC_FD, F_SETFD, FD_CLOEXEC); /* the runtime and the guest must not hold it */
  if (chdir(dir) < 0) die("shim: cannot enter \"%s\": %s", dir, strerror(errno));
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) die("shim: PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
  signal(SIGPIPE, SIG_IGN);

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) die("shim: signalfd: %s", strerror(errno));

  unlink("console.sock");
  int lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  strcpy(addr.sun_path, "console.sock");
  if (lsock < 0 || bind(lsock, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lsock, 1) < 0)
    die("shim: console socket: %s", strerror(errno));

  /* The runtime connects here with the seccomp notification fd of each process it starts. */
  int nsock = -1;
  if (want_sysinfo) {
    unlink("seccomp.sock");
    struct sockaddr_un naddr = {.sun_family = AF_UNIX};
    strcpy(naddr.sun_path, "seccomp.sock");
    nsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (nsock < 0 || bind(nsock, (struct sockaddr *)&naddr, sizeof naddr) < 0 || listen(nsock, 16) < 0)
      die("shim: seccomp socket: %s", strerror(errno));
  }

  int errpipe[2];
  if (pipe2(errpipe, O_CLOEXEC) < 0) die("shim: pipe: %s", strerror(errno));

  /* runtime ... run --detach --bundle . --pid-file ../init.pid --console-socket ../console.sock ID */
  char **args = calloc((size_t)nruntime + 10, sizeof *args);
  int k = 0;
  for (int i = 0; i < nruntime; i++) args[k++] = runtime[i];
  args[k++] = "run";
  args[k++] = "--detach";
  args[k++] = "--bundle"; /* the runtime runs in DIR/bundle: runc changes into the bundle */
  args[k++] = ".";
  args[k++] = "--pid-file";
  args[k++] = "../init.pid";
  args[k++] = "--console-socket";
  args[k++] = "../console.sock";
  args[k++] = (char *)id;
  args[k] = NULL;

  pid_t rt = fork();
  if (rt < 0) die("shim: fork: %s", strerror(errno));
  if (rt == 0) {
    sigprocmask(SIG_UNBLOCK, &mask, NULL);
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(errpipe[1], 1);
    dup2(errpipe[1], 2);
    if (chdir("bundle") < 0) {
      dprintf(2, "no bundle directory: %s", strerror(errno));
      _exit(127);
    }
    execvp(args[0], args);
    dprintf(2, "cannot execute \"%s\": %s", args[0], strerror(errno));
    _exit(127);
  }
  close(errpipe[1]);

  /* Wait for the runtime: collect its stderr, accept the console, reap it. The container's
   * process may hold the stderr pipe open until it executes the guest's init (crun does), so
   * the runtime's exit, not the pipe's end, ends this wait. */
  char errbuf[4096];
  size_t errlen = 0;
  int master = -1, peer = -1, rt_status = -1, errlive = 1;
  pid_t init_pid = -1;
  struct { pid_t pid; int status; } early[16];
  int nearly = 0;
  fcntl(errpipe[0], F_SETFL, O_NONBLOCK);
  /* The console is copied from the moment it arrives, while the runtime still works: a guest's
   * init may tcflush(TCOFLUSH) its console soon after its first lines (sysvinit does), and on a
   * pty that discards what the master has not read yet. */
  log_open();
  while (rt_status < 0 || master < 0) {
    struct pollfd p[4] = {{errlive ? errpipe[0] : -1, POLLIN, 0},
                          {master < 0 ? lsock : -1, POLLIN, 0},
                          {sfd, POLLIN, 0},
                          {master, POLLIN, 0}};
    if (poll(p, 4, rt_status < 0 ? -1 : 0) < 0 && errno != EINTR) die("shim: poll: %s", strerror(errno));
    if (master >= 0 && (p[3].revents & POLLIN)) drain(master);
    if (p[0].revents & POLLIN) {
      ssize_t n = read(errpipe[0], errbuf + errlen, sizeof errbuf - 1 - errlen);
      if (n > 0) errlen += (size_t)n;
    }
    if ((p[0].revents & (POLLHUP | POLLERR)) && !(p[0].revents & POLLIN)) errlive = 0;
    if (p[1].revents & POLLIN) {
      int c = accept4(lsock, NULL, NULL, SOCK_CLOEXEC);
      if (c >= 0) {
        master = recv_fd(c);
        close(c);
        if (master >= 0) {
          fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
          /* Hold the console's other end: while the guest's init closes and reopens
           * /dev/console no slave may be open, and the master would read EIO and be lost. */
          peer = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
        }
      }
    }
    if (p[2].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) > 0) {
      }
      int st;
      pid_t w;
      while ((w = waitpid(-1, &st, WNOHANG)) > 0)
        if (w == rt) rt_status = st;
        else if (nearly < (int)(sizeof early / sizeof early[0])) { /* the guest's init may end this soon */
          early[nearly].pid = w;
          early[nearly++].status = st;
        }
    }
    if (rt_status >= 0 && master < 0 && !(p[1].revents & POLLIN)) break; /* the runtime failed before sending a console */
  }
  for (;;) { /* what the runtime wrote before it ended */
    ssize_t n = read(errpipe[0], errbuf + errlen, sizeof errbuf - 1 - errlen);
    if (n <= 0) break;
    errlen += (size_t)n;
  }
  close(errpipe[0]);
  close(lsock);
  unlink("console.sock");
  errbuf[errlen] = 0;
  for (size_t i = 0; i < errlen; i++)
    if (errbuf[i] == '\n') errbuf[i] = ' ';
  if (!WIFEXITED(rt_status) || WEXITSTATUS(rt_status) != 0)
    die("%s run failed (status %d): %s", args[0], rt_status, errlen ? errbuf : "no message");

  FILE *pf = fopen("init.pid", "re");
  if (!pf || fscanf(pf, "%d", &init_pid) != 1 || init_pid <= 0)
    die("shim: runtime wrote no pid file");
  fclose(pf);
  dprintf(SYNC_FD, "ok %d\n", init_pid);
  close(SYNC_FD);

  /* Supervise: copy the console, reap children, notice the init's end, answer sysinfo(2),
   * serve console clients. */
  int status = -1;
  for (int i = 0; i < nearly; i++) /* reaped while the runtime was still at work */
    if (early[i].pid == init_pid) status = early[i].status;
  int notify[MAX_NOTIFY], nnotify = 0;
  int asock = master >= 0 ? attach_listen() : -1;
  while (status == -1) {
    struct pollfd p[4 + MAX_CLIENTS + MAX_NOTIFY] = {
        {sfd, POLLIN, 0}, {master, POLLIN, 0}, {nsock, POLLIN, 0}, {asock, POLLIN, 0}};
    int nc = nclients; /* (clients are dropped and added below: the poll's view is this) */
    for (int i = 0; i < nc; i++) p[4 + i] = (struct pollfd){clients[i], POLLIN, 0};
    for (int i = 0; i < nnotify; i++) p[4 + nc + i] = (struct pollfd){notify[i], POLLIN, 0};
    int n = poll(p, (nfds_t)(4 + nc + nnotify), -1);
    if (n < 0 && errno != EINTR) break;
    if (n < 0) continue;
    for (int i = nc - 1; i >= 0; i--)
      if (p[4 + i].revents) client_input(i, master);
    if (asock >= 0 && (p[3].revents & POLLIN)) attach_accept(asock);
    if (nsock >= 0 && (p[2].revents & POLLIN)) {
      int c = accept4(nsock, NULL, NULL, SOCK_CLOEXEC);
      if (c >= 0) {
        int fd = recv_fd(c);
        close(c);
        if (fd >= 0 && nnotify < MAX_NOTIFY) notify[nnotify++] = fd;
        else if (fd >= 0) close(fd); /* too many at once: those calls fail with ENOSYS */
      }
    }
    for (int i = nnotify - 1; i >= 0; i--) {
      short ev = p[4 + nc + i].revents;
      if ((ev & POLLIN) && handle_notify(notify[i], init_pid) == 0) continue;
      if (ev & (POLLHUP | POLLERR | POLLNVAL | POLLIN)) { /* its processes are gone */
        close(notify[i]);
        notify[i] = notify[--nnotify];
      }
    }
    if (master >= 0 && p[1].revents) {
      if (drain(master) < 0) {
        close(master);
        master = -1;
      }
    }
    if (p[0].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) > 0) {
      }
      int st;
      pid_t w;
      while ((w = waitpid(-1, &st, WNOHANG)) > 0)
        if (w == init_pid) status = st;
    }
  }
  for (int i = 0; i < nnotify; i++) close(notify[i]);
  if (nsock >= 0) {
    close(nsock);
    unlink("seccomp.sock");
  }
  if (asock >= 0) {
    close(asock);
    unlink("attach.sock");
  }
  if (peer >= 0) close(peer);
  if (master >= 0) {
    drain(master);
    close(master);
  }
  while (nclients) client_drop(nclients - 1); /* (their end of file: the guest stopped) */
  if (log_fd >= 0) close(log_fd);

  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  FILE *ef = fopen("exit.tmp", "we");
  if (ef) {
    fprintf(ef, "pid=%d\n", init_pid);
    if (WIFSIGNALED(status)) fprintf(ef, "signal=%d\n", WTERMSIG(status));
    else fprintf(ef, "code=%d\n", WEXITSTATUS(status));
    fprintf(ef, "time=%lld%03ld\n", (long long)now.tv_sec, now.tv_nsec / 1000000);
    fflush(ef);
    fsync(fileno(ef));
    fclose(ef);
    rename("exit.tmp", "exit");
  }
  sigprocmask(SIG_UNBLOCK, &mask, NULL);
  execvp(exitcmd[0], exitcmd);
  fprintf(stderr, "jaula-helper: cannot execute exit command \"%s\": %s\n", exitcmd[0], strerror(errno));
  return 1;
}

/* ---- notify: a guest's exit, handed to jaulad ---------------------------------------------------- */

/*
 * The shim's exit command when jaulad may run: POST /v1/guests/NAME/exited {"instance": ...} on
 * jaulad's socket, so that jaulad records the exit and cleans up in its own process (no Node.js
 * process per exit). Anything but "200" (no jaulad, an error, a timeout) runs FALLBACK instead
 * (`jaula __exited NAME INSTANCE`); both are idempotent.
 */
static int notify(int argc, char **argv) {
  if (argc < 5 || strcmp(argv[3], "--")) {
    fprintf(stderr, "jaula-helper: usage: notify SOCKET NAME INSTANCE -- FALLBACK...\n");
    return 2;
  }
  const char *sockpath = argv[0], *name = argv[1], *instance = argv[2];
  char **fallback = argv + 4;
  int ok = 0;
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && strlen(sockpath) < sizeof addr.sun_path) {
    strcpy(addr.sun_path, sockpath);
    struct timeval tv = {120, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    char body[256], req[768];
    int bl = snprintf(body, sizeof body, "{\"instance\":\"%s\"}", instance);
    int rl = snprintf(req, sizeof req,
                      "POST /v1/guests/%s/exited HTTP/1.1\r\nHost: jaulad\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                      name, bl, body);
    if (bl > 0 && bl < (int)sizeof body && rl > 0 && rl < (int)sizeof req &&
        connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0 && write_all(fd, req, rl) == 0) {
      char resp[32];
      size_t got = 0;
      while (got < 12) {
        ssize_t n = read(fd, resp + got, sizeof resp - 1 - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
      }
      ok = got >= 12 && !strncmp(resp, "HTTP/1.1 200", 12);
    }
  }
  if (fd >= 0) close(fd);
  if (ok) return 0;
  execvp(fallback[0], fallback);
  fprintf(stderr, "jaula-helper: cannot execute \"%s\": %s\n", fallback[0], strerror(errno));
  return 127;
}

/* ---- private-cgroup2 ---------------------------------------------------------------------------- */

static int private_cgroup2(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[0], "--")) {
    fprintf(stderr, "jaula-helper: usage: private-cgroup2 -- ARGV...\n");
    return 2;
  }
  if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
    fprintf(stderr, "jaula-helper: private mount namespace: %s\n", strerror(errno));
    return 1;
  }
  if (umount2("/sys/fs/cgroup/unified", MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT) {
    fprintf(stderr, "jaula-helper: unmount /sys/fs/cgroup/unified: %s\n", strerror(errno));
    return 1;
  }
  execvp(argv[1], &argv[1]);
  fprintf(stderr, "jaula-helper: cannot execute \"%s\": %s\n", argv[1], strerror(errno));
  return 127;
}

/* ---- netns-move -------------------------------------------------------------------------------- */

static void nla_put(struct nlmsghdr *h, unsigned short type, const void *data, unsigned short len) {
  struct rtattr *a = (struct rtattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));
  a->rta_type = type;
  a->rta_len = RTA_LENGTH(len);
  memcpy(RTA_DATA(a), data, len);
  h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
}

static int netns_move(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "jaula-helper: usage: netns-move NSPATH IFNAME NEWNAME\n");
    return 2;
  }
  int nsfd = open(argv[0], O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) {
    fprintf(stderr, "jaula-helper: network namespace \"%s\": %s\n", argv[0], strerror(errno));
    return 1;
  }
  unsigned idx = if_nametoindex(argv[1]);
  if (!idx) {
    fprintf(stderr, "jaula-helper: no network device \"%s\"\n", argv[1]);
    return 1;
  }
  if (strlen(argv[2]) >= IFNAMSIZ) {
    fprintf(stderr, "jaula-helper: interface name \"%s\" is too long\n", argv[2]);
    return 2;
  }
  struct {
    struct nlmsghdr h;
    struct ifinfomsg i;
    char attrs[256];
  } req;
  memset(&req, 0, sizeof req);
  req.h.nlmsg_len = NLMSG_LENGTH(sizeof req.i);
  req.h.nlmsg_type = RTM_NEWLINK;
  req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  req.i.ifi_family = AF_UNSPEC;
  req.i.ifi_index = (int)idx;
  nla_put(&req.h, IFLA_NET_NS_FD, &nsfd, sizeof nsfd);
  nla_put(&req.h, IFLA_IFNAME, argv[2], (unsigned short)(strlen(argv[2]) + 1));
  int sk = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  if (sk < 0 || sendto(sk, &req, req.h.nlmsg_len, 0, (struct sockaddr *)&sa, sizeof sa) < 0) {
    fprintf(stderr, "jaula-helper: netlink: %s\n", strerror(errno));
    return 1;
  }
  char buf[4096];
  ssize_t n = recv(sk, buf, sizeof buf, 0);
  struct nlmsghdr *r = (struct nlmsghdr *)buf;
  if (n < (ssize_t)sizeof *r || r->nlmsg_type != NLMSG_ERROR) {
    fprintf(stderr, "jaula-helper: netlink: unexpected answer\n");
    return 1;
  }
  int err = ((struct nlmsgerr *)NLMSG_DATA(r))->error;
  if (err) {
    fprintf(stderr, "jaula-helper: moving \"%s\" into \"%s\" as \"%s\": %s\n", argv[1], argv[0], argv[2], strerror(-err));
    return 1;
  }
  return 0;
}

/* ---- user namespaces, network namespaces, idmapped mounts -------------------------------------- */

#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef MOUNT_ATTR_NOSUID
#define MOUNT_ATTR_NOSUID 0x00000002
#define MOUNT_ATTR_NODEV 0x00000004
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif
struct jaula_mount_attr {
  unsigned long long attr_set, attr_clr, propagation, userns_fd;
};

static int write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, text, strlen(text));
  int e = errno;
  close(fd);
  errno = e;
  return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* Fork a child that runs `setup` in new namespaces and then waits; the parent binds the child's
 * namespace file `nsname` to `path` after `before_bind` (e.g. writing the id maps). */
static int bind_child_ns(const char *path, const char *nsname, int (*setup)(void *), void *arg,
                         int (*before_bind)(pid_t, void *)) {
  int ready[2], go[2];
  if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0) return -1;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    close(ready[0]);
    close(go[1]);
    char c = setup(arg) == 0 ? 'y' : 'n';
    int e = errno;
    if (write(ready[1], &c, 1) < 0) _exit(1);
    if (c == 'n') {
      if (write(ready[1], &e, sizeof e) < 0) _exit(1);
      _exit(1);
    }
    if (read(go[0], &c, 1) < 0) _exit(1); /* wait until the parent has bound the namespace */
    _exit(0);
  }
  close(ready[1]);
  close(go[0]);
  char c = 'n';
  int e = EIO, rc = -1;
  if (read(ready[0], &c, 1) == 1 && c == 'y') {
    char ns[64];
    snprintf(ns, sizeof ns, "/proc/%d/ns/%s", pid, nsname);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) close(fd);
    if ((before_bind == NULL || before_bind(pid, arg) == 0) && mount(ns, path, NULL, MS_BIND, NULL) == 0) rc = 0;
    else e = errno;
  } else if (read(ready[0], &e, sizeof e) != sizeof e) e = EIO;
  close(go[1]); /* lets the child end */
  waitpid(pid, NULL, 0);
  errno = e;
  return rc;
}

static int setup_userns(void *arg) {
  (void)arg;
  return unshare(CLONE_NEWUSER);
}

struct idmap {
  unsigned long long host, size;
};

static int write_maps(pid_t pid, void *arg) {
  struct idmap *m = arg;
  char path[64], map[96];
  snprintf(map, sizeof map, "0 %llu %llu\n", m->host, m->size);
  snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
  if (write_file(path, map) < 0) return -1;
  snprintf(path, sizeof path, "/proc/%d/gid_map", pid);
  return write_file(path, map);
}

static int userns_create(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "jaula-helper: usage: userns-create PATH HOSTID SIZE\n");
    return 2;
  }
  struct idmap m = {strtoull(argv[1], NULL, 10), strtoull(argv[2], NULL, 10)};
  if (m.size == 0 || m.host + m.size > 4294967295ULL) {
    fprintf(stderr, "jaula-helper: bad id range %s+%s\n", argv[1], argv[2]);
    return 2;
  }
  if (bind_child_ns(argv[0], "user", setup_userns, &m, write_maps) < 0) {
    fprintf(stderr, "jaula-helper: user namespace at \"%s\": %s\n", argv[0], strerror(errno));
    return 1;
  }
  return 0;
}

struct netns_args {
  const char *userns;
  char ping[64];
};

static int setup_netns(void *arg) {
  struct netns_args *a = arg;
  /* In the guest's user namespace, the new network namespace belongs to the guest: its root
   * may configure it, bind low ports, and mount its own /sys. */
  if (a->userns) {
    int fd = open(a->userns, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWUSER) < 0) return -1;
    close(fd);
  }
  if (unshare(CLONE_NEWNET) < 0) return -1;
  /* Loopback up, as a runtime does for a namespace it makes itself. */
  int sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  if (sk < 0 || ioctl(sk, SIOCGIFFLAGS, &ifr) < 0) return -1;
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(sk, SIOCSIFFLAGS, &ifr) < 0) return -1;
  close(sk);
  /* Unprivileged ICMP echo sockets for these gids: ping without raw sockets. */
  if (a->ping[0] && write_file("/proc/sys/net/ipv4/ping_group_range", a->ping) < 0) return -1;
  return 0;
}

static int netns_create(int argc, char **argv) {
  struct netns_args a = {NULL, ""};
  const char *path = NULL;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--userns") && i + 1 < argc) a.userns = argv[++i];
    else if (!strcmp(argv[i], "--ping") && i + 2 < argc) {
      snprintf(a.ping, sizeof a.ping, "%s %s", argv[i + 1], argv[i + 2]);
      i += 2;
    } else if (!path) path = argv[i];
    else path = NULL, i = argc;
  }
  if (!path) {
    fprintf(stderr, "jaula-helper: usage: netns-create PATH [--userns USERNS] [--ping GID-LOW GID-HIGH]\n");
    return 2;
  }
  if (bind_child_ns(path, "net", setup_netns, &a, NULL) < 0) {
    fprintf(stderr, "jaula-helper: network namespace at \"%s\": %s\n", path, strerror(errno));
    return 1;
  }
  return 0;
}

/* A user namespace with the map 0 HOST SIZE, held by a child that waits; returns an fd to it. */
static int temp_userns(unsigned long long host, unsigned long long size, pid_t *child) {
  int ready[2], go[2];
  if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0) return -1;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    char c = unshare(CLONE_NEWUSER) == 0 ? 'y' : 'n';
    if (write(ready[1], &c, 1) < 0 || c == 'n') _exit(1);
    if (read(go[0], &c, 1) < 0) _exit(1);
    _exit(0);
  }
  close(ready[1]);
  close(go[0]);
  char c = 'n';
  int fd = -1;
  struct idmap m = {host, size};
  if (read(ready[0], &c, 1) == 1 && c == 'y' && write_maps(pid, &m) == 0) {
    char ns[64];
    snprintf(ns, sizeof ns, "/proc/%d/ns/user", pid);
    fd = open(ns, O_RDONLY | O_CLOEXEC);
  }
  int e = errno;
  close(ready[0]);
  *child = pid;
  (void)go;
  errno = e;
  return fd;
}

static int idmap_mount(int argc, char **argv) {
  /* --recursive: each SRC with the mounts below it (an fstab rbind), all idmapped;
   * --keep-flags: the source's nosuid and nodev stay (an fstab bind of the host's) */
  int recursive = 0, keep = 0;
  for (; argc > 0; argc--, argv++) {
    if (!strcmp(argv[0], "--recursive")) recursive = 1;
    else if (!strcmp(argv[0], "--keep-flags")) keep = 1;
    else break;
  }
  if (argc < 4 || argc % 2) {
    fprintf(stderr, "jaula-helper: usage: idmap-mount [--recursive] [--keep-flags] HOSTID SIZE SRC DST [SRC DST]...\n");
    return 2;
  }
  unsigned long long host = strtoull(argv[0], NULL, 10), size = strtoull(argv[1], NULL, 10);
  if (size == 0 || host + size > 4294967295ULL) {
    fprintf(stderr, "jaula-helper: bad id range %s+%s\n", argv[0], argv[1]);
    return 2;
  }
  pid_t child = -1;
  int userns = temp_userns(host, size, &child);
  if (userns < 0) {
    fprintf(stderr, "jaula-helper: user namespace for the idmapping: %s\n", strerror(errno));
    return 1;
  }
  /* Every pair with the one namespace; the first failure ends it (the caller undoes the rest). */
  int rc = 0;
  for (int i = 2; i < argc && rc == 0; i += 2) {
    const char *src = argv[i], *dst = argv[i + 1];
    rc = 1;
    int rflag = recursive ? AT_RECURSIVE : 0;
    int tree = (int)syscall(SYS_open_tree, AT_FDCWD, src, OPEN_TREE_CLONE | O_CLOEXEC | rflag);
    struct jaula_mount_attr attr = {MOUNT_ATTR_IDMAP, keep ? 0 : MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0,
                                    (unsigned long long)userns};
    if (tree < 0) fprintf(stderr, "jaula-helper: open_tree \"%s\": %s\n", src, strerror(errno));
    else if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | rflag, &attr, sizeof attr) < 0)
      fprintf(stderr, "jaula-helper: idmapping \"%s\": %s (its filesystem may not support idmapped mounts)\n", src,
              strerror(errno));
    else if (syscall(SYS_move_mount, tree, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH) < 0)
      fprintf(stderr, "jaula-helper: mounting on \"%s\": %s\n", dst, strerror(errno));
    else rc = 0;
    if (tree >= 0) close(tree);
  }
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  return rc;
}

int main(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "userns-create")) return userns_create(argc - 2, argv + 2);
  if (argc >= 2 && !strcmp(argv[1], "netns-create")) return netns_create(argc - 2, argv + 2);
  if (argc >= 2 && !strcmp(argv[1], "idmap-mount")) return idmap_mount(argc - 2, argv + 2);
  if (argc >= 2 && !strcmp(argv[1], "netns-move")) return netns_move(argc - 2, argv + 2);
  if (argc >= 2 && !strcmp(argv[1], "shim")) return shim(argc - 2, argv + 2);
  if (argc >= 2 && !strcmp(argv[1], "pty-exec")) return pty_exec(argc - 2, argv + 2);
  if (argc >= 2 && !strcmp(argv[1], "private-cgroup2")) return private_cgroup2(argc - 2, argv + 2);
  if (argc >= 2 && !strcmp(argv[1], "notify")) return notify(argc - 2, argv + 2);
  fprintf(stderr, "jaula-helper: internal helper of jaula; usage: jaula-helper shim|pty-exec|notify|netns-move|userns-create|netns-create|idmap-mount|private-cgroup2 ...\n");
  return 2;
}
