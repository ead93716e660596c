/*
 * jaula-helper private-cgroup2: crun on a hybrid cgroup host.
 *
 *   jaula-helper private-cgroup2 [--exec-fd N] -- ARGV...
 *       Runs ARGV in a private mount namespace where /sys/fs/cgroup/unified is unmounted, so
 *       crun accepts a hybrid cgroup host (it refuses "cgroups in hybrid mode"); with --exec-fd,
 *       the program executed is the file open on fd N (the runtime's sealed copy, which it
 *       takes as already cloned: runtime/sealed.ts), ARGV[0] only its name.
 */
#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

int private_cgroup2(int argc, char **argv) {
  int exec_fd = -1;
  if (argc >= 2 && !strcmp(argv[0], "--exec-fd")) {
    exec_fd = atoi(argv[1]);
    if (exec_fd < 3) return USAGE;
    argc -= 2, argv += 2;
  }
  if (argc < 2 || strcmp(argv[0], "--")) return USAGE;
  if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
    fprintf(stderr, "jaula-helper: private mount namespace: %s\n", strerror(errno));
    return 1;
  }
  if (umount2("/sys/fs/cgroup/unified", MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT) {
    fprintf(stderr, "jaula-helper: unmount /sys/fs/cgroup/unified: %s\n", strerror(errno));
    return 1;
  }
  umask(caller_umask); /* (the runtime's files and cgroups: as its caller would make them) */
  if (exec_fd >= 0) {
    fcntl(exec_fd, F_SETFD, FD_CLOEXEC); /* (the runtime need not hold it) */
    fexecve(exec_fd, &argv[1], environ);
  } else
    execvp(argv[1], &argv[1]);
  fprintf(stderr, "jaula-helper: cannot execute \"%s\": %s\n", argv[1], strerror(errno));
  return 127;
}
