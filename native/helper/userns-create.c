/*
 * jaula-helper userns-create: the guest's user namespace.
 *
 *   jaula-helper userns-create PATH HOSTID SIZE
 *       Creates a user namespace mapping IDs 0..SIZE-1 inside to HOSTID..HOSTID+SIZE-1 (uids and
 *       gids) and binds it to PATH, so the guest, its network namespace and its idmapped root all
 *       use that one namespace.
 */
#include "helper.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int setup_userns(void *arg) {
  (void)arg;
  return unshare(CLONE_NEWUSER);
}

int userns_create(int argc, char **argv) {
  if (argc != 3) return USAGE;
  struct idmap m = {strtoull(argv[1], NULL, 10), strtoull(argv[2], NULL, 10)};
  if (m.size == 0 || m.host + m.size > 4294967295ULL) {
    fprintf(stderr, "jaula-helper: bad id range %s+%s\n", argv[1], argv[2]);
    return 2;
  }
  if (bind_child_ns(argv[0], "user", setup_userns, &m, write_maps) < 0) {
    fprintf(stderr, "jaula-helper: user namespace at \"%s\": %s\n", argv[0], strerror(errno));
    return 1;
  }
  return 0;
}
