/*
 * The shim's cgroups: the guest's, and the supervisor's own.
 *
 * Found once, when the supervisor starts (it never changes while the guest runs): the cgroup
 * hierarchies' mount points, the supervisor's own cgroup in each (where it goes back before its
 * exit command) and the guest's (from the runtime's cgroupsPath: absolute, or relative to the
 * runtime's own cgroup, which is the supervisor's).
 */
#include "shim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HIER 16
static struct hier hiers[MAX_HIER];
static int nhier;

/* Write `text` to DIR/FILE (a cgroup knob) in one write. */
static int write_str(const char *dir, const char *file, const char *text) {
  char path[2048];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  return write_file(path, text);
}

/* Is `ctrl` in the comma-separated list? */
static int has_ctrl(const char *list, const char *ctrl) {
  size_t cl = strlen(ctrl);
  for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
    if (!strncmp(p, ctrl, cl) && (p[cl] == ',' || p[cl] == 0)) return 1;
  return 0;
}

/* The hierarchy of a controller: the v1 one that has it, else the unified one. */
struct hier *hier_of(const char *ctrl) {
  for (int i = 0; i < nhier; i++)
    if (!hiers[i].v2 && has_ctrl(hiers[i].ctrls, ctrl)) return &hiers[i];
  for (int i = 0; i < nhier; i++)
    if (hiers[i].v2) return &hiers[i];
  return NULL;
}

/* The hierarchy a line of /proc/PID/cgroup ("4:memory:/x", "0::/x") is about, and its path. */
struct hier *hier_of_line(char *line, char **path) {
  char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
  if (!b) return NULL;
  *b = 0;
  *path = b + 1;
  const char *ctrls = a + 1;
  for (int i = 0; i < nhier; i++) {
    if (hiers[i].v2) {
      if (*ctrls == 0) return &hiers[i];
      continue;
    }
    char first[64];
    size_t fl = strcspn(ctrls, ",");
    if (!*ctrls || fl >= sizeof first) continue;
    memcpy(first, ctrls, fl);
    first[fl] = 0;
    if (has_ctrl(hiers[i].ctrls, first)) return &hiers[i];
  }
  return NULL;
}

/*
 * Has every hierarchy of /proc/self/cgroup (`keys`: a v1 line's first controller, "" for the
 * unified one) a mount among those found so far?
 */
static int all_found(char keys[][64], int nkeys) {
  for (int k = 0; k < nkeys; k++) {
    int found = 0;
    for (int i = 0; i < nhier && !found; i++)
      found = keys[k][0] ? !hiers[i].v2 && has_ctrl(hiers[i].ctrls, keys[k]) : hiers[i].v2;
    if (!found) return 0;
  }
  return 1;
}

void cgroups_init(const char *cgroups_path) {
  char self[8192];
  if (read_small("/proc/self/cgroup", self, sizeof self) < 0) return;
  char keys[MAX_HIER][64];
  int nkeys = 0;
  for (const char *l = self; *l && nkeys < MAX_HIER;) {
    const char *e = l + strcspn(l, "\n"), *a = memchr(l, ':', (size_t)(e - l));
    size_t n = a ? strcspn(a + 1, ",:\n") : 0;
    if (a && n < sizeof keys[0]) {
      memcpy(keys[nkeys], a + 1, n);
      keys[nkeys++][n] = 0;
    }
    l = *e ? e + 1 : e;
  }
  /*
   * The mount table, line by line, only until every hierarchy of this process has its mount:
   * the cgroup mounts come early, and the table grows with every running guest (each line
   * read costs the kernel a path lookup; the whole of it at 1000 guests, milliseconds).
   */
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (!f) return;
  char *ml = NULL;
  size_t cap = 0;
  while (nhier < MAX_HIER && !(nkeys && all_found(keys, nkeys)) && getline(&ml, &cap, f) > 0) {
    char *dash = strstr(ml, " - ");
    if (!dash) continue;
    char type[32] = "", opts[512] = "", point[512] = "";
    if (sscanf(dash + 3, "%31s %*s %511s", type, opts) < 1) continue;
    if (sscanf(ml, "%*s %*s %*s %*s %511s", point) != 1) continue;
    struct hier *h = &hiers[nhier];
    memset(h, 0, sizeof *h);
    if (!strcmp(type, "cgroup2")) h->v2 = 1;
    else if (strcmp(type, "cgroup")) continue;
    else snprintf(h->ctrls, sizeof h->ctrls, "%s", opts);
    snprintf(h->mnt, sizeof h->mnt, "%s", point);
    nhier++;
  }
  free(ml);
  fclose(f);
  char *save;
  for (char *line = strtok_r(self, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char *path;
    struct hier *h = hier_of_line(line, &path);
    if (!h) continue;
    snprintf(h->own, sizeof h->own, "%s", path);
    if (!cgroups_path) continue;
    if (cgroups_path[0] == '/') snprintf(h->guest, sizeof h->guest, "%s", cgroups_path);
    else snprintf(h->guest, sizeof h->guest, "%s/%s", strcmp(path, "/") ? path : "", cgroups_path);
  }
}

/*
 * The supervisor's own cgroup, beside the guest's (DIR/.supervisor-NAME for the guest's
 * DIR/NAME), in the memory, cpu, cpuacct and pids hierarchies (v1) or the unified one: what
 * the supervisor does for the guest (its console, its sysinfo(2) answers) is counted there and
 * bounded, not taken from the host's share. The guest's own limits stay the guest's.
 */
#define SUP_MEMORY "33554432"
#define SUP_PIDS "16"
#define SUP_CPU_QUOTA "20000" /* of 100000 us: a fifth of one CPU */
#define SUP_V1_SHARES "128"   /* (an eighth of a guest's default 1024) */
#define SUP_V2_WEIGHT "13"

void sup_enter(void) {
  static const char *v1[] = {"memory", "cpu", "cpuacct", "pids"};
  for (int i = 0; i < nhier; i++) {
    struct hier *h = &hiers[i];
    int want = h->v2 ? hier_of("memory") == h : 0;
    for (size_t k = 0; !h->v2 && k < sizeof v1 / sizeof v1[0]; k++) want |= has_ctrl(h->ctrls, v1[k]);
    if (!want || !h->guest[0] || !strcmp(h->guest, "/")) continue;
    const char *slash = strrchr(h->guest, '/');
    char dir[1600];
    snprintf(dir, sizeof dir, "%s%.*s/.supervisor-%s", h->mnt, (int)(slash - h->guest), h->guest, slash + 1);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
      fprintf(stderr, "jaula-helper: cannot make the supervisor's cgroup %s: %s\n", dir, strerror(errno));
      continue;
    }
    if (h->v2) {
      write_str(dir, "memory.max", SUP_MEMORY);
      write_str(dir, "pids.max", SUP_PIDS);
      write_str(dir, "cpu.weight", SUP_V2_WEIGHT);
      write_str(dir, "cpu.max", SUP_CPU_QUOTA " 100000");
    } else {
      if (has_ctrl(h->ctrls, "memory")) write_str(dir, "memory.limit_in_bytes", SUP_MEMORY);
      if (has_ctrl(h->ctrls, "pids")) write_str(dir, "pids.max", SUP_PIDS);
      if (has_ctrl(h->ctrls, "cpu")) {
        write_str(dir, "cpu.shares", SUP_V1_SHARES);
        write_str(dir, "cpu.cfs_quota_us", SUP_CPU_QUOTA);
      }
    }
    if (write_str(dir, "cgroup.procs", "0") < 0) {
      fprintf(stderr, "jaula-helper: cannot enter the supervisor's cgroup %s: %s\n", dir, strerror(errno));
      rmdir(dir);
      continue;
    }
    snprintf(h->sup, sizeof h->sup, "%s", dir);
  }
}

/* Back to where the supervisor started, and its own cgroups removed (before the exit command,
 * jaula's cleanup, runs: that must not be bound by them). Where it cannot go back, the limits go. */
void sup_leave(void) {
  char pid[32];
  snprintf(pid, sizeof pid, "%d", (int)getpid());
  for (int i = 0; i < nhier; i++) {
    struct hier *h = &hiers[i];
    if (!h->sup[0]) continue;
    char home[1600];
    snprintf(home, sizeof home, "%s%s", h->mnt, h->own);
    if (write_str(home, "cgroup.procs", pid) < 0) {
      fprintf(stderr, "jaula-helper: cannot go back to cgroup %s: %s\n", home, strerror(errno));
      write_str(h->sup, h->v2 ? "memory.max" : "memory.limit_in_bytes", h->v2 ? "max" : "-1");
      write_str(h->sup, "pids.max", "max");
      write_str(h->sup, h->v2 ? "cpu.max" : "cpu.cfs_quota_us", h->v2 ? "max" : "-1");
      continue;
    }
    /* (v1 may hold a cgroup busy for a moment after its last task left: a millisecond or two;
     * the exit record, which a stop waits for, comes after this) */
    for (int k = 0; k < 1000 && rmdir(h->sup) < 0 && errno == EBUSY; k++) usleep(1000);
  }
}
