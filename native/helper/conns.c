/*
 * The helper's sockets: file descriptors from the runtime.
 *
 * The console socket and the seccomp listener take file descriptors from the OCI runtime, which
 * runs as root on the host. They are made with umask 077 (main). A connection counts only when
 * its peer is root (SO_PEERCRED), and it has CONN_TIMEOUT_MS to pass its descriptor: the helper
 * is single-threaded, and a connection that sends nothing must not stop it from copying the
 * console, reaping, answering sysinfo(2) and recording the guest's exit.
 */
#include "helper.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

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
int listen_unix(const char *path, int backlog) {
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

static void conns_drop(struct conns *c, int i) {
  close(c->fd[i]);
  c->n--;
  c->fd[i] = c->fd[c->n];
  c->until[i] = c->until[c->n];
}

void conns_close(struct conns *c) {
  while (c->n) conns_drop(c, c->n - 1);
}

/* Take the connections waiting on `lsock`: root's wait for their descriptor, others are closed. */
void conns_accept(struct conns *c, int lsock) {
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
int conns_poll(const struct conns *c, struct pollfd *p, int timeout) {
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
int conns_recv(struct conns *c, const struct pollfd *p) {
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
int is_pty_master(int fd) {
  int n;
  return ioctl(fd, TIOCGPTN, &n) == 0;
}

/* Is fd a seccomp notification fd (what the seccomp listener must be passed)? */
int is_seccomp_notify(int fd) {
  char path[64], link[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(path, link, sizeof link - 1);
  if (n < 0) return 0;
  link[n] = 0;
  return !strcmp(link, "anon_inode:seccomp notify");
}
