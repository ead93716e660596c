/*
 * A guest's bridged veths made over rtnetlink in jaula's own process, not by `nsenter ip` and
 * `ip` (two programs a start, network/plan.ts guestBatch and hostPostBatch say the same in ip's
 * words): the veth is made inside the guest's network namespace with its host end sent to the
 * host's, given its MAC, addresses and default routes there, and its host end put on its bridge
 * and up.
 *
 * The calling thread enters the guest's namespace only to open two sockets there (a netlink
 * socket and one for interface indexes; a socket stays in the namespace it was made in), and
 * returns to its own at once: nothing else it does runs in the guest's namespace. It keeps this
 * process's credentials (the host's root), which moving a device between namespaces requires.
 */
#define _GNU_SOURCE
#include "netlink.h"
#include "nsops.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

struct req {
  struct nlmsghdr n;
  char buf[1024];
};

static struct rtattr *add_attr(struct req *r, int type, const void *data, size_t len) {
  size_t off = NLMSG_ALIGN(r->n.nlmsg_len);
  if (off + RTA_SPACE(len) > sizeof *r) abort(); /* (the requests here are small and fixed) */
  struct rtattr *a = (struct rtattr *)((char *)r + off);
  a->rta_type = (unsigned short)type;
  a->rta_len = (unsigned short)RTA_LENGTH(len);
  if (len) memcpy(RTA_DATA(a), data, len);
  r->n.nlmsg_len = (unsigned)(off + RTA_ALIGN(a->rta_len));
  return a;
}
static void end_nest(struct req *r, struct rtattr *nest) {
  nest->rta_len = (unsigned short)((char *)r + NLMSG_ALIGN(r->n.nlmsg_len) - (char *)nest);
}

/* Send one request and read its acknowledgement: 0, or the kernel's errno. */
static int talk(int fd, struct nlmsghdr *n) {
  static __thread unsigned seq;
  n->nlmsg_seq = ++seq;
  n->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  struct sockaddr_nl to = {.nl_family = AF_NETLINK};
  if (sendto(fd, n, n->nlmsg_len, 0, (struct sockaddr *)&to, sizeof to) < 0) return errno;
  char buf[8192];
  for (;;) {
    ssize_t r = recv(fd, buf, sizeof buf, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned)r); h = NLMSG_NEXT(h, r)) {
      if (h->nlmsg_seq != n->nlmsg_seq) continue;
      if (h->nlmsg_type == NLMSG_ERROR) return -((struct nlmsgerr *)NLMSG_DATA(h))->error;
    }
  }
}

static void start(struct req *r, int type, int flags, const void *hdr, size_t len) {
  memset(r, 0, sizeof *r);
  r->n.nlmsg_len = (unsigned)NLMSG_LENGTH(len);
  r->n.nlmsg_type = (unsigned short)type;
  r->n.nlmsg_flags = (unsigned short)flags;
  memcpy(NLMSG_DATA(&r->n), hdr, len);
}

static int parse_mac(const char *s, unsigned char mac[6]) {
  unsigned v[6];
  if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) return -1;
  for (int i = 0; i < 6; i++) mac[i] = (unsigned char)v[i];
  return 0;
}

/* "ADDR/PREFIX" -> family, bytes, prefix; -1 when it is none. */
static int parse_cidr(const char *s, int *family, unsigned char addr[16], int *prefix) {
  char ip[64];
  const char *slash = strchr(s, '/');
  size_t len = slash ? (size_t)(slash - s) : strlen(s);
  if (len >= sizeof ip) return -1;
  memcpy(ip, s, len);
  ip[len] = 0;
  *family = strchr(ip, ':') ? AF_INET6 : AF_INET;
  if (inet_pton(*family, ip, addr) != 1) return -1;
  *prefix = slash ? atoi(slash + 1) : (*family == AF_INET ? 32 : 128);
  return 0;
}

static int ifindex(int sk, const char *name) {
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
  return ioctl(sk, SIOCGIFINDEX, &ifr) < 0 ? -1 : ifr.ifr_ifindex;
}

static int link_veth(int nl, const struct veth_spec *v, int hostns) {
  struct req r;
  struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
  unsigned char mac[6];
  if (parse_mac(v->mac, mac) < 0) return EINVAL;
  start(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof ifi);
  add_attr(&r, IFLA_IFNAME, v->name, strlen(v->name) + 1);
  add_attr(&r, IFLA_ADDRESS, mac, 6);
  struct rtattr *info = add_attr(&r, IFLA_LINKINFO, NULL, 0);
  add_attr(&r, IFLA_INFO_KIND, "veth", 4);
  struct rtattr *data = add_attr(&r, IFLA_INFO_DATA, NULL, 0);
  struct rtattr *peer = add_attr(&r, VETH_INFO_PEER, &ifi, sizeof ifi);
  add_attr(&r, IFLA_IFNAME, v->host_if, strlen(v->host_if) + 1);
  add_attr(&r, IFLA_NET_NS_FD, &hostns, sizeof hostns);
  end_nest(&r, peer);
  end_nest(&r, data);
  end_nest(&r, info);
  return talk(nl, &r.n);
}

static int add_addr(int nl, int index, const char *cidr) {
  int family, prefix;
  unsigned char a[16];
  if (parse_cidr(cidr, &family, a, &prefix) < 0) return EINVAL;
  struct ifaddrmsg ifa = {.ifa_family = (unsigned char)family,
                          .ifa_prefixlen = (unsigned char)prefix,
                          .ifa_flags = family == AF_INET6 ? IFA_F_NODAD : 0,
                          .ifa_index = (unsigned)index};
  struct req r;
  start(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &ifa, sizeof ifa);
  size_t len = family == AF_INET ? 4 : 16;
  add_attr(&r, IFA_LOCAL, a, len);
  add_attr(&r, IFA_ADDRESS, a, len);
  if (family == AF_INET6) {
    unsigned flags = IFA_F_NODAD;
    add_attr(&r, IFA_FLAGS, &flags, sizeof flags);
  }
  return talk(nl, &r.n);
}

/* Up, and on `master` (an index, 0: none), the device `name` of nl's namespace. */
static int set_link(int nl, const char *name, int master) {
  struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_flags = IFF_UP, .ifi_change = IFF_UP};
  struct req r;
  start(&r, RTM_NEWLINK, 0, &ifi, sizeof ifi);
  add_attr(&r, IFLA_IFNAME, name, strlen(name) + 1);
  if (master) add_attr(&r, IFLA_MASTER, &master, sizeof master);
  return talk(nl, &r.n);
}

/* No IPv6 address generated for the device `name` (while down): a bridge port's host end needs
 * none, and without one it sends no DAD, MLD or router solicitation, each of which the bridge
 * floods to every other port (the cost of a start grew with the guests on the bridge). */
static int no_ipv6_address(int nl, const char *name) {
  struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
  struct req r;
  start(&r, RTM_NEWLINK, 0, &ifi, sizeof ifi);
  add_attr(&r, IFLA_IFNAME, name, strlen(name) + 1);
  struct rtattr *spec = add_attr(&r, IFLA_AF_SPEC, NULL, 0);
  struct rtattr *inet6 = add_attr(&r, AF_INET6, NULL, 0);
  unsigned char mode = IN6_ADDR_GEN_MODE_NONE;
  add_attr(&r, IFLA_INET6_ADDR_GEN_MODE, &mode, sizeof mode);
  end_nest(&r, inet6);
  end_nest(&r, spec);
  return talk(nl, &r.n);
}

static int default_route(int nl, int index, const char *gw, int onlink) {
  unsigned char a[16];
  int family = strchr(gw, ':') ? AF_INET6 : AF_INET;
  if (inet_pton(family, gw, a) != 1) return EINVAL;
  struct rtmsg rt = {.rtm_family = (unsigned char)family,
                     .rtm_table = RT_TABLE_MAIN,
                     .rtm_protocol = RTPROT_BOOT,
                     .rtm_scope = RT_SCOPE_UNIVERSE,
                     .rtm_type = RTN_UNICAST,
                     .rtm_flags = onlink ? RTNH_F_ONLINK : 0};
  struct req r;
  start(&r, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &rt, sizeof rt);
  add_attr(&r, RTA_GATEWAY, a, family == AF_INET ? 4 : 16);
  add_attr(&r, RTA_OIF, &index, sizeof index);
  return talk(nl, &r.n);
}

/* Sockets of the namespace at `path`, opened with this thread inside it for as long as that takes. */
static int sockets_in(const char *path, int *nl, int *sk, char *err, size_t cap) {
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  int ns = open(path, O_RDONLY | O_CLOEXEC);
  int rc = 0;
  if (self < 0 || ns < 0) rc = nsops_fail(err, cap, errno, "opening the network namespaces");
  else if (setns(ns, CLONE_NEWNET) < 0) rc = nsops_fail(err, cap, errno, "entering the guest's network namespace");
  else {
    *nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    *sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int e = errno;
    if (setns(self, CLONE_NEWNET) < 0) abort(); /* (never left in a guest's namespace) */
    if (*nl < 0 || *sk < 0) rc = nsops_fail(err, cap, e, "sockets in the guest's network namespace");
  }
  if (self >= 0) close(self);
  if (ns >= 0) close(ns);
  return rc;
}

int netlink_veths(const char *netpath, const struct veth_spec *v, int n, char *err, size_t cap) {
  int nl = -1, sk = -1, hnl = -1, hsk = -1, rc = 0, e;
  int hostns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (hostns < 0) return nsops_fail(err, cap, errno, "opening the host's network namespace");
  rc = sockets_in(netpath, &nl, &sk, err, cap);
  if (!rc) {
    hnl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    hsk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (hnl < 0 || hsk < 0) rc = nsops_fail(err, cap, errno, "netlink sockets");
  }
  for (int i = 0; !rc && i < n; i++) {
    if ((e = link_veth(nl, &v[i], hostns))) {
      rc = nsops_fail(err, cap, e, "making veth %s (host end %s)", v[i].name, v[i].host_if);
      break;
    }
    int index = ifindex(sk, v[i].name);
    if (index < 0) rc = nsops_fail(err, cap, errno, "the index of %s", v[i].name);
    for (int k = 0; !rc && k < 2; k++) {
      const char *a = k ? v[i].address6 : v[i].address;
      if (a && (e = add_addr(nl, index, a))) rc = nsops_fail(err, cap, e, "adding address %s to %s", a, v[i].name);
    }
    if (!rc && (e = set_link(nl, v[i].name, 0))) rc = nsops_fail(err, cap, e, "bringing %s up", v[i].name);
  }
  /* The default routes: through the first interface with a gateway of each family. */
  for (int k = 0; !rc && k < 2; k++)
    for (int i = 0; i < n; i++) {
      const char *gw = k ? v[i].gateway6 : v[i].gateway;
      if (!gw) continue;
      int index = ifindex(sk, v[i].name);
      if (index < 0 || (e = default_route(nl, index, gw, !k && v[i].onlink)))
        rc = nsops_fail(err, cap, index < 0 ? errno : e, "the default route via %s", gw);
      break;
    }
  for (int i = 0; !rc && i < n; i++) {
    int master = v[i].bridge ? ifindex(hsk, v[i].bridge) : 0;
    if (master < 0) rc = nsops_fail(err, cap, errno, "the bridge %s", v[i].bridge);
    else if (master && (e = no_ipv6_address(hnl, v[i].host_if)))
      rc = nsops_fail(err, cap, e, "turning IPv6 addresses off on %s", v[i].host_if);
    else if ((e = set_link(hnl, v[i].host_if, master)))
      rc = nsops_fail(err, cap, e, "putting %s on %s", v[i].host_if, v[i].bridge ? v[i].bridge : "no bridge");
  }
  int fds[] = {nl, sk, hnl, hsk, hostns};
  for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
    if (fds[i] >= 0) close(fds[i]);
  return rc;
}
