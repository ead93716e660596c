/*
 * jaula-helper netns-create: the guest's network namespace.
 *
 *   jaula-helper netns-create PATH [--userns USERNS] [--ping GID-LOW GID-HIGH]
 *       Creates a network namespace bound to PATH, owned by the user namespace bound at USERNS
 *       (an unprivileged guest's), else by the host's; loopback up; optionally letting those gids
 *       use ICMP echo sockets (ping without raw sockets).
 */
#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

struct netns_args {
  const char *userns;
  char ping[64];
};

static int setup_netns(void *arg) {
  struct netns_args *a = arg;
  /* In the guest's user namespace, the new network namespace belongs to the guest: its root
   * may configure it, bind low ports, and mount its own /sys. */
  if (a->userns) {
    int fd = open(a->userns, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWUSER) < 0) return -1;
    close(fd);
  }
  if (unshare(CLONE_NEWNET) < 0) return -1;
  /* Loopback up, as a runtime does for a namespace it makes itself. */
  int sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  if (sk < 0 || ioctl(sk, SIOCGIFFLAGS, &ifr) < 0) return -1;
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(sk, SIOCSIFFLAGS, &ifr) < 0) return -1;
  close(sk);
  /* Unprivileged ICMP echo sockets for these gids: ping without raw sockets. */
  if (a->ping[0] && write_file("/proc/sys/net/ipv4/ping_group_range", a->ping) < 0) return -1;
  return 0;
}

int netns_create(int argc, char **argv) {
  struct netns_args a = {NULL, ""};
  const char *path = NULL;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--userns") && i + 1 < argc) a.userns = argv[++i];
    else if (!strcmp(argv[i], "--ping") && i + 2 < argc) {
      snprintf(a.ping, sizeof a.ping, "%s %s", argv[i + 1], argv[i + 2]);
      i += 2;
    } else if (!path) path = argv[i];
    else path = NULL, i = argc;
  }
  if (!path) return USAGE;
  if (bind_child_ns(path, "net", setup_netns, &a, NULL) < 0) {
    fprintf(stderr, "jaula-helper: network namespace at \"%s\": %s\n", path, strerror(errno));
    return 1;
  }
  return 0;
}
