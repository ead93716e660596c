/*
 * jaula-helper: the small, long-lived and privileged parts of jaula that must not be Node.js.
 *
 *   jaula-helper shim --dir DIR --id ID [--log-max BYTES] [--sysinfo] [--cgroups-path PATH]
 *                     --runtime ARGV... --exit ARGV...
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
 *       With --cgroups-path (the spec's: the guest's cgroup), it works for the guest from a
 *       cgroup of its own beside the guest's, with small limits, once the guest runs.
 *       The guest controls what it reads (its console, its calls, its cgroups' files): it
 *       copies at most DRAIN_MAX of the console per turn, answers at most SYSINFO_RATE calls
 *       a second, and takes descriptors only from root, within CONN_TIMEOUT_MS.
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
 *       guest's programs hold only the guest's own pty, never one of the host. Both ways go
 *       through bounded queues and it never blocks on either side: a guest that does not read
 *       its input, or a jaulad that does not read the output, only holds that way back.
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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/audit.h>
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

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The umask the helper was started with (it uses 077 for what it makes itself). */
static mode_t caller_umask = 022;

/*
 * Before executing another program: the caller's umask (the runtime makes the guest's cgroups
 * and files, which the guest must be able to read), every signal's default disposition and an
 * empty mask. The helper ignores SIGPIPE and blocks SIGCHLD for itself, and both would outlive
 * execve: a runtime (and through it a guest's processes) or jaula's exit handler started with
 * SIGPIPE ignored gets EPIPE where it expects to end, and a blocked signal stays blocked.
 */
static void reset_signals(void) {
  umask(caller_umask);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  for (int s = 1; s < NSIG; s++)
    if (s != SIGKILL && s != SIGSTOP) sigaction(s, &sa, NULL); /* (glibc's two own ones: EINVAL) */
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
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
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != 0) close(c); /* root's only */
    else if (nclients < MAX_CLIENTS) clients[nclients++] = c;
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


/* At most this much of the console is copied per turn of the supervisor's loop: a guest that
 * floods its console must not keep the supervisor from reaping and answering sysinfo(2). */
#define DRAIN_MAX (64 << 10)

/* Copy up to `max` bytes of the console; 0 while the master is open, -1 once it reached
 * EOF/EIO (no slave left). */
static int drain(int master, size_t max) {
  char buf[16384];
  size_t done = 0;
  while (done < max) {
    ssize_t n = read(master, buf, sizeof buf);
    if (n > 0) {
      log_write(buf, n);
      if (nclients) clients_send(buf, n);
      done += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return 0;
    return -1;
  }
  return 0;
}

/* At the guest's end: what is still on its way through the pty, until no writer is left (EIO),
 * 1 MiB, or 500 ms of quiet. */
static void drain_last(int master) {
  char buf[16384];
  for (size_t done = 0; done < (1 << 20);) {
    struct pollfd p = {master, POLLIN, 0};
    if (poll(&p, 1, 500) <= 0) return;
    ssize_t n = read(master, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return;
    log_write(buf, n);
    if (nclients) clients_send(buf, n);
    done += (size_t)n;
  }
}

/* ---- the helper's sockets: file descriptors from the runtime ---------------------------------- */

/*
 * The console socket and the seccomp listener take file descriptors from the OCI runtime, which
 * runs as root on the host. They are made with umask 077 (main). A connection counts only when
 * its peer is root (SO_PEERCRED), and it has CONN_TIMEOUT_MS to pass its descriptor: the helper
 * is single-threaded, and a connection that sends nothing must not stop it from copying the
 * console, reaping, answering sysinfo(2) and recording the guest's exit.
 */
#define CONN_TIMEOUT_MS 30000
#define MAX_CONNS 8

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

/* A listening unix socket at `path` (relative to the working directory), non-blocking. */
static int listen_unix(const char *path, int backlog) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  strcpy(addr.sun_path, path);
  unlink(path);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0) return -1;
  if (bind(s, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(s, backlog) < 0) {
    int e = errno;
    close(s);
    errno = e;
    return -1;
  }
  return s;
}

/* Connections that may still pass a descriptor, each until its deadline. */
struct conns {
  const char *what;
  int n;
  int fd[MAX_CONNS];
  long long until[MAX_CONNS];
};

static void conns_drop(struct conns *c, int i) {
  close(c->fd[i]);
  c->n--;
  c->fd[i] = c->fd[c->n];
  c->until[i] = c->until[c->n];
}

static void conns_close(struct conns *c) {
  while (c->n) conns_drop(c, c->n - 1);
}

/* Take the connections waiting on `lsock`: root's wait for their descriptor, others are closed. */
static void conns_accept(struct conns *c, int lsock) {
  for (;;) {
    int fd = accept4(lsock, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != 0) {
      fprintf(stderr, "jaula-helper: refused a connection to the %s from uid %d (pid %d): only root's are taken\n",
              c->what, len == sizeof cred ? (int)cred.uid : -1, len == sizeof cred ? (int)cred.pid : -1);
      close(fd);
      continue;
    }
    if (c->n == MAX_CONNS) {
      fprintf(stderr, "jaula-helper: refused a connection to the %s: %d wait already\n", c->what, MAX_CONNS);
      close(fd);
      continue;
    }
    c->fd[c->n] = fd;
    c->until[c->n++] = now_ms() + CONN_TIMEOUT_MS;
  }
}

/* Poll entries p[0..MAX_CONNS) for the waiting connections; returns the poll timeout (ms, -1:
 * none) that their deadlines and `timeout` allow. */
static int conns_poll(const struct conns *c, struct pollfd *p, int timeout) {
  long long now = now_ms();
  for (int i = 0; i < MAX_CONNS; i++) p[i] = (struct pollfd){i < c->n ? c->fd[i] : -1, POLLIN, 0};
  for (int i = 0; i < c->n; i++) {
    long long left = c->until[i] > now ? c->until[i] - now : 0;
    if (timeout < 0 || left < timeout) timeout = (int)left;
  }
  return timeout;
}

/* After poll (p as conns_poll made it): the descriptor one ready connection passed (-1: none);
 * connections that ended, passed one, or stayed silent past their deadline are closed. */
static int conns_recv(struct conns *c, const struct pollfd *p) {
  long long now = now_ms();
  for (int i = c->n - 1; i >= 0; i--) { /* (a drop moves the last one, already seen, to i) */
    if (p[i].fd == c->fd[i] && p[i].revents) {
      int fd = recv_fd(c->fd[i]);
      if (fd >= 0 || (errno != EAGAIN && errno != EINTR)) {
        conns_drop(c, i);
        if (fd >= 0) return fd;
        continue;
      }
    }
    if (now >= c->until[i]) {
      fprintf(stderr, "jaula-helper: a connection to the %s passed nothing within %d ms: closed\n", c->what,
              CONN_TIMEOUT_MS);
      conns_drop(c, i);
    }
  }
  return -1;
}

/* Is fd a pty master (what a console socket must pass)? */
static int is_pty_master(int fd) {
  int n;
  return ioctl(fd, TIOCGPTN, &n) == 0;
}

/* Is fd a seccomp notification fd (what the seccomp listener must be passed)? */
static int is_seccomp_notify(int fd) {
  char path[64], link[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(path, link, sizeof link - 1);
  if (n < 0) return 0;
  link[n] = 0;
  return !strcmp(link, "anon_inode:seccomp notify");
}

/* ---- cgroups: the guest's, and the supervisor's own ------------------------------------------ */

/*
 * Found once, when the supervisor starts (it never changes while the guest runs): the cgroup
 * hierarchies' mount points, the supervisor's own cgroup in each (where it goes back before its
 * exit command) and the guest's (from the runtime's cgroupsPath: absolute, or relative to the
 * runtime's own cgroup, which is the supervisor's).
 */
#define MAX_HIER 16
struct hier {
  int v2;
  char ctrls[256]; /* v1: its controllers ("cpu,cpuacct"); v2: "" */
  char mnt[512];
  char own[1024];
  char guest[1024];
  char sup[1600]; /* the supervisor's cgroup directory in it, once made */
};
static struct hier hiers[MAX_HIER];
static int nhier;

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

static int write_file(const char *path, const char *text);

/* Write `text` to DIR/FILE (a cgroup knob) in one write. */
static int write_str(const char *dir, const char *file, const char *text) {
  char path[2048];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  return write_file(path, text);
}

/* Is `ctrl` in the comma-separated list? */
static int has_ctrl(const char *list, const char *ctrl) {
  size_t cl = strlen(ctrl);
  for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
    if (!strncmp(p, ctrl, cl) && (p[cl] == ',' || p[cl] == 0)) return 1;
  return 0;
}

/* The hierarchy of a controller: the v1 one that has it, else the unified one. */
static struct hier *hier_of(const char *ctrl) {
  for (int i = 0; i < nhier; i++)
    if (!hiers[i].v2 && has_ctrl(hiers[i].ctrls, ctrl)) return &hiers[i];
  for (int i = 0; i < nhier; i++)
    if (hiers[i].v2) return &hiers[i];
  return NULL;
}

/* The hierarchy a line of /proc/PID/cgroup ("4:memory:/x", "0::/x") is about, and its path. */
static struct hier *hier_of_line(char *line, char **path) {
  char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
  if (!b) return NULL;
  *b = 0;
  *path = b + 1;
  const char *ctrls = a + 1;
  for (int i = 0; i < nhier; i++) {
    if (hiers[i].v2) {
      if (*ctrls == 0) return &hiers[i];
      continue;
    }
    char first[64];
    size_t fl = strcspn(ctrls, ",");
    if (!*ctrls || fl >= sizeof first) continue;
    memcpy(first, ctrls, fl);
    first[fl] = 0;
    if (has_ctrl(hiers[i].ctrls, first)) return &hiers[i];
  }
  return NULL;
}

static void cgroups_init(const char *cgroups_path) {
  static char info[262144];
  if (read_small("/proc/self/mountinfo", info, sizeof info) < 0) return;
  char *save;
  for (char *line = strtok_r(info, "\n", &save); line && nhier < MAX_HIER; line = strtok_r(NULL, "\n", &save)) {
    char *dash = strstr(line, " - ");
    if (!dash) continue;
    char type[32] = "", opts[512] = "", point[512] = "";
    if (sscanf(dash + 3, "%31s %*s %511s", type, opts) < 1) continue;
    if (sscanf(line, "%*s %*s %*s %*s %511s", point) != 1) continue;
    struct hier *h = &hiers[nhier];
    memset(h, 0, sizeof *h);
    if (!strcmp(type, "cgroup2")) h->v2 = 1;
    else if (strcmp(type, "cgroup")) continue;
    else snprintf(h->ctrls, sizeof h->ctrls, "%s", opts);
    snprintf(h->mnt, sizeof h->mnt, "%s", point);
    nhier++;
  }
  char self[8192];
  if (read_small("/proc/self/cgroup", self, sizeof self) < 0) return;
  for (char *line = strtok_r(self, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char *path;
    struct hier *h = hier_of_line(line, &path);
    if (!h) continue;
    snprintf(h->own, sizeof h->own, "%s", path);
    if (!cgroups_path) continue;
    if (cgroups_path[0] == '/') snprintf(h->guest, sizeof h->guest, "%s", cgroups_path);
    else snprintf(h->guest, sizeof h->guest, "%s/%s", strcmp(path, "/") ? path : "", cgroups_path);
  }
}

/*
 * The supervisor's own cgroup, beside the guest's (DIR/.supervisor-NAME for the guest's
 * DIR/NAME), in the memory, cpu, cpuacct and pids hierarchies (v1) or the unified one: what
 * the supervisor does for the guest (its console, its sysinfo(2) answers) is counted there and
 * bounded, not taken from the host's share. The guest's own limits stay the guest's.
 */
#define SUP_MEMORY "33554432"
#define SUP_PIDS "16"
#define SUP_CPU_QUOTA "20000" /* of 100000 us: a fifth of one CPU */
#define SUP_V1_SHARES "128"   /* (an eighth of a guest's default 1024) */
#define SUP_V2_WEIGHT "13"

static void sup_enter(void) {
  static const char *v1[] = {"memory", "cpu", "cpuacct", "pids"};
  for (int i = 0; i < nhier; i++) {
    struct hier *h = &hiers[i];
    int want = h->v2 ? hier_of("memory") == h : 0;
    for (size_t k = 0; !h->v2 && k < sizeof v1 / sizeof v1[0]; k++) want |= has_ctrl(h->ctrls, v1[k]);
    if (!want || !h->guest[0] || !strcmp(h->guest, "/")) continue;
    const char *slash = strrchr(h->guest, '/');
    char dir[1600];
    snprintf(dir, sizeof dir, "%s%.*s/.supervisor-%s", h->mnt, (int)(slash - h->guest), h->guest, slash + 1);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
      fprintf(stderr, "jaula-helper: cannot make the supervisor's cgroup %s: %s\n", dir, strerror(errno));
      continue;
    }
    if (h->v2) {
      write_str(dir, "memory.max", SUP_MEMORY);
      write_str(dir, "pids.max", SUP_PIDS);
      write_str(dir, "cpu.weight", SUP_V2_WEIGHT);
      write_str(dir, "cpu.max", SUP_CPU_QUOTA " 100000");
    } else {
      if (has_ctrl(h->ctrls, "memory")) write_str(dir, "memory.limit_in_bytes", SUP_MEMORY);
      if (has_ctrl(h->ctrls, "pids")) write_str(dir, "pids.max", SUP_PIDS);
      if (has_ctrl(h->ctrls, "cpu")) {
        write_str(dir, "cpu.shares", SUP_V1_SHARES);
        write_str(dir, "cpu.cfs_quota_us", SUP_CPU_QUOTA);
      }
    }
    if (write_str(dir, "cgroup.procs", "0") < 0) {
      fprintf(stderr, "jaula-helper: cannot enter the supervisor's cgroup %s: %s\n", dir, strerror(errno));
      rmdir(dir);
      continue;
    }
    snprintf(h->sup, sizeof h->sup, "%s", dir);
  }
}

/* Back to where the supervisor started, and its own cgroups removed (before the exit command,
 * jaula's cleanup, runs: that must not be bound by them). Where it cannot go back, the limits go. */
static void sup_leave(void) {
  char pid[32];
  snprintf(pid, sizeof pid, "%d", (int)getpid());
  for (int i = 0; i < nhier; i++) {
    struct hier *h = &hiers[i];
    if (!h->sup[0]) continue;
    char home[1600];
    snprintf(home, sizeof home, "%s%s", h->mnt, h->own);
    if (write_str(home, "cgroup.procs", pid) < 0) {
      fprintf(stderr, "jaula-helper: cannot go back to cgroup %s: %s\n", home, strerror(errno));
      write_str(h->sup, h->v2 ? "memory.max" : "memory.limit_in_bytes", h->v2 ? "max" : "-1");
      write_str(h->sup, "pids.max", "max");
      write_str(h->sup, h->v2 ? "cpu.max" : "cpu.cfs_quota_us", h->v2 ? "max" : "-1");
      continue;
    }
    /* (v1 may hold a cgroup busy for a moment after its last task left) */
    for (int k = 0; k < 100 && rmdir(h->sup) < 0 && errno == EBUSY; k++) usleep(10000);
  }
}

/* ---- sysinfo(2) as the guest sees it ---------------------------------------------------------- */

#define MAX_NOTIFY 64
/* Answers per second (and at once) the supervisor gives a guest's sysinfo(2) calls. A caller
 * beyond them waits in the kernel until its turn comes (its notification is read later). */
#define SYSINFO_RATE 500
#define SYSINFO_BURST 500
/* How far below the guest's root cgroup a caller's cgroup is followed up. */
#define MAX_LEVELS 16

/* The guest's init's start (clock ticks after boot), read once. */
static long long init_start = -1;

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
static long long read_start(pid_t pid) {
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
static int handle_notify(int fd) {
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

/* A bounded byte queue between two non-blocking fds. */
struct queue {
  char buf[65536];
  size_t off, len;
};

/* Read from `from` into q while it has room; 0 at EOF or an error, 1 otherwise. */
static int queue_fill(struct queue *q, int from) {
  if (q->off && q->len) memmove(q->buf, q->buf + q->off, q->len);
  q->off = 0;
  ssize_t n = read(from, q->buf + q->len, sizeof q->buf - q->len);
  if (n > 0) q->len += (size_t)n;
  return n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR));
}

/* Write what q holds to `to`; 0 when `to` is gone (EPIPE, EIO), 1 otherwise. */
static int queue_flush(struct queue *q, int to) {
  ssize_t n = write(to, q->buf + q->off, q->len);
  if (n > 0) {
    q->off += (size_t)n;
    q->len -= (size_t)n;
    if (!q->len) q->off = 0;
  }
  return n >= 0 || errno == EAGAIN || errno == EINTR;
}

/*
 * The session's loop never blocks on one side: what the guest writes waits in a bounded queue
 * for jaulad (fd 1), what jaulad sends waits in another for the guest; a full queue stops
 * reading its source (jaulad then stops reading the WebSocket: backpressure on both ways), and a
 * guest that never reads its input only stops its input.
 */
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
  int lsock = listen_unix(sockpath, 1);
  if (sfd < 0 || lsock < 0) {
    fprintf(stderr, "jaula-helper: pty-exec: console socket: %s\n", strerror(errno));
    return 1;
  }
  pid_t rt = fork();
  if (rt < 0) return 1;
  if (rt == 0) {
    reset_signals();
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    syscall(SYS_close_range, 3, ~0U, 0);
    execvp(args[0], args);
    fprintf(stderr, "jaula-helper: cannot execute \"%s\": %s\n", args[0], strerror(errno));
    _exit(127);
  }
  static struct queue in, out;
  struct conns conns = {.what = "console socket"};
  int master = -1, got = 0, status = -1, in_open = 1, out_open = 1, ctl_open = fcntl(3, F_GETFD) >= 0;
  long long hup_until = 0;
  char ctl[256];
  size_t ctl_len = 0;
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK);
  while (status < 0) {
    enum { SIG, LSOCK, MASTER, IN, OUT, CTL, CONNS };
    /* (the master is not polled at all while nothing can move: its POLLHUP would spin the loop) */
    long long now = now_ms();
    short mev = (short)((out.len < sizeof out.buf && now >= hup_until ? POLLIN : 0) | (in.len ? POLLOUT : 0));
    struct pollfd p[CONNS + MAX_CONNS] = {
        {sfd, POLLIN, 0},
        {got ? -1 : lsock, POLLIN, 0},
        {mev ? master : -1, mev, 0},
        {master >= 0 && in_open && in.len < sizeof in.buf ? 0 : -1, POLLIN, 0},
        {out.len ? 1 : -1, POLLOUT, 0},
        {master >= 0 && ctl_open ? 3 : -1, POLLIN, 0},
    };
    int timeout = conns_poll(&conns, p + CONNS, now < hup_until ? (int)(hup_until - now) : -1);
    if (poll(p, CONNS + MAX_CONNS, timeout) < 0 && errno != EINTR) break;
    if (p[LSOCK].revents & POLLIN) conns_accept(&conns, lsock);
    int fd = conns_recv(&conns, p + CONNS);
    if (fd >= 0 && !got && is_pty_master(fd)) {
      master = fd;
      got = 1;
      fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
      set_winsize(master, rows, cols);
      conns_close(&conns);
    } else if (fd >= 0) {
      fprintf(stderr, "jaula-helper: pty-exec: the console socket was passed something else than a pty: ignored\n");
      close(fd);
    }
    /* (a pty gives at most 4 KiB a read: what is there is gathered, for fewer, larger writes) */
    for (int more = master >= 0 && (p[MASTER].revents & (POLLIN | POLLHUP | POLLERR)); more && out.len < sizeof out.buf;) {
      size_t before = out.len;
      if (!queue_fill(&out, master)) {
        /* No slave is open (EIO): the session's processes are ending, or one reopens its
         * terminal. The master stays open until the runtime is done (closing it would hang up
         * a session that still runs), and is read again in a moment (its POLLHUP would spin). */
        hup_until = now_ms() + 50;
        break;
      }
      more = out.len > before;
    }
    if (out.len && (p[OUT].revents & (POLLOUT | POLLERR | POLLHUP)) && !queue_flush(&out, 1)) out_open = 0;
    if (!out_open) out.len = 0; /* jaulad is gone: what the session writes is dropped */
    /* Window sizes before input: a resize sent before a command applies to that command. */
    if (master >= 0 && p[CTL].revents) {
      ssize_t n = read(3, ctl + ctl_len, sizeof ctl - 1 - ctl_len);
      if (n <= 0) ctl_open = n < 0 && (errno == EAGAIN || errno == EINTR);
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
    if (master >= 0 && p[IN].revents && !queue_fill(&in, 0)) in_open = 0;
    if (master >= 0 && in.len && (p[MASTER].revents & POLLOUT) && !queue_flush(&in, master)) in.len = 0;
    if (p[SIG].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) > 0) {
      }
      int st;
      pid_t w;
      while ((w = waitpid(-1, &st, WNOHANG)) > 0)
        if (w == rt) status = st;
    }
  }
  /* What the session wrote last: it may still be on its way through the pty, so it is waited
   * for until no writer is left (POLLHUP, EIO) or for 500 ms of quiet (a process left behind
   * holds the pty); bounded (1 MiB), and not waited for more than 5 s at a time when jaulad
   * does not read it. */
  size_t budget = 1 << 20;
  while (out_open) {
    if (master >= 0 && out.len < sizeof out.buf) {
      size_t before = out.len;
      struct pollfd m = {master, POLLIN, 0};
      if (!budget || poll(&m, 1, 500) <= 0 || !queue_fill(&out, master) || out.len == before) {
        close(master);
        master = -1;
      } else budget -= out.len - before < budget ? out.len - before : budget;
    }
    if (!out.len) {
      if (master < 0) break;
      continue;
    }
    struct pollfd p = {1, POLLOUT, 0};
    if (poll(&p, 1, 5000) <= 0 || !queue_flush(&out, 1)) break;
  }
  if (master >= 0) close(master);
  conns_close(&conns);
  close(lsock);
  unlink(sockpath);
  if (status < 0) return 1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- shim ------------------------------------------------------------------------------------- */

/* Keep the last part of what the runtime writes on its stderr (its error comes last). */
static void keep_tail(char *buf, size_t size, size_t *len, const char *data, size_t n) {
  if (n >= size - 1) {
    data += n - (size - 1) / 2;
    n = (size - 1) / 2;
  }
  if (*len + n > size - 1) {
    size_t drop = *len + n - (size - 1);
    memmove(buf, buf + drop, *len - drop);
    *len -= drop;
  }
  memcpy(buf + *len, data, n);
  *len += n;
}

/* Write the exit record atomically: the file appears only when all of it was written. */
static void write_exit(pid_t init_pid, int status) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  char rec[128];
  int n;
  if (WIFSIGNALED(status))
    n = snprintf(rec, sizeof rec, "pid=%d\nsignal=%d\ntime=%lld%03ld\n", init_pid, WTERMSIG(status),
                 (long long)now.tv_sec, now.tv_nsec / 1000000);
  else
    n = snprintf(rec, sizeof rec, "pid=%d\ncode=%d\ntime=%lld%03ld\n", init_pid, WEXITSTATUS(status),
                 (long long)now.tv_sec, now.tv_nsec / 1000000);
  int fd = open("exit.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    fprintf(stderr, "jaula-helper: cannot write the exit record: %s\n", strerror(errno));
    return;
  }
  int ok = n > 0 && n < (int)sizeof rec && write_all(fd, rec, n) == 0 && fsync(fd) == 0;
  int e = errno;
  if (close(fd) < 0) ok = 0;
  if (ok && rename("exit.tmp", "exit") == 0) return;
  fprintf(stderr, "jaula-helper: cannot write the exit record: %s\n", strerror(ok ? errno : e));
  unlink("exit.tmp");
}

static int shim(int argc, char **argv) {
  const char *dir = NULL, *id = NULL, *cgroups_path = NULL;
  char **runtime = NULL, **exitcmd = NULL;
  int nruntime = 0, want_sysinfo = 0;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
    else if (!strcmp(argv[i], "--id") && i + 1 < argc) id = argv[++i];
    else if (!strcmp(argv[i], "--log-max") && i + 1 < argc) log_max = atoll(argv[++i]);
    else if (!strcmp(argv[i], "--cgroups-path") && i + 1 < argc) cgroups_path = argv[++i];
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
    die("shim: usage: shim --dir DIR --id ID [--sysinfo] [--cgroups-path PATH] --runtime ARGV... --exit ARGV...");
  /* Nothing jaula's caller left open may live on in the supervisor or the guest. */
  syscall(SYS_close_range, SYNC_FD + 1, ~0U, 0);
  fcntl(SYNC_FD, F_SETFD, FD_CLOEXEC); /* the runtime and the guest must not hold it */
  if (chdir(dir) < 0) die("shim: cannot enter \"%s\": %s", dir, strerror(errno));
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) die("shim: PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
  signal(SIGPIPE, SIG_IGN);
  cgroups_init(cgroups_path);

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) die("shim: signalfd: %s", strerror(errno));

  int lsock = listen_unix("console.sock", 1);
  if (lsock < 0) die("shim: console socket: %s", strerror(errno));

  /* The runtime connects here with the seccomp notification fd of each process it starts. */
  int nsock = -1;
  if (want_sysinfo && (nsock = listen_unix("seccomp.sock", 16)) < 0) die("shim: seccomp socket: %s", strerror(errno));

  int errpipe[2];
  if (pipe2(errpipe, O_CLOEXEC) < 0) die("shim: pipe: %s", strerror(errno));

  /* runtime ... run --detach --bundle . --pid-file ../init.pid --console-socket ../console.sock ID */
  char **args = calloc((size_t)nruntime + 10, sizeof *args);
  if (!args) die("shim: out of memory");
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
    reset_signals();
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
  struct {
    pid_t pid;
    int status;
  } early[16];
  int nearly = 0;
  struct conns cconns = {.what = "console socket"};
  fcntl(errpipe[0], F_SETFL, O_NONBLOCK);
  /* The console is copied from the moment it arrives, while the runtime still works: a guest's
   * init may tcflush(TCOFLUSH) its console soon after its first lines (sysvinit does), and on a
   * pty that discards what the master has not read yet. */
  log_open();
  while (rt_status < 0 || master < 0) {
    enum { ERR, LSOCK, SIG, MASTER, CONNS };
    struct pollfd p[CONNS + MAX_CONNS] = {{errlive ? errpipe[0] : -1, POLLIN, 0},
                                          {master < 0 ? lsock : -1, POLLIN, 0},
                                          {sfd, POLLIN, 0},
                                          {master, POLLIN, 0}};
    int timeout = conns_poll(&cconns, p + CONNS, rt_status < 0 || cconns.n ? -1 : 0);
    if (poll(p, CONNS + MAX_CONNS, timeout) < 0 && errno != EINTR) die("shim: poll: %s", strerror(errno));
    if (master >= 0 && (p[MASTER].revents & POLLIN)) drain(master, DRAIN_MAX);
    if (p[ERR].revents & POLLIN) { /* (past the buffer: only its last part is kept) */
      char chunk[4096];
      ssize_t n = read(errpipe[0], chunk, sizeof chunk);
      if (n > 0) keep_tail(errbuf, sizeof errbuf, &errlen, chunk, (size_t)n);
      else if (n == 0) errlive = 0;
    }
    if ((p[ERR].revents & (POLLHUP | POLLERR)) && !(p[ERR].revents & POLLIN)) errlive = 0;
    if (p[LSOCK].revents & POLLIN) conns_accept(&cconns, lsock);
    int fd = conns_recv(&cconns, p + CONNS);
    if (fd >= 0 && master < 0 && is_pty_master(fd)) {
      master = fd;
      fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
      /* Hold the console's other end: while the guest's init closes and reopens
       * /dev/console no slave may be open, and the master would read EIO and be lost. */
      peer = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
      conns_close(&cconns);
    } else if (fd >= 0) {
      fprintf(stderr, "jaula-helper: the console socket was passed something else than a pty: ignored\n");
      close(fd);
    }
    if (p[SIG].revents) {
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
    /* the runtime failed before sending a console (or sent none) */
    if (rt_status >= 0 && master < 0 && !(p[LSOCK].revents & POLLIN) && !cconns.n) break;
  }
  for (int i = 0; i < 64; i++) { /* what the runtime wrote before it ended */
    char chunk[4096];
    ssize_t n = read(errpipe[0], chunk, sizeof chunk);
    if (n <= 0) break;
    keep_tail(errbuf, sizeof errbuf, &errlen, chunk, (size_t)n);
  }
  close(errpipe[0]);
  conns_close(&cconns);
  close(lsock);
  unlink("console.sock");
  errbuf[errlen] = 0;
  for (size_t i = 0; i < errlen; i++)
    if (errbuf[i] == '\n') errbuf[i] = ' ';
  /* (its last words: the message is at most 1 kB) */
  if (!WIFEXITED(rt_status) || WEXITSTATUS(rt_status) != 0)
    die("%s run failed (status %d): %s", args[0], rt_status,
        errlen ? errbuf + (errlen > 900 ? errlen - 900 : 0) : "no message");

  FILE *pf = fopen("init.pid", "re");
  if (!pf || fscanf(pf, "%d", &init_pid) != 1 || init_pid <= 0) die("shim: runtime wrote no pid file");
  fclose(pf);
  init_start = read_start(init_pid);
  sup_enter(); /* (before "ok": the guest runs with its supervisor in place) */
  dprintf(SYNC_FD, "ok %d\n", init_pid);
  close(SYNC_FD);

  /* Supervise: copy the console, reap children, notice the init's end, answer sysinfo(2),
   * serve console clients. */
  int status = -1;
  for (int i = 0; i < nearly; i++) /* reaped while the runtime was still at work */
    if (early[i].pid == init_pid) status = early[i].status;
  int notify[MAX_NOTIFY], nnotify = 0;
  int asock = master >= 0 ? attach_listen() : -1;
  struct conns nconns = {.what = "seccomp socket"};
  double tokens = SYSINFO_BURST;
  long long last = now_ms();
  while (status == -1) {
    long long now = now_ms();
    tokens += (double)(now - last) * SYSINFO_RATE / 1000;
    if (tokens > SYSINFO_BURST) tokens = SYSINFO_BURST;
    last = now;
    int answer = tokens >= 1; /* else the callers wait: their notifications are read later */
    int timeout = answer ? -1 : (int)((1 - tokens) * 1000 / SYSINFO_RATE) + 1;
    enum { SIG, MASTER, NSOCK, ASOCK, CONNS, CLIENTS = CONNS + MAX_CONNS, NOTIFY = CLIENTS + MAX_CLIENTS };
    struct pollfd p[NOTIFY + MAX_NOTIFY] = {
        {sfd, POLLIN, 0}, {master, POLLIN, 0}, {nsock, POLLIN, 0}, {asock, POLLIN, 0}};
    timeout = conns_poll(&nconns, p + CONNS, timeout);
    int nc = nclients; /* (clients are dropped and added below: the poll's view is this) */
    for (int i = 0; i < MAX_CLIENTS; i++) p[CLIENTS + i] = (struct pollfd){i < nc ? clients[i] : -1, POLLIN, 0};
    for (int i = 0; i < nnotify; i++) p[NOTIFY + i] = (struct pollfd){notify[i], (short)(answer ? POLLIN : 0), 0};
    int n = poll(p, (nfds_t)(NOTIFY + nnotify), timeout);
    if (n < 0 && errno != EINTR) break;
    if (n < 0) continue;
    for (int i = nc - 1; i >= 0; i--)
      if (p[CLIENTS + i].revents) client_input(i, master);
    if (asock >= 0 && (p[ASOCK].revents & POLLIN)) attach_accept(asock);
    if (nsock >= 0 && (p[NSOCK].revents & POLLIN)) conns_accept(&nconns, nsock);
    int fd;
    while ((fd = conns_recv(&nconns, p + CONNS)) >= 0) {
      if (!is_seccomp_notify(fd)) {
        fprintf(stderr, "jaula-helper: the seccomp socket was passed something else than a seccomp listener: ignored\n");
        close(fd);
      } else if (nnotify < MAX_NOTIFY) notify[nnotify++] = fd;
      else close(fd); /* too many at once: those calls fail with ENOSYS */
    }
    for (int i = nnotify - 1; i >= 0; i--) {
      short ev = p[NOTIFY + i].revents;
      if ((ev & POLLIN) && tokens >= 1 && handle_notify(notify[i]) == 0) {
        tokens -= 1;
        continue;
      }
      if (ev & (POLLHUP | POLLERR | POLLNVAL)) { /* its processes are gone */
        close(notify[i]);
        notify[i] = notify[--nnotify];
      } else if ((ev & POLLIN) && tokens >= 1) { /* (handle_notify failed: a broken listener) */
        close(notify[i]);
        notify[i] = notify[--nnotify];
      }
    }
    if (master >= 0 && p[MASTER].revents) {
      if (drain(master, DRAIN_MAX) < 0) {
        close(master);
        master = -1;
      }
    }
    if (p[SIG].revents) {
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
  conns_close(&nconns);
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
    drain_last(master);
    close(master);
  }
  while (nclients) client_drop(nclients - 1); /* (their end of file: the guest stopped) */
  if (log_fd >= 0) close(log_fd);
  sup_leave();
  write_exit(init_pid, status);
  reset_signals();
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
  reset_signals();
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
  umask(caller_umask); /* (the runtime's files and cgroups: as its caller would make them) */
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
  /* What the helper makes (the supervisor's sockets, the exit record, namespace files) is
   * root's only, whatever umask its caller had; the programs it runs get the caller's back. */
  caller_umask = umask(077);
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
