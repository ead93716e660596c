/*
 * jaula-init: the minimal PID 1 that jaula puts in a guest for the "sysv" and "cmd" init styles.
 * It is bind-mounted read-only at /dev/.jaula-init and is statically linked, so it needs nothing
 * from the guest's tree.
 *
 *   jaula-init [-u UID:GID] -- CMD...  ("cmd" style) run CMD (as UID:GID, with only GID as its group,
 *                                       when given: an image's User), forward signals to it, reap orphans,
 *                                       end with CMD's exit status. SIGPWR (jaula stop) becomes SIGTERM.
 *   jaula-init -k -s RC -- CMD...      ("sysv" style) run CMD (e.g. /etc/init.d/rc 3), keep running
 *                                       and reaping after it ends. On a halt request (SIGPWR, SIGUSR1,
 *                                       SIGUSR2, SIGRTMIN+3/4) run "RC 0", on a reboot request (SIGTERM,
 *                                       SIGINT, SIGRTMIN+5) run "RC 6"; then end all processes and call
 *                                       reboot(2), which in a PID namespace ends this guest only and tells
 *                                       the supervisor whether it was a halt or a reboot.
 *
 * In both styles it serves /run/initctl as sysvinit does, so that the guest's own halt, poweroff,
 * reboot, shutdown and telinit 0|6 work: sysvinit's tools and systemd's (systemctl falls back to
 * /run/initctl when systemd is not PID 1) write a struct init_request there. Runlevel 0 halts the
 * guest and 6 reboots it: "RC 0" or "RC 6" first in the sysv style; in the cmd style the command
 * and every other process get SIGTERM (SIGKILL after 5 s). busybox's halt, poweroff and reboot
 * signal PID 1 instead (SIGUSR1, SIGUSR2, SIGTERM): the sysv style takes them as above, the cmd
 * style forwards them to its command like every signal; "halt -f" and "reboot -f" work in every
 * style (reboot(2)).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/ioctl.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static sigset_t all;
/* -u UID:GID: the command runs as this user (the init itself stays root). */
static int run_as;
static uid_t run_uid;
static gid_t run_gid;

/* The guest's programs start with every signal's default disposition and none blocked, whatever
 * this init inherited (an ignored SIGPIPE would give them EPIPE where they expect to end). */
static void reset_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  for (int s = 1; s < NSIG; s++)
    if (s != SIGKILL && s != SIGSTOP) sigaction(s, &sa, NULL); /* (glibc's two own ones: EINVAL) */
  sigprocmask(SIG_UNBLOCK, &all, NULL);
}

static pid_t spawn(char **argv) {
  pid_t p = fork();
  if (p == 0) {
    reset_signals();
    setsid();
    if (isatty(0)) ioctl(0, TIOCSCTTY, 0);
    if (run_as && (setgroups(1, &run_gid) || setgid(run_gid) || setuid(run_uid))) {
      fprintf(stderr, "jaula-init: cannot run as %u:%u: %s\n", (unsigned)run_uid, (unsigned)run_gid, strerror(errno));
      _exit(126);
    }
    execvp(argv[0], argv);
    fprintf(stderr, "jaula-init: cannot execute \"%s\": %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  return p;
}

/* Wait for `pid` (or for every child when pid == -1) for up to `ms`, reaping all. */
static int wait_for(pid_t pid, int ms) {
  struct timespec ts = {0, 50 * 1000 * 1000};
  for (int waited = 0; waited <= ms; waited += 50) {
    int st;
    pid_t w;
    while ((w = waitpid(-1, &st, WNOHANG)) > 0)
      if (w == pid) return 1;
    if (w < 0 && errno == ECHILD) return 1;
    nanosleep(&ts, NULL);
  }
  return 0;
}

/* sysvinit's <initreq.h>: what telinit, shutdown and systemctl write to /run/initctl. */
#define INITCTL "/run/initctl"
#define INIT_MAGIC 0x03091969
#define INIT_CMD_RUNLVL 1
struct init_request {
  int magic;
  int cmd;
  int runlevel;
  int sleeptime;
  char data[368];
};

static int initctl = -1;
static dev_t initctl_dev;
static ino_t initctl_ino;

/* Make (or make again) the FIFO and listen on it: SIGIO when a request arrives. A guest's boot
 * may clean /run, so this runs at every wake-up; one stat(2) when all is in place. */
static void ensure_initctl(void) {
  struct stat st;
  if (initctl >= 0 && stat(INITCTL, &st) == 0 && st.st_dev == initctl_dev && st.st_ino == initctl_ino)
    return;
  if (initctl >= 0) close(initctl);
  initctl = -1;
  if (lstat(INITCTL, &st) == 0 && !S_ISFIFO(st.st_mode)) unlink(INITCTL);
  if (mkfifo(INITCTL, 0600) < 0 && errno != EEXIST) return; /* no writable /run: nothing served */
  /* Read and write: the FIFO never reads end-of-file when a writer goes. */
  int fd = open(INITCTL, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return;
  if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode) || fcntl(fd, F_SETOWN, getpid()) < 0 ||
      fcntl(fd, F_SETFL, O_RDWR | O_NONBLOCK | O_ASYNC) < 0) {
    close(fd);
    return;
  }
  initctl = fd;
  initctl_dev = st.st_dev;
  initctl_ino = st.st_ino;
}

/* The runlevel of the first halt (0) or reboot (6) request waiting on the FIFO, or -1. */
static int initctl_request(void) {
  struct init_request req;
  int want = -1;
  while (initctl >= 0 && read(initctl, &req, sizeof req) == (ssize_t)sizeof req) {
    if (req.magic != INIT_MAGIC || req.cmd != INIT_CMD_RUNLVL) continue; /* INIT_CMD_SETENV, ... */
    if (req.runlevel == '0' || req.runlevel == '6') {
      if (want < 0) want = req.runlevel - '0';
    } else
      fprintf(stderr, "jaula-init: runlevel \"%c\" asked on " INITCTL ": only 0 (halt) and 6 (reboot) are served\n",
              req.runlevel > ' ' && req.runlevel < 127 ? req.runlevel : '?');
  }
  return want;
}

static void shutdown_guest(const char *rc, int reboot_it) {
  if (rc) {
    char *argv[] = {(char *)rc, reboot_it ? "6" : "0", NULL};
    pid_t p = spawn(argv);
    if (p > 0) wait_for(p, 120000);
  }
  kill(-1, SIGTERM);
  if (!wait_for(-1, 5000)) {
    kill(-1, SIGKILL);
    wait_for(-1, 2000);
  }
  sync();
  reboot(reboot_it ? RB_AUTOBOOT : RB_POWER_OFF);
  /* Without CAP_SYS_BOOT: end plainly; the supervisor records an exit. */
  exit(reboot_it ? 129 : 0);
}

int main(int argc, char **argv) {
  int keep = 0, i;
  const char *rc = NULL;
  for (i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-k")) keep = 1;
    else if (!strcmp(argv[i], "-s") && i + 1 < argc) rc = argv[++i];
    else if (!strcmp(argv[i], "-u") && i + 1 < argc) {
      unsigned u, g;
      if (sscanf(argv[++i], "%u:%u", &u, &g) != 2) break;
      run_as = 1, run_uid = u, run_gid = g;
    }
    else if (!strcmp(argv[i], "--")) {
      i++;
      break;
    } else break;
  }
  if (i >= argc) {
    fprintf(stderr, "jaula-init: usage: jaula-init [-k] [-s RC] [-u UID:GID] -- CMD...\n");
    return 2;
  }
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, NULL);
  ensure_initctl();
  pid_t child = spawn(&argv[i]);
  if (child < 0) {
    perror("jaula-init: fork");
    return 1;
  }
  for (;;) {
    siginfo_t si;
    int sig = sigwaitinfo(&all, &si);
    if (sig < 0) continue;
    ensure_initctl();
    if (sig == SIGIO) {
      int level = initctl_request();
      if (level >= 0) shutdown_guest(keep ? rc : NULL, level == 6);
      continue;
    }
    if (sig == SIGCHLD) {
      int st;
      pid_t w;
      while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
        if (w == child) {
          child = 0;
          if (!keep) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
      }
      continue;
    }
    if (keep) {
      if (sig == SIGPWR || sig == SIGUSR1 || sig == SIGUSR2 || sig == SIGRTMIN + 3 || sig == SIGRTMIN + 4)
        shutdown_guest(rc, 0);
      else if (sig == SIGTERM || sig == SIGINT || sig == SIGRTMIN + 5)
        shutdown_guest(rc, 1);
    } else if (child > 0) {
      kill(child, sig == SIGPWR ? SIGTERM : sig);
    }
  }
}
