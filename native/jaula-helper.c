/*
 * jaula-helper: the small, long-lived and privileged parts of jaula that must not be Node.js.
 *
 *   jaula-helper TOOL ARGS...
 *
 * One binary, one tool per file in helper/ (each file's comment says what its tool does and
 * why), chosen by the command table below (as crun's src/crun.c does):
 *
 *   shim             the per-guest supervisor (like conmon)       helper/shim.c
 *   pty-exec         an interactive session for jaulad's consoles helper/pty-exec.c
 *   notify           the shim's exit command: tells jaulad        helper/notify.c
 *   netns-move       a host device into a guest's netns           helper/netns-move.c
 *   userns-create    the guest's user namespace, bound to a file  helper/userns-create.c
 *   netns-create     the guest's network namespace, bound         helper/netns-create.c
 *   idmap-mount      the guest's layers, idmapped                 helper/idmap-mount.c
 *   private-cgroup2  crun on a hybrid cgroup host                 helper/private-cgroup2.c
 *
 * What they share is in helper/util.c and helper/conns.c (helper/helper.h).
 *
 * Statically linked: it does not depend on the host's or any guest's libraries.
 */
#include "helper/helper.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const struct command {
  const char *name;
  int (*fn)(int argc, char **argv);
  const char *usage; /* (printed when fn returns USAGE) */
} commands[] = {
    {"shim", shim, "shim --dir DIR --id ID [--sysinfo] [--cgroups-path PATH] [--restore IMAGES WORK] [--runtime-fd N | --pass-fd N] --runtime ARGV... --exit ARGV..."},
    {"pty-exec", pty_exec, "pty-exec ROWS COLS SOCKET -- ARGV..."},
    {"notify", notify, "notify SOCKET NAME INSTANCE -- FALLBACK..."},
    {"netns-move", netns_move, "netns-move NSPATH IFNAME NEWNAME"},
    {"userns-create", userns_create, "userns-create PATH HOSTID SIZE"},
    {"netns-create", netns_create, "netns-create PATH [--userns USERNS] [--ping GID-LOW GID-HIGH]"},
    {"idmap-mount", idmap_mount, "idmap-mount [--recursive] [--keep-flags] HOSTID SIZE SRC DST [SRC DST]..."},
    {"private-cgroup2", private_cgroup2, "private-cgroup2 [--exec-fd N] -- ARGV..."},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

const char *usage_of(const char *name) {
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (!strcmp(commands[i].name, name)) return commands[i].usage;
  return name;
}

int main(int argc, char **argv) {
  /* What the helper makes (the supervisor's sockets, the exit record, namespace files) is
   * root's only, whatever umask its caller had; the programs it runs get the caller's back. */
  caller_umask = umask(077);
  for (size_t i = 0; argc >= 2 && i < NCOMMANDS; i++) {
    if (strcmp(argv[1], commands[i].name)) continue;
    int rc = commands[i].fn(argc - 2, argv + 2);
    if (rc != USAGE) return rc;
    fprintf(stderr, "jaula-helper: usage: %s\n", commands[i].usage);
    return 2;
  }
  char names[256] = "";
  for (size_t i = 0; i < NCOMMANDS; i++) {
    if (i) strncat(names, "|", sizeof names - strlen(names) - 1);
    strncat(names, commands[i].name, sizeof names - strlen(names) - 1);
  }
  fprintf(stderr, "jaula-helper: internal helper of jaula; usage: jaula-helper %s ...\n", names);
  return 2;
}
