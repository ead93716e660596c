/*
 * jaula-helper pty-exec: an interactive session for jaulad.
 *
 *   jaula-helper pty-exec ROWS COLS SOCKET -- ARGV...
 *       An interactive session on a pty made inside a guest, for jaulad's consoles: runs ARGV
 *       (`runtime exec --tty --console-socket SOCKET ...`), receives the pty master over SOCKET,
 *       copies fd 0 to it and it to fd 1, applies "ROWS COLS" lines read on fd 3 as window sizes
 *       (the guest's foreground job gets SIGWINCH), and exits with the runtime's status. The
 *       guest's programs hold only the guest's own pty, never one of the host. Both ways go
 *       through bounded queues and it never blocks on either side: a guest that does not read
 *       its input, or a jaulad that does not read the output, only holds that way back.
 */
#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static void set_winsize(int fd, const char *rows, const char *cols) {
  struct winsize ws = {0};
  ws.ws_row = (unsigned short)atoi(rows);
  ws.ws_col = (unsigned short)atoi(cols);
  if (ws.ws_row && ws.ws_col) ioctl(fd, TIOCSWINSZ, &ws);
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

/* A session: the runtime's process, the pty it passes, and both ways between it and jaulad. */
struct session {
  const char *rows, *cols, *sockpath;
  int sfd, lsock, master, got, status, in_open, out_open, ctl_open;
  pid_t rt;
  long long hup_until;
  char ctl[256];
  size_t ctl_len;
  struct conns conns;
  struct queue in, out;
};

/* Listen on SOCKET and run the runtime (ARGV) with /dev/null for its input and output. */
static int session_start(struct session *s, char **args) {
  signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  s->sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  s->lsock = listen_unix(s->sockpath, 1);
  if (s->sfd < 0 || s->lsock < 0) {
    fprintf(stderr, "jaula-helper: pty-exec: console socket: %s\n", strerror(errno));
    return -1;
  }
  s->rt = fork();
  if (s->rt < 0) return -1;
  if (s->rt == 0) {
    reset_signals();
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    syscall(SYS_close_range, 3, ~0U, 0);
    execvp(args[0], args);
    fprintf(stderr, "jaula-helper: cannot execute \"%s\": %s\n", args[0], strerror(errno));
    _exit(127);
  }
  return 0;
}

/* A descriptor passed on the console socket: the session's pty, when it is the first pty master. */
static void take_pty(struct session *s, int fd) {
  if (fd >= 0 && !s->got && is_pty_master(fd)) {
    s->master = fd;
    s->got = 1;
    fcntl(s->master, F_SETFL, fcntl(s->master, F_GETFL) | O_NONBLOCK);
    set_winsize(s->master, s->rows, s->cols);
    conns_close(&s->conns);
  } else if (fd >= 0) {
    fprintf(stderr, "jaula-helper: pty-exec: the console socket was passed something else than a pty: ignored\n");
    close(fd);
  }
}

/* What the session wrote, into the output queue. */
static void read_output(struct session *s) {
  /* (a pty gives at most 4 KiB a read: what is there is gathered, for fewer, larger writes) */
  for (int more = 1; more && s->out.len < sizeof s->out.buf;) {
    size_t before = s->out.len;
    if (!queue_fill(&s->out, s->master)) {
      /* No slave is open (EIO): the session's processes are ending, or one reopens its
       * terminal. The master stays open until the runtime is done (closing it would hang up
       * a session that still runs), and is read again in a moment (its POLLHUP would spin). */
      s->hup_until = now_ms() + 50;
      break;
    }
    more = s->out.len > before;
  }
}

/* "ROWS COLS" lines on fd 3: the pty's window size. */
static void read_ctl(struct session *s) {
  ssize_t n = read(3, s->ctl + s->ctl_len, sizeof s->ctl - 1 - s->ctl_len);
  if (n <= 0) {
    s->ctl_open = n < 0 && (errno == EAGAIN || errno == EINTR);
    return;
  }
  s->ctl_len += (size_t)n;
  s->ctl[s->ctl_len] = 0;
  char *nl;
  while ((nl = strchr(s->ctl, '\n'))) {
    *nl = 0;
    char r[16] = "", c[16] = "";
    if (sscanf(s->ctl, "%15s %15s", r, c) == 2) set_winsize(s->master, r, c);
    size_t used = (size_t)(nl - s->ctl) + 1;
    memmove(s->ctl, nl + 1, s->ctl_len - used + 1);
    s->ctl_len -= used;
  }
  if (s->ctl_len >= sizeof s->ctl - 1) s->ctl_len = 0;
}

/*
 * The session's loop never blocks on one side: what the guest writes waits in a bounded queue
 * for jaulad (fd 1), what jaulad sends waits in another for the guest; a full queue stops
 * reading its source (jaulad then stops reading the WebSocket: backpressure on both ways), and a
 * guest that never reads its input only stops its input.
 */
static void session_run(struct session *s) {
  while (s->status < 0) {
    enum { SIG, LSOCK, MASTER, IN, OUT, CTL, CONNS };
    /* (the master is not polled at all while nothing can move: its POLLHUP would spin the loop) */
    long long now = now_ms();
    short mev = (short)((s->out.len < sizeof s->out.buf && now >= s->hup_until ? POLLIN : 0) |
                        (s->in.len ? POLLOUT : 0));
    struct pollfd p[CONNS + MAX_CONNS] = {
        {s->sfd, POLLIN, 0},
        {s->got ? -1 : s->lsock, POLLIN, 0},
        {mev ? s->master : -1, mev, 0},
        {s->master >= 0 && s->in_open && s->in.len < sizeof s->in.buf ? 0 : -1, POLLIN, 0},
        {s->out.len ? 1 : -1, POLLOUT, 0},
        {s->master >= 0 && s->ctl_open ? 3 : -1, POLLIN, 0},
    };
    int timeout = conns_poll(&s->conns, p + CONNS, now < s->hup_until ? (int)(s->hup_until - now) : -1);
    if (poll(p, CONNS + MAX_CONNS, timeout) < 0 && errno != EINTR) break;
    if (p[LSOCK].revents & POLLIN) conns_accept(&s->conns, s->lsock);
    take_pty(s, conns_recv(&s->conns, p + CONNS));
    if (s->master >= 0 && (p[MASTER].revents & (POLLIN | POLLHUP | POLLERR))) read_output(s);
    if (s->out.len && (p[OUT].revents & (POLLOUT | POLLERR | POLLHUP)) && !queue_flush(&s->out, 1)) s->out_open = 0;
    if (!s->out_open) s->out.len = 0; /* jaulad is gone: what the session writes is dropped */
    /* Window sizes before input: a resize sent before a command applies to that command. */
    if (s->master >= 0 && p[CTL].revents) read_ctl(s);
    if (s->master >= 0 && p[IN].revents && !queue_fill(&s->in, 0)) s->in_open = 0;
    if (s->master >= 0 && s->in.len && (p[MASTER].revents & POLLOUT) && !queue_flush(&s->in, s->master))
      s->in.len = 0;
    if (p[SIG].revents) reap(s->sfd, s->rt, &s->status, NULL, NULL);
  }
}

/* What the session wrote last: it may still be on its way through the pty, so it is waited
 * for until no writer is left (POLLHUP, EIO) or for 500 ms of quiet (a process left behind
 * holds the pty); bounded (1 MiB), and not waited for more than 5 s at a time when jaulad
 * does not read it. */
static void last_output(struct session *s) {
  size_t budget = 1 << 20;
  while (s->out_open) {
    if (s->master >= 0 && s->out.len < sizeof s->out.buf) {
      size_t before = s->out.len;
      struct pollfd m = {s->master, POLLIN, 0};
      if (!budget || poll(&m, 1, 500) <= 0 || !queue_fill(&s->out, s->master) || s->out.len == before) {
        close(s->master);
        s->master = -1;
      } else budget -= s->out.len - before < budget ? s->out.len - before : budget;
    }
    if (!s->out.len) {
      if (s->master < 0) break;
      continue;
    }
    struct pollfd p = {1, POLLOUT, 0};
    if (poll(&p, 1, 5000) <= 0 || !queue_flush(&s->out, 1)) break;
  }
}

int pty_exec(int argc, char **argv) {
  if (argc < 5 || strcmp(argv[3], "--")) return USAGE;
  static struct session s; /* (its queues: 128 KiB) */
  s = (struct session){.rows = argv[0], .cols = argv[1], .sockpath = argv[2], .master = -1, .status = -1,
                       .in_open = 1, .out_open = 1, .conns = {.what = "console socket"}};
  if (session_start(&s, argv + 4) < 0) return 1;
  s.ctl_open = fcntl(3, F_GETFD) >= 0;
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK);
  session_run(&s);
  last_output(&s);
  if (s.master >= 0) close(s.master);
  conns_close(&s.conns);
  close(s.lsock);
  unlink(s.sockpath);
  if (s.status < 0) return 1;
  return WIFEXITED(s.status) ? WEXITSTATUS(s.status) : 128 + WTERMSIG(s.status);
}
