/*
 * The shim's console: the guest's pty master copied to DIR/console.log and to the console
 * clients attached on DIR/attach.sock.
 */
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- console log ---------------------------------------------------------------------------- */

static int log_fd = -1;
static long long log_size = 0;
long long log_max = 1 << 20;

void log_open(void) {
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

int attach_listen(void) {
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

void attach_accept(int lsock) {
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

/* Copy up to `max` bytes of the console; 0 while the master is open, -1 once it reached
 * EOF/EIO (no slave left). */
int drain(int master, size_t max) {
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
void drain_last(int master) {
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

/* Poll entries p[0..MAX_CLIENTS) for the clients; returns how many there are (the poll's view:
 * clients are dropped and added after it). */
int clients_poll(struct pollfd *p) {
  int nc = nclients;
  for (int i = 0; i < MAX_CLIENTS; i++) p[i] = (struct pollfd){i < nc ? clients[i] : -1, POLLIN, 0};
  return nc;
}

/* After poll (p as clients_poll made it, nc what it returned): each client's input to the
 * console. */
void clients_input(const struct pollfd *p, int nc, int master) {
  for (int i = nc - 1; i >= 0; i--)
    if (p[i].revents) client_input(i, master);
}

/* At the guest's end: the clients get their end of file, the log is closed. */
void console_close(void) {
  while (nclients) client_drop(nclients - 1); /* (their end of file: the guest stopped) */
  if (log_fd >= 0) close(log_fd);
}
