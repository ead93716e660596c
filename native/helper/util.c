/*
 * What jaula-helper's tools share: dying with a message for the shim's parent, the monotonic
 * clock, a clean state before executing another program, small reads and writes.
 */
#include "helper.h"

#include <sys/syscall.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void die(const char *fmt, ...) {
  va_list ap;
  char buf[1024];
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(stderr, "jaula-helper: %s\n", buf);
  dprintf(SYNC_FD, "err %s\n", buf);
  exit(1);
}

long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* (set by main) */
mode_t caller_umask = 022;

/*
 * Before executing another program: the caller's umask (the runtime makes the guest's cgroups
 * and files, which the guest must be able to read), every signal's default disposition and an
 * empty mask. The helper ignores SIGPIPE and blocks SIGCHLD for itself, and both would outlive
 * execve: a runtime (and through it a guest's processes) or jaula's exit handler started with
 * SIGPIPE ignored gets EPIPE where it expects to end, and a blocked signal stays blocked.
 */
void reset_signals(void) {
  umask(caller_umask);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  /* glibc refuses its two own signals (32, 33: EINVAL), and its posix_spawn (jaula starts this
   * helper with it) leaves them ignored: those two are set by the system call itself. */
  struct {
    void *handler;
    unsigned long flags;
    void *restorer;
    unsigned long mask;
  } kdfl = {SIG_DFL, 0, NULL, 0};
  for (int s = 1; s < NSIG; s++)
    if (s != SIGKILL && s != SIGSTOP && sigaction(s, &sa, NULL) < 0)
      syscall(SYS_rt_sigaction, s, &kdfl, NULL, sizeof kdfl.mask);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
}

/* After SIGCHLD on the non-blocking signalfd sfd: every child that ended is reaped; the status
 * of `want` goes to *status, the others' to other(arg, pid, status) (NULL: dropped). */
void reap(int sfd, pid_t want, int *status, void (*other)(void *, pid_t, int), void *arg) {
  struct signalfd_siginfo si;
  while (read(sfd, &si, sizeof si) > 0) {
  }
  int st;
  pid_t w;
  while ((w = waitpid(-1, &st, WNOHANG)) > 0)
    if (w == want) *status = st;
    else if (other) other(arg, w, st);
}

/* Read a small file into buf (NUL-terminated); returns its length or -1. */
ssize_t read_small(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t len = 0;
  ssize_t n;
  while (len < size - 1 && (n = read(fd, buf + len, size - 1 - len)) > 0) len += (size_t)n;
  close(fd);
  buf[len] = 0;
  return (ssize_t)len;
}

/* Write `text` to an existing file in one write (a /proc or cgroup file). */
int write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, text, strlen(text));
  int e = errno;
  close(fd);
  errno = e;
  return n == (ssize_t)strlen(text) ? 0 : -1;
}


/* Write all of buf to fd, waiting (up to a second at a time) while a non-blocking fd is full. */
int write_all(int fd, const char *buf, ssize_t n) {
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

