/*
 * Namespaces and idmapped mounts made inside jaula's own process (jaulad, or a CLI run without
 * it), without a helper process: a start used to spawn `jaula-helper userns-create`,
 * `netns-create` and `idmap-mount`, each a fork of a large Node.js process (1.3-1.5 ms of its
 * main thread) and an exec, for work of a few system calls.
 *
 * What needs a process of its own (a user namespace is made only by a single-threaded process,
 * or by clone(2)) is done by a child made with clone(CLONE_VM): it shares this process's memory,
 * so making it copies no page table; it runs one small function on its own stack, with every
 * signal blocked, and only system calls that touch no shared state; its exit sends no signal
 * (libuv's SIGCHLD handler is not woken) and it is reaped here before the call returns.
 *
 * The rest (open_tree, mount_setattr, move_mount, mount) runs in the calling thread: those calls
 * are fine in a threaded process.
 */
#define _GNU_SOURCE
#include "nsops.h"
#include "mountapi.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>



#define CHILD_STACK (64 * 1024)

int nsops_fail(char *err, size_t cap, int e, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(err, cap, fmt, ap);
  va_end(ap);
  if (n >= 0 && (size_t)n < cap) snprintf(err + n, cap - (size_t)n, ": %s", strerror(e));
  return -e;
}

static int write_str(const char *path, const char *s) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, s, strlen(s));
  int e = errno;
  close(fd);
  if (n != (ssize_t)strlen(s)) {
    errno = n < 0 ? e : EIO;
    return -1;
  }
  return 0;
}

/* The child's part. Its errors go back through `done` as an errno and a step. */
struct job {
  int go[2], done[2];
  const char *join; /* a user namespace to enter first (a bound file), or NULL */
  int newnet;       /* make a network namespace, loopback up */
  char ping[64];    /* ping_group_range to write in it, or "" */
};
struct report {
  int err, step;
};
enum { STEP_JOIN = 1, STEP_NET, STEP_LO, STEP_PING };
static const char *const step_names[] = {"", "entering the user namespace", "making the network namespace",
                                         "bringing loopback up", "allowing ping (ping_group_range)"};

static int child_main(void *arg) {
  struct job *j = arg;
  struct report r = {0, 0};
  char c;
  close(j->go[1]); /* (this process's copies: the parent's ends stay open) */
  close(j->done[0]);
  /* Every word from the parent is a byte, never an end of file: a child of another call made at
   * the same time (on another thread) holds copies of this call's pipe ends until it ends. */
  if (read(j->go[0], &c, 1) != 1 || c != 'y') _exit(1); /* 'y': the parent has written the id maps */
  if (j->join) {
    int fd = open(j->join, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWUSER) < 0) r = (struct report){errno, STEP_JOIN};
    if (fd >= 0) close(fd);
  }
  if (!r.err && j->newnet) {
    if (unshare(CLONE_NEWNET) < 0) r = (struct report){errno, STEP_NET};
    else {
      int sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      struct ifreq ifr;
      memset(&ifr, 0, sizeof ifr);
      strcpy(ifr.ifr_name, "lo");
      if (sk < 0 || ioctl(sk, SIOCGIFFLAGS, &ifr) < 0) r = (struct report){errno, STEP_LO};
      else {
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(sk, SIOCSIFFLAGS, &ifr) < 0) r = (struct report){errno, STEP_LO};
      }
      if (sk >= 0) close(sk);
      if (!r.err && j->ping[0] && write_str("/proc/sys/net/ipv4/ping_group_range", j->ping) < 0)
        r = (struct report){errno, STEP_PING};
    }
  }
  if (write(j->done[1], &r, sizeof r) != sizeof r) _exit(1);
  (void)!read(j->go[0], &c, 1); /* until the parent has bound (or opened) the namespaces: 'q' */
  _exit(0);
}

/* A child in new namespaces (`flags`), waiting on j->go; its pid, or -1. */
static pid_t spawn_child(struct job *j, int flags, void **stack) {
  if (pipe2(j->go, O_CLOEXEC) < 0) return -1;
  if (pipe2(j->done, O_CLOEXEC) < 0) {
    close(j->go[0]);
    close(j->go[1]);
    return -1;
  }
  *stack = mmap(NULL, CHILD_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  pid_t pid = -1;
  if (*stack != MAP_FAILED) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid = clone(child_main, (char *)*stack + CHILD_STACK, CLONE_VM | flags, j);
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
  } else *stack = NULL;
  if (pid < 0) {
    int e = errno;
    for (int i = 0; i < 2; i++) close(j->go[i]), close(j->done[i]);
    if (*stack) munmap(*stack, CHILD_STACK);
    errno = e;
  }
  return pid;
}

/* Let the child end and reap it (it was made with no exit signal: __WALL). */
static void end_child(struct job *j, pid_t pid, void *stack) {
  (void)!write(j->go[1], "q", 1);
  close(j->go[1]);
  close(j->go[0]);
  close(j->done[0]);
  close(j->done[1]);
  while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR) {
  }
  munmap(stack, CHILD_STACK);
}

static int write_maps(pid_t pid, unsigned long long host, unsigned long long size) {
  char path[64], map[96];
  snprintf(map, sizeof map, "0 %llu %llu\n", host, size);
  snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
  if (write_str(path, map) < 0) return -1;
  snprintf(path, sizeof path, "/proc/%d/gid_map", pid);
  return write_str(path, map);
}

/* Bind /proc/PID/ns/NAME to `path` (made as an empty file). */
static int bind_ns(pid_t pid, const char *name, const char *path) {
  char ns[64];
  snprintf(ns, sizeof ns, "/proc/%d/ns/%s", pid, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return -1;
  close(fd);
  return mount(ns, path, NULL, MS_BIND, NULL);
}

static int valid_range(unsigned long long host, unsigned long long size) {
  return size > 0 && host + size <= 4294967295ULL;
}

int nsops_create(const struct nsops_create_args *a, char *err, size_t cap) {
  if (a->userpath && !valid_range(a->host, a->size))
    return nsops_fail(err, cap, EINVAL, "bad id range %llu+%llu", a->host, a->size);
  struct job j = {.join = a->userpath ? NULL : a->join, .newnet = a->netpath != NULL};
  if (a->ping_hi >= 0) snprintf(j.ping, sizeof j.ping, "%lld %lld", a->ping_lo, a->ping_hi);
  void *stack;
  pid_t pid = spawn_child(&j, a->userpath ? CLONE_NEWUSER : 0, &stack);
  if (pid < 0) return nsops_fail(err, cap, errno, "a process for the namespaces (clone)");
  int rc = 0;
  if (a->userpath && write_maps(pid, a->host, a->size) < 0)
    rc = nsops_fail(err, cap, errno, "the id maps of the user namespace");
  struct report r = {EIO, STEP_NET};
  if (!rc && (write(j.go[1], "y", 1) != 1 || read(j.done[0], &r, sizeof r) != sizeof r))
    rc = nsops_fail(err, cap, EIO, "the namespaces' process ended early");
  else if (!rc && r.err)
    rc = nsops_fail(err, cap, r.err, "%s", step_names[r.step]);
  if (!rc && a->userpath && bind_ns(pid, "user", a->userpath) < 0)
    rc = nsops_fail(err, cap, errno, "binding the user namespace to \"%s\"", a->userpath);
  if (!rc && a->netpath && bind_ns(pid, "net", a->netpath) < 0) {
    rc = nsops_fail(err, cap, errno, "binding the network namespace to \"%s\"", a->netpath);
    if (a->userpath) umount2(a->userpath, MNT_DETACH);
  }
  end_child(&j, pid, stack);
  return rc;
}

/* An fd of a new user namespace mapping 0..size-1 to host.. (the child that made it is gone). */
static int temp_userns(unsigned long long host, unsigned long long size) {
  struct job j = {0};
  void *stack;
  pid_t pid = spawn_child(&j, CLONE_NEWUSER, &stack);
  if (pid < 0) return -1;
  int fd = -1;
  if (write_maps(pid, host, size) == 0) {
    char ns[64];
    snprintf(ns, sizeof ns, "/proc/%d/ns/user", pid);
    fd = open(ns, O_RDONLY | O_CLOEXEC);
  }
  int e = errno;
  end_child(&j, pid, stack);
  errno = e;
  return fd;
}

int nsops_idmap_mounts(unsigned long long host, unsigned long long size, int recursive, int keep,
                       const char *const *pairs, int n, char *err, size_t cap) {
  if (!valid_range(host, size)) return nsops_fail(err, cap, EINVAL, "bad id range %llu+%llu", host, size);
  int userns = temp_userns(host, size);
  if (userns < 0) return nsops_fail(err, cap, errno, "a user namespace for the idmapping");
  /* Every pair with the one namespace; the first failure ends it (the caller undoes the rest). */
  int rc = 0, rflag = recursive ? AT_RECURSIVE : 0;
  for (int i = 0; i + 1 < n && rc == 0; i += 2) {
    const char *src = pairs[i], *dst = pairs[i + 1];
    int tree = (int)syscall(SYS_open_tree, AT_FDCWD, src, OPEN_TREE_CLONE | O_CLOEXEC | rflag);
    struct jaula_mount_attr attr = {MOUNT_ATTR_IDMAP, keep ? 0 : MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0,
                                    (unsigned long long)userns};
    if (tree < 0) rc = nsops_fail(err, cap, errno, "open_tree \"%s\"", src);
    else if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | rflag, &attr, sizeof attr) < 0)
      rc = nsops_fail(err, cap, errno, "idmapping \"%s\" (its filesystem may not support idmapped mounts)", src);
    else if (syscall(SYS_move_mount, tree, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH) < 0)
      rc = nsops_fail(err, cap, errno, "mounting on \"%s\"", dst);
    if (tree >= 0) close(tree);
  }
  close(userns);
  return rc;
}
