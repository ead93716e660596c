/*
 * jaula-helper netns-move: a host device into a guest's network namespace.
 *
 *   jaula-helper netns-move NSPATH IFNAME NEWNAME
 *       Moves the host's network device IFNAME into the network namespace bound at NSPATH,
 *       renamed NEWNAME (one rtnetlink request: IFLA_NET_NS_FD + IFLA_IFNAME). iproute2 can only
 *       name a namespace by pid or by a name under /var/run/netns.
 */
#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

static void nla_put(struct nlmsghdr *h, unsigned short type, const void *data, unsigned short len) {
  struct rtattr *a = (struct rtattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));
  a->rta_type = type;
  a->rta_len = RTA_LENGTH(len);
  memcpy(RTA_DATA(a), data, len);
  h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
}

int netns_move(int argc, char **argv) {
  if (argc != 3) return USAGE;
  int nsfd = open(argv[0], O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) {
    fprintf(stderr, "jaula-helper: network namespace \"%s\": %s\n", argv[0], strerror(errno));
    return 1;
  }
  unsigned idx = if_nametoindex(argv[1]);
  if (!idx) {
    fprintf(stderr, "jaula-helper: no network device \"%s\"\n", argv[1]);
    return 1;
  }
  if (strlen(argv[2]) >= IFNAMSIZ) {
    fprintf(stderr, "jaula-helper: interface name \"%s\" is too long\n", argv[2]);
    return 2;
  }
  struct {
    struct nlmsghdr h;
    struct ifinfomsg i;
    char attrs[256];
  } req;
  memset(&req, 0, sizeof req);
  req.h.nlmsg_len = NLMSG_LENGTH(sizeof req.i);
  req.h.nlmsg_type = RTM_NEWLINK;
  req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  req.i.ifi_family = AF_UNSPEC;
  req.i.ifi_index = (int)idx;
  nla_put(&req.h, IFLA_NET_NS_FD, &nsfd, sizeof nsfd);
  nla_put(&req.h, IFLA_IFNAME, argv[2], (unsigned short)(strlen(argv[2]) + 1));
  int sk = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  if (sk < 0 || sendto(sk, &req, req.h.nlmsg_len, 0, (struct sockaddr *)&sa, sizeof sa) < 0) {
    fprintf(stderr, "jaula-helper: netlink: %s\n", strerror(errno));
    return 1;
  }
  char buf[4096];
  ssize_t n = recv(sk, buf, sizeof buf, 0);
  struct nlmsghdr *r = (struct nlmsghdr *)buf;
  if (n < (ssize_t)sizeof *r || r->nlmsg_type != NLMSG_ERROR) {
    fprintf(stderr, "jaula-helper: netlink: unexpected answer\n");
    return 1;
  }
  int err = ((struct nlmsgerr *)NLMSG_DATA(r))->error;
  if (err) {
    fprintf(stderr, "jaula-helper: moving \"%s\" into \"%s\" as \"%s\": %s\n", argv[1], argv[0], argv[2], strerror(-err));
    return 1;
  }
  return 0;
}
