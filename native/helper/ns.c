/*
 * Namespaces that jaula-helper's tools bind to a file (userns-create, netns-create) and the id
 * maps of a user namespace (userns-create, idmap-mount).
 */
#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

/* Fork a child that runs `setup` in new namespaces and then waits; the parent binds the child's
 * namespace file `nsname` to `path` after `before_bind` (e.g. writing the id maps). */
int bind_child_ns(const char *path, const char *nsname, int (*setup)(void *), void *arg,
                  int (*before_bind)(pid_t, void *)) {
  int ready[2], go[2];
  if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0) return -1;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    close(ready[0]);
    close(go[1]);
    char c = setup(arg) == 0 ? 'y' : 'n';
    int e = errno;
    if (write(ready[1], &c, 1) < 0) _exit(1);
    if (c == 'n') {
      if (write(ready[1], &e, sizeof e) < 0) _exit(1);
      _exit(1);
    }
    if (read(go[0], &c, 1) < 0) _exit(1); /* wait until the parent has bound the namespace */
    _exit(0);
  }
  close(ready[1]);
  close(go[0]);
  char c = 'n';
  int e = EIO, rc = -1;
  if (read(ready[0], &c, 1) == 1 && c == 'y') {
    char ns[64];
    snprintf(ns, sizeof ns, "/proc/%d/ns/%s", pid, nsname);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) close(fd);
    if ((before_bind == NULL || before_bind(pid, arg) == 0) && mount(ns, path, NULL, MS_BIND, NULL) == 0) rc = 0;
    else e = errno;
  } else if (read(ready[0], &e, sizeof e) != sizeof e) e = EIO;
  close(go[1]); /* lets the child end */
  waitpid(pid, NULL, 0);
  errno = e;
  return rc;
}

/* Writes the map 0 HOST SIZE (arg: a struct idmap) as the uid and gid maps of process pid. */
int write_maps(pid_t pid, void *arg) {
  struct idmap *m = arg;
  char path[64], map[96];
  snprintf(map, sizeof map, "0 %llu %llu\n", m->host, m->size);
  snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
  if (write_file(path, map) < 0) return -1;
  snprintf(path, sizeof path, "/proc/%d/gid_map", pid);
  return write_file(path, map);
}

