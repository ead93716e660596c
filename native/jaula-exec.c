/*
 * jaula-exec: runs a command inside a running guest, for `jaula exec`, `jaula enter` and jaulad's
 * attach. The guest itself runs under its OCI runtime; this replaces only `runtime exec`, whose
 * process sat in the guest's PID namespace while the runtime set it up (crun: tens of
 * milliseconds as an unmapped host root, with its host command line, plus a second process, the
 * seccomp-listener helper; runc: "runc init"), so the guest's ps showed processes that were not
 * its own, and a guest at its pids.max could not be entered (the helper needed a second pid).
 * Here everything is done outside the guest's PID namespace: only the command's own process
 * enters it, already the guest's user, and it executes the command at once.
 *
 *   jaula-exec --pid PID --pid-start TICKS --status FILE [--cgroup PROCS BACK]... [--seccomp FILE]
 *              [--listener SOCKET] [--caps HEX] [--no-new-privs] [--user UID[:GID]] [--cwd DIR]
 *              [--env K=V]... [--tty --console-socket SOCKET] -- CMD [ARGS...]
 *
 * PID is the guest's init (TICKS its start time, field 22 of /proc/PID/stat: a reused pid is
 * refused). In order:
 *   1. each PROCS (a cgroup.procs of the guest, one per v1 hierarchy) is joined;
 *   2. setns(2) on a pidfd of the init joins all its namespaces at once (user, mount, PID,
 *      network, IPC, UTS, cgroup);
 *   3. the guest's seccomp filter is installed: the one its runtime gave its init, read back
 *      from the init (PTRACE_SECCOMP_GET_FILTER, the oldest filter) and kept in FILE (the
 *      runtime compiled it from the spec: the command gets exactly the init's filter). With
 *      SOCKET the filter's notification fd goes to the supervisor (which answers sysinfo(2));
 *   4. UID and GID (default 0), no supplementary groups, the capability set HEX (bounding,
 *      permitted, effective), no_new_privs if the spec has it, umask 022 (as the runtimes do for
 *      an exec) and the working directory are set, the command is looked up in the
 *      PATH of the given environment (as the guest's user, in the guest's mount namespace);
 *   5. with --tty a pty is made in the guest's devpts, its master sent to SOCKET (as
 *      `runtime exec --tty --console-socket` does);
 *   6. the command's process is forked into the guest's PID namespace and executes it; this
 *      process leaves the guest's cgroups (BACK: its own cgroup.procs), so that only the command
 *      counts against the guest's pids.max, forwards signals to it and exits with its status
 *      (128+N when killed by signal N).
 *
 * FILE (--status) gets one line once the command runs or could not: "ok" or
 * "err STAGE ERRNO DETAIL", STAGE one of init, cgroup, seccomp, setns, user, caps, cwd, lookup,
 * tty, fork, exec. jaula turns the latter into its own error (docs/adr/0004-inside-the-guest.md).
 * This process is not dumpable, so the guest cannot open its /proc/PID/exe or fds.
 *
 * Statically linked, like jaula-helper: it depends on no library of the host or of the guest.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef PTRACE_SECCOMP_GET_FILTER
#define PTRACE_SECCOMP_GET_FILTER 0x420c
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define MAX_CGROUPS 32
#define MAX_ENV 256

static int status_fd = -1;

/* Report a failure on the status file and end. */
static void fail(const char *stage, int err, const char *fmt, ...) {
  char detail[512] = "";
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
  }
  for (char *c = detail; *c; c++)
    if (*c == '\n') *c = ' ';
  if (status_fd >= 0) dprintf(status_fd, "err %s %d %s\n", stage, err, detail);
  else fprintf(stderr, "jaula-exec: %s: %s: %s\n", stage, strerror(err), detail);
  _exit(125);
}

static void write_str(int fd, const char *s) {
  size_t n = strlen(s);
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

static int send_fd(int sock, int fd) {
  char byte = 0;
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } control;
  memset(&control, 0, sizeof control);
  struct msghdr msg = {0};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  ssize_t n;
  do n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n == 1 ? 0 : -1;
}

static int connect_unix(const char *path) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof a.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  strcpy(a.sun_path, path);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
    int e = errno;
    close(s);
    errno = e;
    return -1;
  }
  return s;
}

/* ---- the guest's seccomp filter ---------------------------------------------------------------- */

/* The number of seccomp filters of a process (its "Seccomp_filters:" line), or -1. */
static int filter_count(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "re");
  if (!f) return -1;
  int n = -1, mode = -1;
  while (fgets(line, sizeof line, f)) {
    if (!strncmp(line, "Seccomp:", 8)) mode = atoi(line + 8);
    if (!strncmp(line, "Seccomp_filters:", 16)) n = atoi(line + 16);
  }
  fclose(f);
  if (mode == 0) return 0;
  return n;
}

/*
 * Read the init's oldest seccomp filter (the runtime's) while it is stopped for a moment, and
 * keep it in `file`: the first exec of a guest's run does this, the next ones read the file.
 * Returns -1 when another exec is reading it at the same time (the init is traced already).
 */
static int dump_filter(pid_t pid, const char *file) {
  int n = filter_count(pid);
  if (n < 0) fail("seccomp", errno ? errno : ENOENT, "cannot read the seccomp state of the guest's init");
  struct sock_filter *prog = NULL;
  long len = 0;
  if (n > 0) {
    if (ptrace(PTRACE_SEIZE, pid, 0, 0) < 0) {
      if (errno == EPERM) return -1;
      fail("seccomp", errno, "PTRACE_SEIZE of the guest's init");
    }
    int sig = 0, st;
    if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) < 0) {
      int e = errno;
      ptrace(PTRACE_DETACH, pid, 0, 0);
      fail("seccomp", e, "PTRACE_INTERRUPT of the guest's init");
    }
    for (;;) {
      pid_t w = waitpid(pid, &st, __WALL);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) fail("seccomp", errno, "waiting for the guest's init to stop");
      if (!WIFSTOPPED(st)) fail("seccomp", ESRCH, "the guest's init ended");
      /* A signal-delivery stop came first: keep that signal for the init. */
      if ((st >> 16) == 0 && WSTOPSIG(st) != SIGTRAP) sig = WSTOPSIG(st);
      break;
    }
    len = ptrace(PTRACE_SECCOMP_GET_FILTER, pid, (void *)(long)(n - 1), NULL);
    if (len > 0 && len < 65536) {
      prog = calloc((size_t)len, sizeof *prog);
      if (!prog || ptrace(PTRACE_SECCOMP_GET_FILTER, pid, (void *)(long)(n - 1), prog) != len) len = -1;
    } else if (len >= 0)
      len = -1, errno = E2BIG;
    int e = errno;
    ptrace(PTRACE_DETACH, pid, 0, (void *)(long)sig);
    if (len < 0) fail("seccomp", e, "PTRACE_SECCOMP_GET_FILTER of the guest's init");
  }
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp-%d", file, getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) fail("seccomp", errno, "%s", tmp);
  size_t bytes = (size_t)len * sizeof *prog;
  if ((bytes && write(fd, prog, bytes) != (ssize_t)bytes) || close(fd) < 0 || rename(tmp, file) < 0) {
    int e = errno;
    unlink(tmp);
    fail("seccomp", e, "%s", file);
  }
  free(prog);
  return 0;
}

/* The filter kept in `file` (dumped first when missing); *len 0: the guest has none. */
static struct sock_filter *load_filter(pid_t pid, const char *file, unsigned short *len) {
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  /* Execs that start together: one reads the filter, the others wait for its file (5 s at most:
   * a debugger holding the init would keep it from everyone). */
  for (int tries = 0; fd < 0 && errno == ENOENT && tries < 500; tries++) {
    if (dump_filter(pid, file) < 0) {
      struct timespec ts = {0, 10 * 1000 * 1000};
      nanosleep(&ts, NULL);
      errno = ENOENT;
    }
    fd = open(file, O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0 && errno == ENOENT) fail("seccomp", EBUSY, "the guest's init is traced: its seccomp filter cannot be read");
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) fail("seccomp", errno, "%s", file);
  if (st.st_size % sizeof(struct sock_filter) || st.st_size > 65535 * (off_t)sizeof(struct sock_filter))
    fail("seccomp", EINVAL, "%s is no seccomp filter", file);
  *len = (unsigned short)(st.st_size / sizeof(struct sock_filter));
  struct sock_filter *prog = calloc(*len ? *len : 1, sizeof *prog);
  if (!prog || (st.st_size && read(fd, prog, (size_t)st.st_size) != st.st_size)) fail("seccomp", EIO, "%s", file);
  close(fd);
  return prog;
}

/* ---- capabilities --------------------------------------------------------------------------------- */

/* The bounding set: while this process still holds CAP_SETPCAP (before it changes its user). */
static void set_bounding(unsigned long long caps) {
  int last = 40;
  FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
  if (f) {
    if (fscanf(f, "%d", &last) != 1) last = 40;
    fclose(f);
  }
  for (int c = 0; c <= last && c < 64; c++)
    if (!(caps & (1ULL << c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
      fail("caps", errno, "dropping capability %d from the bounding set", c);
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
}

/* Permitted and effective: the set for root; none for another user, whom execve would leave
 * none anyway (as with the runtime's exec). */
static void set_caps(unsigned long long caps, int root) {
  unsigned long long keep = root ? caps : 0;
  struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct d[2];
  memset(d, 0, sizeof d);
  d[0].effective = d[0].permitted = (uint32_t)keep;
  d[1].effective = d[1].permitted = (uint32_t)(keep >> 32);
  if (syscall(SYS_capset, &h, d) < 0) fail("caps", errno, "capset");
}

/* ---- the command ---------------------------------------------------------------------------------- */

/* Find `cmd` in `path` as execvp would; EACCES when found but not executable. */
static const char *lookup(const char *cmd, const char *path, char *buf, size_t size) {
  if (strchr(cmd, '/')) {
    if (access(cmd, X_OK) == 0) return cmd;
    fail("lookup", errno, "%s", cmd);
  }
  int seen_eacces = 0;
  for (const char *p = path; p && *p;) {
    const char *end = strchr(p, ':');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    /* an empty entry is the working directory, as in execvp */
    snprintf(buf, size, "%.*s%s%s", (int)n, p, n ? "/" : "", cmd);
    struct stat st;
    if (stat(buf, &st) == 0 && S_ISREG(st.st_mode)) {
      if (access(buf, X_OK) == 0) return buf;
      seen_eacces = 1;
    }
    p = end ? end + 1 : NULL;
  }
  fail("lookup", seen_eacces ? EACCES : ENOENT, "%s (PATH=%s)", cmd, path ? path : "");
  return NULL;
}

static volatile pid_t child_pid;
static void forward(int sig) {
  if (child_pid > 0) kill(child_pid, sig);
}

static void join_cgroups(int *fds, int n, const char *what) {
  for (int i = 0; i < n; i++)
    if (fds[i] >= 0 && write(fds[i], "0", 1) < 0)
      fail("cgroup", errno, "joining %s cgroup %d of %d", what, i + 1, n);
}

/* ---- the command line ------------------------------------------------------------------------------- */

/* What the command line asks for. */
struct opts {
  pid_t pid;
  unsigned long long start, caps;
  int have_caps, tty, nnp, ncg, nenv;
  const char *status, *seccomp_file, *listener, *console, *cwd;
  const char *cg[MAX_CGROUPS], *back[MAX_CGROUPS];
  char *env[MAX_ENV + 1];
  uid_t uid;
  gid_t gid;
};

static void parse_user(struct opts *o, const char *v) {
  char *end;
  o->uid = (uid_t)strtoul(v, &end, 10);
  if (end == v || (*end && *end != ':')) fail("user", EINVAL, "%s is no UID[:GID]", v);
  if (*end == ':') {
    const char *g = end + 1;
    o->gid = (gid_t)strtoul(g, &end, 10);
    if (end == g || *end) fail("user", EINVAL, "%s is no UID[:GID]", v);
  }
}

/* The options into o; returns the index in argv where the command starts. */
static int parse_args(struct opts *o, int argc, char **argv) {
  int i;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--")) {
      i++;
      break;
    } else if (!strcmp(a, "--tty")) o->tty = 1;
    else if (!strcmp(a, "--no-new-privs")) o->nnp = 1;
    else if (!v) break;
    else if (!strcmp(a, "--pid")) o->pid = atoi(v), i++;
    else if (!strcmp(a, "--pid-start")) o->start = strtoull(v, NULL, 10), i++;
    else if (!strcmp(a, "--status")) o->status = v, i++;
    else if (!strcmp(a, "--seccomp")) o->seccomp_file = v, i++;
    else if (!strcmp(a, "--listener")) o->listener = v, i++;
    else if (!strcmp(a, "--console-socket")) o->console = v, i++;
    else if (!strcmp(a, "--cwd")) o->cwd = v, i++;
    else if (!strcmp(a, "--caps")) o->caps = strtoull(v, NULL, 16), o->have_caps = 1, i++;
    else if (!strcmp(a, "--env") && o->nenv < MAX_ENV) o->env[o->nenv++] = (char *)v, i++;
    else if (!strcmp(a, "--cgroup") && i + 2 < argc && o->ncg < MAX_CGROUPS) {
      o->cg[o->ncg] = v;
      o->back[o->ncg++] = argv[i + 2];
      i += 2;
    } else if (!strcmp(a, "--user")) parse_user(o, v), i++;
    else break;
  }
  o->env[o->nenv] = NULL;
  return i;
}

/* ---- into the guest ------------------------------------------------------------------------------- */

/* The init, by a pidfd: checked to be the very process that was started. */
static int open_init(pid_t pid, unsigned long long start) {
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0) fail("init", errno, "the guest's init (pid %d)", pid);
  if (start) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0) close(fd);
    char *p = n > 0 ? (buf[n] = 0, strrchr(buf, ')')) : NULL;
    unsigned long long t = 0;
    for (int f = 2; p && f < 22; f++) p = strchr(p + 1, ' ');
    if (p) t = strtoull(p + 1, NULL, 10);
    if (t != start) fail("init", ESRCH, "pid %d is no longer the guest's init", pid);
  }
  return pidfd;
}

/* The init's namespaces (its user namespace when it is not this one's), then the guest's
 * filter, its notification fd sent to the supervisor on lsock (-1: none). */
static void enter_guest(pid_t pid, int pidfd, struct sock_filter *prog, unsigned short flen, int lsock) {
  int nstypes = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWCGROUP;
  struct stat own, theirs;
  char upath[64];
  snprintf(upath, sizeof upath, "/proc/%d/ns/user", pid);
  if (stat("/proc/self/ns/user", &own) < 0 || stat(upath, &theirs) < 0) fail("setns", errno, "%s", upath);
  if (own.st_ino != theirs.st_ino || own.st_dev != theirs.st_dev) nstypes |= CLONE_NEWUSER;
  if (setns(pidfd, nstypes) < 0) fail("setns", errno, "the namespaces of the guest's init");
  close(pidfd);

  /* The guest's filter: installed while this process still holds CAP_SYS_ADMIN over the
   * guest's user namespace (no no_new_privs, as the runtime does for the guest's init). */
  if (flen) {
    struct sock_fprog fprog = {.len = flen, .filter = prog};
    int nfd = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, lsock >= 0 ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0,
                           &fprog);
    if (nfd < 0) fail("seccomp", errno, "installing the guest's filter");
    if (lsock >= 0) {
      if (send_fd(lsock, nfd) < 0) fail("seccomp", errno, "sending the notification fd to the supervisor");
      close(nfd);
      close(lsock);
    }
  }
  free(prog);
}

/* The guest's user: capabilities, ids, no_new_privs, umask and working directory. */
static void become_user(const struct opts *o) {
  if (o->have_caps) set_bounding(o->caps);
  if (setgroups(0, NULL) < 0 && errno != EPERM) fail("user", errno, "setgroups");
  if (setresgid(o->gid, o->gid, o->gid) < 0) fail("user", errno, "gid %u", o->gid);
  if (setresuid(o->uid, o->uid, o->uid) < 0) fail("user", errno, "uid %u", o->uid);
  if (o->have_caps) set_caps(o->caps, o->uid == 0);
  if (o->nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail("caps", errno, "PR_SET_NO_NEW_PRIVS");
  umask(022);
  if (chdir(o->cwd) < 0) fail("cwd", errno, "%s", o->cwd);
}

/* A pty in the guest's devpts, its master sent on csock; returns the slave. */
static int make_tty(const char *console, int csock) {
  int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  int unlock = 0;
  if (master < 0 || ioctl(master, TIOCSPTLCK, &unlock) < 0) fail("tty", errno, "/dev/ptmx");
  int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) fail("tty", errno, "opening the pty");
  if (send_fd(csock, master) < 0) fail("tty", errno, "sending the pty to %s", console);
  close(master);
  close(csock);
  return slave;
}

/* ---- the command's process ------------------------------------------------------------------------ */

/*
 * The child shows the command's name and arguments from its first instant, as the guest's
 * ps reads them (/proc/PID/comm and cmdline): this process takes them on just before the fork
 * (its argument area rewritten: the command's arguments moved to its front, the rest zeroed)
 * and gets its own back just after. What the child executes is copied out of that area.
 */
struct launch {
  char **args, **env, *exe, *area, *own_area;
  size_t area_len, keep;
  const char *base;
  char *cmd0; /* the command's first argument, in the area */
};

static void prepare_launch(struct launch *l, struct opts *o, int argc, char **argv, int i, const char *exe) {
  char **cmd = argv + i;
  l->args = calloc((size_t)(argc - i) + 1, sizeof *l->args);
  for (int k = 0; l->args && k < argc - i; k++) l->args[k] = strdup(cmd[k]);
  for (int k = 0; k < o->nenv; k++) o->env[k] = strdup(o->env[k]);
  l->env = o->env;
  l->exe = strdup(exe);
  l->area = argv[0];
  char *area_end = argv[argc - 1] + strlen(argv[argc - 1]) + 1;
  l->area_len = (size_t)(area_end - l->area);
  l->keep = (size_t)(area_end - cmd[0]);
  l->cmd0 = cmd[0];
  l->own_area = malloc(l->area_len);
  if (!l->args || !l->exe || !l->own_area) fail("fork", ENOMEM, "copying the command");
  memcpy(l->own_area, l->area, l->area_len);
  l->base = strrchr(l->exe, '/');
}

/* Fork the command's process (all signals blocked across the fork: *old gets the mask before);
 * it runs once a byte comes on go[0]; an execve error goes to errfd. */
static pid_t launch(const struct launch *l, int slave, int errfd, const int go[2], sigset_t *old) {
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, old);
  memmove(l->area, l->cmd0, l->keep);
  memset(l->area + l->keep, 0, l->area_len - l->keep);
  prctl(PR_SET_NAME, l->base ? l->base + 1 : l->exe, 0, 0, 0);
  pid_t c = fork();
  if (c != 0) {
    memcpy(l->area, l->own_area, l->area_len);
    prctl(PR_SET_NAME, "jaula-exec", 0, 0, 0);
  }
  if (c < 0) fail("fork", errno, "the command's process");
  if (c == 0) {
    /* In the guest's PID namespace: the guest's user already; nothing left but to run. */
    for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);
    sigprocmask(SIG_SETMASK, old, NULL);
    setsid();
    if (slave >= 0) {
      ioctl(slave, TIOCSCTTY, 0);
      dup2(slave, 0);
      dup2(slave, 1);
      dup2(slave, 2);
    }
    /* Not before this process's parent has left the guest's cgroups: the command may fork at
     * once, and the guest's pids.max must count only the command's processes (with pids.max
     * 4, a shell that forks beside init and its command met its limit while jaula-exec was
     * still counted). A parent that failed meanwhile closes the pipe unwritten: nothing runs. */
    close(go[1]);
    char b = 0;
    ssize_t r;
    while ((r = read(go[0], &b, 1)) < 0 && errno == EINTR) {
    }
    if (r != 1) _exit(127);
    close(go[0]);
    execve(l->exe, l->args, l->env);
    int e = errno;
    if (write(errfd, &e, sizeof e) < 0) _exit(127);
    _exit(127);
  }
  return c;
}

/* Signals to this process go on to the command (those that stop or break this one excepted). */
static void forward_signals(const sigset_t *old) {
  struct sigaction sa = {0};
  sa.sa_handler = forward;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (int s = 1; s < NSIG; s++)
    if (s != SIGCHLD && s != SIGKILL && s != SIGSTOP && s != SIGTTIN && s != SIGTTOU && s != SIGTSTP &&
        s != SIGCONT && s != SIGPIPE && s != SIGSEGV && s != SIGBUS && s != SIGFPE && s != SIGILL)
      sigaction(s, &sa, NULL);
  sigprocmask(SIG_SETMASK, old, NULL);
}

/* "ok" once the command runs (its execve error else), then its status as this one's. */
static int wait_command(pid_t c, int errfd, const char *exe) {
  int e = 0;
  ssize_t n;
  do n = read(errfd, &e, sizeof e);
  while (n < 0 && errno == EINTR);
  close(errfd);
  if (n == (ssize_t)sizeof e) {
    waitpid(c, NULL, 0);
    fail("exec", e, "%s", exe);
  }
  write_str(status_fd, "ok\n");
  close(status_fd);
  status_fd = -1;

  int st;
  while (waitpid(c, &st, 0) < 0)
    if (errno != EINTR) return 125;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(int argc, char **argv) {
  struct opts o = {.cwd = "/"};
  syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC); /* nothing of the caller's reaches the guest */
  int i = parse_args(&o, argc, argv);
  if (i >= argc || o.pid <= 0 || !o.status || (o.tty && !o.console)) {
    fprintf(stderr, "jaula-exec: usage: jaula-exec --pid PID --pid-start TICKS --status FILE [--cgroup PROCS BACK]... "
                    "[--seccomp FILE] [--listener SOCKET] [--caps HEX] [--no-new-privs] [--user UID[:GID]] [--cwd DIR] [--env K=V]... "
                    "[--tty --console-socket SOCKET] -- CMD [ARGS...]\n");
    return 125;
  }

  /* Neither the guest nor anyone else may read this process's memory or fds, or its binary. */
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  status_fd = open(o.status, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (status_fd < 0) fail("init", errno, "status file %s", o.status);
  int pidfd = open_init(o.pid, o.start);

  unsigned short flen = 0;
  struct sock_filter *prog = o.seccomp_file ? load_filter(o.pid, o.seccomp_file, &flen) : NULL;

  int cgfd[MAX_CGROUPS], backfd[MAX_CGROUPS];
  for (int k = 0; k < o.ncg; k++) {
    cgfd[k] = open(o.cg[k], O_WRONLY | O_CLOEXEC);
    if (cgfd[k] < 0) fail("cgroup", errno, "%s", o.cg[k]);
    backfd[k] = open(o.back[k], O_WRONLY | O_CLOEXEC);
    if (backfd[k] < 0) fail("cgroup", errno, "%s", o.back[k]);
  }
  /* The exec'd command is born in the guest's cgroups (its limits, its accounting). */
  join_cgroups(cgfd, o.ncg, "the guest's");

  /* Host paths, reached before this process enters the guest's mount namespace. */
  int lsock = -1, csock = -1;
  if (o.listener && flen) {
    lsock = connect_unix(o.listener);
    if (lsock < 0) fail("seccomp", errno, "the supervisor's socket %s", o.listener);
  }
  if (o.tty) {
    csock = connect_unix(o.console);
    if (csock < 0) fail("tty", errno, "the console socket %s", o.console);
  }

  enter_guest(o.pid, pidfd, prog, flen, lsock);
  become_user(&o);

  const char *path_env = NULL;
  for (int k = 0; k < o.nenv; k++)
    if (!strncmp(o.env[k], "PATH=", 5)) path_env = o.env[k] + 5;
  char found[4096];
  const char *exe = lookup(argv[i], path_env ? path_env : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                           found, sizeof found);
  int slave = o.tty ? make_tty(o.console, csock) : -1;

  struct launch l;
  prepare_launch(&l, &o, argc, argv, i, exe);
  int errpipe[2], gopipe[2];
  if (pipe2(errpipe, O_CLOEXEC) < 0 || pipe2(gopipe, O_CLOEXEC) < 0) fail("fork", errno, "pipe");
  sigset_t old;
  pid_t c = launch(&l, slave, errpipe[1], gopipe, &old);
  child_pid = c;
  close(errpipe[1]);
  close(gopipe[0]);
  if (slave >= 0) close(slave);
  /* Only the command counts against the guest's limits from now on: then it may run. */
  join_cgroups(backfd, o.ncg, "jaula's own");
  if (write(gopipe[1], "g", 1) != 1) fail("fork", errno, "starting the command");
  close(gopipe[1]);
  forward_signals(&old);
  return wait_command(c, errpipe[0], exe);
}
