/*
 * Programs started without copying jaula's memory. Node's child_process forks: the kernel copies
 * the page tables of a process of a hundred MiB or more (1.3-3 ms of jaulad's main thread per
 * program, measured), and a start runs several programs (ip, nft, the supervisor). posix_spawn(3)
 * of glibc uses clone(CLONE_VM | CLONE_VFORK): nothing is copied, the parent waits only until the
 * exec.
 *
 * Exits are seen by one thread of this addon: it waits on the pidfds of the programs started
 * here (epoll), reaps each (waitid), and hands the status to JavaScript through a thread-safe
 * function. libuv reaps only the children it started itself (waitpid of each of its pids), so
 * the two never take each other's.
 */
#define _GNU_SOURCE
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

extern char **environ;

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

int sealed_copy(const char *path, int *fdp) {
  int src = open(path, O_RDONLY | O_CLOEXEC);
  if (src < 0) return errno;
  struct stat st;
  int e = fstat(src, &st) < 0 ? errno : S_ISREG(st.st_mode) ? 0 : EINVAL;
  if (e) {
    close(src);
    return e;
  }
  /* (MFD_EXEC: kernels since 6.3 ask whether a memfd may be executed; older ones refuse the flag) */
  /* (named as the program: its processes' comm is "memfd:NAME") */
  const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
  if (fd < 0 && errno == EINVAL) fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  e = fd < 0 ? errno : 0;
  for (off_t left = st.st_size; !e && left > 0;) {
    ssize_t n = sendfile(fd, src, NULL, (size_t)left);
    if (n > 0) left -= n;
    else if (n == 0) e = EIO;
    else if (errno != EINTR) e = errno;
  }
  /* The seals runc's and crun's is_self_cloned() ask for: the copy can never change. */
  if (!e && fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) e = errno;
  close(src);
  if (e) {
    if (fd >= 0) close(fd);
    return e;
  }
  *fdp = fd;
  return 0;
}

int spawn_program(char *const *argv, const char *exe, char *const *envp, const int *fds, int nfds, int setsid,
                  const char *cwd, pid_t *pidp) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  if (posix_spawn_file_actions_init(&fa)) return ENOMEM;
  if (posix_spawnattr_init(&at)) {
    posix_spawn_file_actions_destroy(&fa);
    return ENOMEM;
  }
  int rc = 0;
  /* The child's fd i is fds[i] (-1: /dev/null): each first to a number above all of them, then
   * into place (so that no source is overwritten before its turn, and the close-on-exec flag of
   * an fd already at its place is cleared: dup2 onto itself keeps it). */
  int base = nfds;
  for (int i = 0; i < nfds; i++)
    if (fds[i] >= base) base = fds[i] + 1;
  for (int i = 0; i < nfds && !rc; i++)
    if (fds[i] >= 0) rc = posix_spawn_file_actions_adddup2(&fa, fds[i], base + i);
  for (int i = 0; i < nfds && !rc; i++) {
    if (fds[i] < 0) rc = posix_spawn_file_actions_addopen(&fa, i, "/dev/null", O_RDWR, 0);
    else {
      rc = posix_spawn_file_actions_adddup2(&fa, base + i, i);
      if (!rc) rc = posix_spawn_file_actions_addclose(&fa, base + i);
    }
  }
  if (!rc && cwd) rc = posix_spawn_file_actions_addchdir_np(&fa, cwd);
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  /* Every signal back to its default (Node ignores SIGPIPE) and none blocked, as libuv does. */
  short flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | (setsid ? POSIX_SPAWN_SETSID : 0);
  if (!rc) rc = posix_spawnattr_setsigdefault(&at, &all);
  if (!rc) rc = posix_spawnattr_setsigmask(&at, &none);
  if (!rc) rc = posix_spawnattr_setflags(&at, flags);
  if (!rc) rc = posix_spawn(pidp, exe ? exe : argv[0], &fa, &at, argv, envp ? envp : environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  return rc;
}

static int epfd = -1;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static void (*on_exit_cb)(pid_t, int, int);

static void *reaper(void *arg) {
  (void)arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, NULL);
  for (;;) {
    struct epoll_event ev[32];
    int n = epoll_wait(epfd, ev, 32, -1);
    for (int i = 0; i < n; i++) {
      int pidfd = (int)(ev[i].data.u64 & 0xffffffff);
      pid_t pid = (pid_t)(ev[i].data.u64 >> 32);
      siginfo_t si;
      memset(&si, 0, sizeof si);
      int r;
      do r = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED);
      while (r < 0 && errno == EINTR);
      epoll_ctl(epfd, EPOLL_CTL_DEL, pidfd, NULL);
      close(pidfd);
      int code = -1, sig = 0;
      if (r == 0 && si.si_code == CLD_EXITED) code = si.si_status;
      else if (r == 0) sig = si.si_status;
      on_exit_cb(pid, code, sig);
    }
  }
  return NULL;
}

static int start_err;
static void start_reaper(void) {
  epfd = epoll_create1(EPOLL_CLOEXEC);
  pthread_t t;
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&a, 64 * 1024);
  if (epfd < 0 || pthread_create(&t, &a, reaper, NULL)) start_err = errno ? errno : EAGAIN;
  pthread_attr_destroy(&a);
}

int spawn_watch(pid_t pid, void (*cb)(pid_t, int, int)) {
  on_exit_cb = cb;
  pthread_once(&once, start_reaper);
  if (start_err) return start_err;
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0) return errno;
  fcntl(pidfd, F_SETFD, FD_CLOEXEC); /* (pidfds are close-on-exec; said again for old kernels) */
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ((uint64_t)(uint32_t)pid << 32) | (uint32_t)pidfd};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, pidfd, &ev) < 0) {
    int e = errno;
    close(pidfd);
    return e;
  }
  return 0;
}
