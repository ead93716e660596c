/* native/spawn.c: programs started by posix_spawn, their exits seen by one thread. */
#ifndef JAULA_SPAWN_H
#define JAULA_SPAWN_H
#include <sys/types.h>

/* Start argv (argv[0] a path; exe, when not NULL, the file executed instead) with env envp
 * (NULL: this process's), the child's fd i being fds[i] (-1: /dev/null) for i < nfds, in a new
 * session if setsid, in cwd (NULL: this one's). 0, or an errno (ENOENT: no such program). */
int spawn_program(char *const *argv, const char *exe, char *const *envp, const int *fds, int nfds, int setsid,
                  const char *cwd, pid_t *pidp);

/* A sealed, read-only copy of the program at path (a memfd, close-on-exec) in *fdp: what an OCI
 * runtime, executed from it, takes as already cloned (it skips its copy of itself, a mount and
 * an exec: runtime/sealed.ts). 0, or an errno. */
int sealed_copy(const char *path, int *fdp);

/* Have cb(pid, code, signal) called on the reaper thread when pid (a child) ends; it is reaped
 * there. code is -1 when a signal ended it. 0, or an errno. */
int spawn_watch(pid_t pid, void (*cb)(pid_t, int, int));
#endif
