/*
 * The shim's parts: its console (console.c), its cgroups and the guest's (cgroups.c), and the
 * guest's view of sysinfo(2) (sysinfo.c); shim.c runs them.
 */
#ifndef JAULA_SHIM_H
#define JAULA_SHIM_H

#include "helper.h"

/* ---- console.c ---- */

/* At most this much of the console is copied per turn of the supervisor's loop: a guest that
 * floods its console must not keep the supervisor from reaping and answering sysinfo(2). */
#define DRAIN_MAX (64 << 10)
#define MAX_CLIENTS 8

extern long long log_max; /* (--log-max) */
void log_open(void);
int attach_listen(void);
void attach_accept(int lsock);
int clients_poll(struct pollfd *p);
void clients_input(const struct pollfd *p, int nc, int master);
int drain(int master, size_t max);
void drain_last(int master);
void console_close(void);

/* ---- cgroups.c ---- */

struct hier {
  int v2;
  char ctrls[256]; /* v1: its controllers ("cpu,cpuacct"); v2: "" */
  char mnt[512];
  char own[1024];
  char guest[1024];
  char sup[1600]; /* the supervisor's cgroup directory in it, once made */
};

void cgroups_init(const char *cgroups_path);
struct hier *hier_of(const char *ctrl);
struct hier *hier_of_line(char *line, char **path);
void sup_enter(void);
void sup_leave(void);

/* ---- sysinfo.c ---- */

#define MAX_NOTIFY 1024 /* one per thread of a restored guest (CRIU restores each thread's filter) */
/* Answers per second (and at once) the supervisor gives a guest's sysinfo(2) calls. A caller
 * beyond them waits in the kernel until its turn comes (its notification is read later). */
#define SYSINFO_RATE 500
#define SYSINFO_BURST 500

extern long long init_start;
long long read_start(pid_t pid);
int handle_notify(int fd);

#endif
