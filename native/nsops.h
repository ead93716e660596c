/* native/nsops.c: namespaces and idmapped mounts made in jaula's own process. */
#ifndef JAULA_NSOPS_H
#define JAULA_NSOPS_H
#include <stddef.h>

struct nsops_create_args {
  const char *userpath;          /* a new user namespace bound here (map 0 host size), or NULL */
  unsigned long long host, size; /* its map */
  const char *join;              /* without userpath: the bound user namespace the network one belongs to, or NULL */
  const char *netpath;           /* a new network namespace (loopback up) bound here, or NULL */
  long long ping_lo, ping_hi;    /* its ping_group_range; ping_hi < 0: left as it is */
};

/* 0, or -errno with what failed in err. On failure nothing is left bound. */
int nsops_create(const struct nsops_create_args *a, char *err, size_t cap);

/* Bind pairs[2i] on pairs[2i+1], idmapped 0..size-1 -> host..; 0, or -errno with err. */
int nsops_idmap_mounts(unsigned long long host, unsigned long long size, int recursive, int keep,
                       const char *const *pairs, int n, char *err, size_t cap);
/* Write "what: strerror(e)" (what from fmt) into err; returns -e. */
int nsops_fail(char *err, size_t cap, int e, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#endif
