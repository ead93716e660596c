/*
 * What jaula-helper's tools share (util.c, conns.c) and the tools themselves, one file each
 * (the command table is in ../jaula-helper.c).
 */
#ifndef JAULA_HELPER_H
#define JAULA_HELPER_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <poll.h>
#include <stddef.h>
#include <sys/types.h>

/* The shim's parent reads "ok PID" or "err MESSAGE" on this fd. */
#define SYNC_FD 3

/* ---- util.c ---- */

/* The umask the helper was started with (it uses 077 for what it makes itself). */
extern mode_t caller_umask;

/* Says what went wrong on stderr and on SYNC_FD ("err ..."), and exits with 1. */
void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
long long now_ms(void);
void reset_signals(void);
void reap(int sfd, pid_t want, int *status, void (*other)(void *, pid_t, int), void *arg);
ssize_t read_small(const char *path, char *buf, size_t size);
int write_file(const char *path, const char *text);
int write_all(int fd, const char *buf, ssize_t n);

/* ---- conns.c: the helper's sockets, file descriptors from the runtime ---- */

/* (why these: conns.c) */
#define CONN_TIMEOUT_MS 30000
#define MAX_CONNS 8

/* Connections that may still pass a descriptor, each until its deadline. */
struct conns {
  const char *what;
  int n;
  int fd[MAX_CONNS];
  long long until[MAX_CONNS];
};

int listen_unix(const char *path, int backlog);
void conns_close(struct conns *c);
void conns_accept(struct conns *c, int lsock);
int conns_poll(const struct conns *c, struct pollfd *p, int timeout);
int conns_recv(struct conns *c, const struct pollfd *p);
int is_pty_master(int fd);
int is_seccomp_notify(int fd);

/* ---- the tools: each takes the arguments after its name ---- */

/* What a tool returns for arguments it cannot take: main prints its usage from the command
 * table and exits with 2. */
#define USAGE (-1)
const char *usage_of(const char *name); /* (jaula-helper.c) */

int shim(int argc, char **argv);                 /* shim.c (console.c, cgroups.c, sysinfo.c) */
int pty_exec(int argc, char **argv);             /* pty-exec.c */
int notify(int argc, char **argv);               /* notify.c */
int netns_move(int argc, char **argv);           /* netns-move.c */
int userns_create(int argc, char **argv);        /* userns-create.c (ns.c) */
int netns_create(int argc, char **argv);         /* netns-create.c (ns.c) */
int idmap_mount(int argc, char **argv);          /* idmap-mount.c (ns.c) */
int private_cgroup2(int argc, char **argv);      /* private-cgroup2.c */

/* ---- ns.c: namespaces bound to a file, and id maps ---- */

struct idmap {
  unsigned long long host, size;
};

int bind_child_ns(const char *path, const char *nsname, int (*setup)(void *), void *arg,
                  int (*before_bind)(pid_t, void *));
int write_maps(pid_t pid, void *arg);

#endif
