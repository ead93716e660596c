/* native/netlink.c: a guest's bridged veths over rtnetlink. */
#ifndef JAULA_NETLINK_H
#define JAULA_NETLINK_H
#include <stddef.h>

struct veth_spec {
  const char *name, *mac, *host_if;
  const char *bridge;                 /* the host end's bridge, or NULL */
  const char *address, *address6;     /* CIDR, or NULL */
  const char *gateway, *gateway6;     /* or NULL */
  int onlink;                         /* the IPv4 gateway is reached on the link */
};

/* Make each veth in the namespace bound at netpath (its host end in this thread's), configure
 * it, put its host end on its bridge, up. 0, or -errno with what failed in err; what was made
 * stays (the caller's network teardown removes it). */
int netlink_veths(const char *netpath, const struct veth_spec *v, int n, char *err, size_t cap);
#endif
