/*
 * jaula-helper idmap-mount: the guest's layers, idmapped.
 *
 *   jaula-helper idmap-mount [--recursive] [--keep-flags] HOSTID SIZE SRC DST [SRC DST]...
 *       Bind-mounts each SRC on its DST, idmapped 0..SIZE-1 -> HOSTID..: a file owned by uid 0
 *       on disk belongs to the guest's root, which is an unprivileged uid on the host. One
 *       process and one user namespace for all of a guest's layers (and its fstab binds;
 *       --recursive: with the mounts below each SRC, as an rbind). The view is the guest's own:
 *       nosuid and nodev of jaula's storage mounts (the pool, quota images) are cleared on it
 *       (it lies behind the guest's barrier directory); --keep-flags keeps them (an fstab bind
 *       of the host's keeps the host's nosuid and nodev).
 */
#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../mountapi.h"

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

int idmap_mount(int argc, char **argv) {
  /* --recursive: each SRC with the mounts below it (an fstab rbind), all idmapped;
   * --keep-flags: the source's nosuid and nodev stay (an fstab bind of the host's) */
  int recursive = 0, keep = 0;
  for (; argc > 0; argc--, argv++) {
    if (!strcmp(argv[0], "--recursive")) recursive = 1;
    else if (!strcmp(argv[0], "--keep-flags")) keep = 1;
    else break;
  }
  if (argc < 4 || argc % 2) return USAGE;
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
