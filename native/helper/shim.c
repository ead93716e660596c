/*
 * jaula-helper shim: the per-guest supervisor.
 *
 *   jaula-helper shim --dir DIR --id ID [--log-max BYTES] [--sysinfo] [--cgroups-path PATH]
 *                     [--restore IMAGES WORK] [--runtime-fd N | --pass-fd N]
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
 *       --runtime-fd N: the runtime is executed from the file open on fd N (its sealed copy,
 *       runtime/sealed.ts); --pass-fd N: fd N is left open for ARGV (a wrapper that does so).
 *       Either is closed once the runtime runs.
 *       The guest controls what it reads (its console, its calls, its cgroups' files): it
 *       copies at most DRAIN_MAX of the console per turn, answers at most SYSINFO_RATE calls
 *       a second, and takes descriptors only from root, within CONN_TIMEOUT_MS.
 *
 * The supervisor's parts: console.c (the console's log and clients), cgroups.c (the guest's
 * cgroups and the supervisor's own), sysinfo.c (sysinfo(2) as the guest sees it), conns.c (the
 * sockets the runtime passes descriptors on).
 */
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

extern char **environ;

/* The supervisor's state, from its arguments to the guest's end. */
struct shim {
  const char *dir, *id, *cgroups_path;
  const char *images, *work; /* --restore: CRIU's images and work directory */
  char **runtime, **exitcmd, **args;
  int nruntime, want_sysinfo;
  int runtime_fd, pass_fd; /* --runtime-fd, --pass-fd: the runtime's sealed copy (or -1) */
  int sfd, lsock, nsock, errpipe[2];
  pid_t rt, init_pid;
  int master, peer, rt_status, status;
  char errbuf[4096];
  size_t errlen;
  struct {
    pid_t pid;
    int status;
  } early[16];
  int nearly;
};

static void shim_args(struct shim *s, int argc, char **argv) {
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--dir") && i + 1 < argc) s->dir = argv[++i];
    else if (!strcmp(argv[i], "--id") && i + 1 < argc) s->id = argv[++i];
    else if (!strcmp(argv[i], "--log-max") && i + 1 < argc) log_max = atoll(argv[++i]);
    else if (!strcmp(argv[i], "--cgroups-path") && i + 1 < argc) s->cgroups_path = argv[++i];
    else if (!strcmp(argv[i], "--sysinfo")) s->want_sysinfo = 1;
    else if (!strcmp(argv[i], "--runtime-fd") && i + 1 < argc) s->runtime_fd = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--pass-fd") && i + 1 < argc) s->pass_fd = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--restore") && i + 2 < argc) {
      s->images = argv[++i];
      s->work = argv[++i];
    } else if (!strcmp(argv[i], "--runtime")) {
      s->runtime = &argv[i + 1];
      while (i + 1 < argc && strcmp(argv[i + 1], "--exit")) i++, s->nruntime++;
    } else if (!strcmp(argv[i], "--exit")) {
      s->exitcmd = &argv[i + 1];
      break;
    } else die("shim: unknown argument \"%s\"", argv[i]);
  }
  if (s->runtime_fd >= 0 && s->pass_fd >= 0) die("shim: --runtime-fd and --pass-fd are exclusive");
  if (!s->dir || !s->id || !s->runtime || !s->nruntime || !s->exitcmd || !s->exitcmd[0])
    die("shim: usage: %s", usage_of("shim"));
}

static void shim_setup(struct shim *s) {
  /* Nothing jaula's caller left open may live on in the supervisor or the guest, but the
   * runtime's sealed copy (runtime/sealed.ts), for the runtime's start only. */
  int keep = s->runtime_fd > SYNC_FD ? s->runtime_fd : s->pass_fd > SYNC_FD ? s->pass_fd : -1;
  if (keep > SYNC_FD + 1) syscall(SYS_close_range, SYNC_FD + 1, (unsigned)keep - 1, 0);
  syscall(SYS_close_range, keep > SYNC_FD ? (unsigned)keep + 1 : SYNC_FD + 1, ~0U, 0);
  if (keep > SYNC_FD) fcntl(keep, F_SETFD, FD_CLOEXEC); /* (the runtime's child clears it if it must) */
  fcntl(SYNC_FD, F_SETFD, FD_CLOEXEC); /* the runtime and the guest must not hold it */
  if (chdir(s->dir) < 0) die("shim: cannot enter \"%s\": %s", s->dir, strerror(errno));
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) die("shim: PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
  signal(SIGPIPE, SIG_IGN);
  cgroups_init(s->cgroups_path);

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  s->sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (s->sfd < 0) die("shim: signalfd: %s", strerror(errno));

  s->lsock = listen_unix("console.sock", 1);
  if (s->lsock < 0) die("shim: console socket: %s", strerror(errno));

  /* The runtime connects here with the seccomp notification fd of each process it starts. */
  /* (a restore passes one listener per restored thread, before the supervisor's loop accepts) */
  if (s->want_sysinfo && (s->nsock = listen_unix("seccomp.sock", 128)) < 0)
    die("shim: seccomp socket: %s", strerror(errno));

  if (pipe2(s->errpipe, O_CLOEXEC) < 0) die("shim: pipe: %s", strerror(errno));
}

static void spawn_runtime(struct shim *s) {
  /* runtime ... run --detach --bundle . --pid-file ../init.pid --console-socket ../console.sock ID;
   * restoring: runtime ... restore --image-path I --work-path W --tcp-established --empty-ns network
   * and the same options, which mean the same to runc's restore (the restored init becomes this
   * supervisor's, the console's new pty master comes to console.sock, the guest's seccomp
   * listeners to seccomp.sock: docs/adr/0007-live-migration.md) */
  char **args = calloc((size_t)s->nruntime + 18, sizeof *args);
  if (!args) die("shim: out of memory");
  int k = 0;
  for (int i = 0; i < s->nruntime; i++) args[k++] = s->runtime[i];
  if (s->images) {
    args[k++] = "restore";
    args[k++] = "--image-path";
    args[k++] = (char *)s->images;
    args[k++] = "--work-path";
    args[k++] = (char *)s->work;
    args[k++] = "--tcp-established";
    args[k++] = "--empty-ns";
    args[k++] = "network";
  } else
    args[k++] = "run";
  args[k++] = "--detach";
  args[k++] = "--bundle"; /* the runtime runs in DIR/bundle: runc changes into the bundle */
  args[k++] = ".";
  args[k++] = "--pid-file";
  args[k++] = "../init.pid";
  args[k++] = "--console-socket";
  args[k++] = "../console.sock";
  args[k++] = (char *)s->id;
  args[k] = NULL;
  s->args = args;

  s->rt = fork();
  if (s->rt < 0) die("shim: fork: %s", strerror(errno));
  if (s->rt == 0) {
    reset_signals();
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(s->errpipe[1], 1);
    dup2(s->errpipe[1], 2);
    if (chdir("bundle") < 0) {
      dprintf(2, "no bundle directory: %s", strerror(errno));
      _exit(127);
    }
    /* From the runtime's sealed copy: it need not copy itself (runtime/sealed.ts); or through
     * a wrapper that does so with the copy it is passed. */
    if (s->pass_fd > SYNC_FD) fcntl(s->pass_fd, F_SETFD, 0);
    if (s->runtime_fd > SYNC_FD) fexecve(s->runtime_fd, args, environ);
    else execvp(args[0], args);
    dprintf(2, "cannot execute \"%s\": %s", args[0], strerror(errno));
    _exit(127);
  }
  close(s->errpipe[1]);
  if (s->runtime_fd > SYNC_FD) close(s->runtime_fd);
  if (s->pass_fd > SYNC_FD) close(s->pass_fd);
}

/* A descriptor passed on the console socket: the console, when it is the first pty master. */
static void take_console(struct shim *s, struct conns *cconns, int fd) {
  if (fd >= 0 && s->master < 0 && is_pty_master(fd)) {
    s->master = fd;
    fcntl(s->master, F_SETFL, fcntl(s->master, F_GETFL) | O_NONBLOCK);
    /* Hold the console's other end: while the guest's init closes and reopens
     * /dev/console no slave may be open, and the master would read EIO and be lost. */
    s->peer = ioctl(s->master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    conns_close(cconns);
  } else if (fd >= 0) {
    fprintf(stderr, "jaula-helper: the console socket was passed something else than a pty: ignored\n");
    close(fd);
  }
}

/* A child reaped while the runtime works: the guest's init may end this soon. */
static void keep_early(void *arg, pid_t pid, int status) {
  struct shim *s = arg;
  if (s->nearly < (int)(sizeof s->early / sizeof s->early[0])) {
    s->early[s->nearly].pid = pid;
    s->early[s->nearly++].status = status;
  }
}

/* Wait for the runtime: collect its stderr, accept the console, reap it. The container's
 * process may hold the stderr pipe open until it executes the guest's init (crun does), so
 * the runtime's exit, not the pipe's end, ends this wait. */
static void await_runtime(struct shim *s) {
  int errlive = 1;
  struct conns cconns = {.what = "console socket"};
  fcntl(s->errpipe[0], F_SETFL, O_NONBLOCK);
  /* The console is copied from the moment it arrives, while the runtime still works: a guest's
   * init may tcflush(TCOFLUSH) its console soon after its first lines (sysvinit does), and on a
   * pty that discards what the master has not read yet. */
  log_open();
  while (s->rt_status < 0 || s->master < 0) {
    enum { ERR, LSOCK, SIG, MASTER, CONNS };
    struct pollfd p[CONNS + MAX_CONNS] = {{errlive ? s->errpipe[0] : -1, POLLIN, 0},
                                          {s->master < 0 ? s->lsock : -1, POLLIN, 0},
                                          {s->sfd, POLLIN, 0},
                                          {s->master, POLLIN, 0}};
    int timeout = conns_poll(&cconns, p + CONNS, s->rt_status < 0 || cconns.n ? -1 : 0);
    if (poll(p, CONNS + MAX_CONNS, timeout) < 0 && errno != EINTR) die("shim: poll: %s", strerror(errno));
    if (s->master >= 0 && (p[MASTER].revents & POLLIN)) drain(s->master, DRAIN_MAX);
    if (p[ERR].revents & POLLIN) { /* (past the buffer: only its last part is kept) */
      char chunk[4096];
      ssize_t n = read(s->errpipe[0], chunk, sizeof chunk);
      if (n > 0) keep_tail(s->errbuf, sizeof s->errbuf, &s->errlen, chunk, (size_t)n);
      else if (n == 0) errlive = 0;
    }
    if ((p[ERR].revents & (POLLHUP | POLLERR)) && !(p[ERR].revents & POLLIN)) errlive = 0;
    if (p[LSOCK].revents & POLLIN) conns_accept(&cconns, s->lsock);
    take_console(s, &cconns, conns_recv(&cconns, p + CONNS));
    if (p[SIG].revents) reap(s->sfd, s->rt, &s->rt_status, keep_early, s);
    /* the runtime failed before sending a console (or sent none) */
    if (s->rt_status >= 0 && s->master < 0 && !(p[LSOCK].revents & POLLIN) && !cconns.n) break;
  }
  for (int i = 0; i < 64; i++) { /* what the runtime wrote before it ended */
    char chunk[4096];
    ssize_t n = read(s->errpipe[0], chunk, sizeof chunk);
    if (n <= 0) break;
    keep_tail(s->errbuf, sizeof s->errbuf, &s->errlen, chunk, (size_t)n);
  }
  close(s->errpipe[0]);
  conns_close(&cconns);
  close(s->lsock);
  unlink("console.sock");
}

/* The runtime's verdict: its error (then the shim dies with it), else the guest's init, which
 * the parent is told about on SYNC_FD. */
static void guest_started(struct shim *s) {
  s->errbuf[s->errlen] = 0;
  for (size_t i = 0; i < s->errlen; i++)
    if (s->errbuf[i] == '\n') s->errbuf[i] = ' ';
  /* (its last words: the message is at most 1 kB) */
  if (!WIFEXITED(s->rt_status) || WEXITSTATUS(s->rt_status) != 0)
    die("%s %s failed (status %d): %s", s->args[0], s->images ? "restore" : "run", s->rt_status,
        s->errlen ? s->errbuf + (s->errlen > 900 ? s->errlen - 900 : 0) : "no message");

  FILE *pf = fopen("init.pid", "re");
  if (!pf || fscanf(pf, "%d", &s->init_pid) != 1 || s->init_pid <= 0) die("shim: runtime wrote no pid file");
  fclose(pf);
  init_start = read_start(s->init_pid);
  sup_enter(); /* (before "ok": the guest runs with its supervisor in place) */
  dprintf(SYNC_FD, "ok %d\n", s->init_pid);
  close(SYNC_FD);
}

/* What the supervisor's loop watches besides the shim's own descriptors. */
struct watch {
  int notify[MAX_NOTIFY], nnotify; /* the guest's seccomp listeners */
  struct conns nconns;             /* connections to seccomp.sock that may pass one */
  double tokens;                   /* sysinfo(2) answers it may give now */
  long long last;
  int asock;                       /* attach.sock */
};

/* The seccomp listeners passed on seccomp.sock since the last turn (p: the connections'). */
static void take_listeners(struct watch *w, const struct pollfd *p) {
  int fd;
  while ((fd = conns_recv(&w->nconns, p)) >= 0) {
    if (!is_seccomp_notify(fd)) {
      fprintf(stderr, "jaula-helper: the seccomp socket was passed something else than a seccomp listener: ignored\n");
      close(fd);
    } else if (w->nnotify < MAX_NOTIFY) w->notify[w->nnotify++] = fd;
    else close(fd); /* too many at once: those calls fail with ENOSYS */
  }
}

/* The guest's waiting sysinfo(2) calls, as far as the tokens go (p: the listeners'). */
static void answer_calls(struct watch *w, const struct pollfd *p) {
  for (int i = w->nnotify - 1; i >= 0; i--) {
    short ev = p[i].revents;
    if ((ev & POLLIN) && w->tokens >= 1 && handle_notify(w->notify[i]) == 0) {
      w->tokens -= 1;
      continue;
    }
    if (ev & (POLLHUP | POLLERR | POLLNVAL)) { /* its processes are gone */
      close(w->notify[i]);
      w->notify[i] = w->notify[--w->nnotify];
    } else if ((ev & POLLIN) && w->tokens >= 1) { /* (handle_notify failed: a broken listener) */
      close(w->notify[i]);
      w->notify[i] = w->notify[--w->nnotify];
    }
  }
}

/* Supervise: copy the console, reap children, notice the init's end, answer sysinfo(2),
 * serve console clients. */
static void supervise(struct shim *s) {
  for (int i = 0; i < s->nearly; i++) /* reaped while the runtime was still at work */
    if (s->early[i].pid == s->init_pid) s->status = s->early[i].status;
  struct watch w = {.nconns = {.what = "seccomp socket"}, .tokens = SYSINFO_BURST, .last = now_ms()};
  w.asock = s->master >= 0 ? attach_listen() : -1;
  while (s->status == -1) {
    long long now = now_ms();
    w.tokens += (double)(now - w.last) * SYSINFO_RATE / 1000;
    if (w.tokens > SYSINFO_BURST) w.tokens = SYSINFO_BURST;
    w.last = now;
    int answer = w.tokens >= 1; /* else the callers wait: their notifications are read later */
    int timeout = answer ? -1 : (int)((1 - w.tokens) * 1000 / SYSINFO_RATE) + 1;
    enum { SIG, MASTER, NSOCK, ASOCK, CONNS, CLIENTS = CONNS + MAX_CONNS, NOTIFY = CLIENTS + MAX_CLIENTS };
    struct pollfd p[NOTIFY + MAX_NOTIFY] = {
        {s->sfd, POLLIN, 0}, {s->master, POLLIN, 0}, {s->nsock, POLLIN, 0}, {w.asock, POLLIN, 0}};
    timeout = conns_poll(&w.nconns, p + CONNS, timeout);
    int nc = clients_poll(p + CLIENTS);
    for (int i = 0; i < w.nnotify; i++) p[NOTIFY + i] = (struct pollfd){w.notify[i], (short)(answer ? POLLIN : 0), 0};
    int n = poll(p, (nfds_t)(NOTIFY + w.nnotify), timeout);
    if (n < 0 && errno != EINTR) break;
    if (n < 0) continue;
    clients_input(p + CLIENTS, nc, s->master);
    if (w.asock >= 0 && (p[ASOCK].revents & POLLIN)) attach_accept(w.asock);
    if (s->nsock >= 0 && (p[NSOCK].revents & POLLIN)) conns_accept(&w.nconns, s->nsock);
    take_listeners(&w, p + CONNS);
    answer_calls(&w, p + NOTIFY);
    if (s->master >= 0 && p[MASTER].revents && drain(s->master, DRAIN_MAX) < 0) {
      close(s->master);
      s->master = -1;
    }
    if (p[SIG].revents) reap(s->sfd, s->init_pid, &s->status, NULL, NULL);
  }
  for (int i = 0; i < w.nnotify; i++) close(w.notify[i]);
  conns_close(&w.nconns);
  if (s->nsock >= 0) {
    close(s->nsock);
    unlink("seccomp.sock");
  }
  if (w.asock >= 0) {
    close(w.asock);
    unlink("attach.sock");
  }
}

/* The guest ended: the console's last output, the exit record, then the exit command. */
static int shim_end(struct shim *s) {
  if (s->peer >= 0) close(s->peer);
  if (s->master >= 0) {
    drain_last(s->master);
    close(s->master);
  }
  console_close();
  sup_leave();
  write_exit(s->init_pid, s->status);
  reset_signals();
  execvp(s->exitcmd[0], s->exitcmd);
  fprintf(stderr, "jaula-helper: cannot execute exit command \"%s\": %s\n", s->exitcmd[0], strerror(errno));
  return 1;
}

int shim(int argc, char **argv) {
  struct shim s = {.nsock = -1, .master = -1, .peer = -1, .rt_status = -1, .init_pid = -1, .status = -1,
                  .runtime_fd = -1, .pass_fd = -1};
  shim_args(&s, argc, argv);
  shim_setup(&s);
  spawn_runtime(&s);
  await_runtime(&s);
  guest_started(&s);
  supervise(&s);
  return shim_end(&s);
}
