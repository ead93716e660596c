/*
 * jaula-helper notify: a guest's exit, handed to jaulad.
 *
 *   jaula-helper notify SOCKET NAME INSTANCE -- FALLBACK...
 *       The shim's exit command: tells jaulad (on SOCKET) that the guest's init ended, so that
 *       jaulad records it and cleans up itself; runs FALLBACK (`jaula __exited`) if it does not.
 *       Nothing at all when a stop is under way (the file "stopping" in the working directory,
 *       the guest's run directory): the stopper does that work.
 */
#include "helper.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

/*
 * The shim's exit command when jaulad may run: POST /v1/guests/NAME/exited {"instance": ...} on
 * jaulad's socket, so that jaulad records the exit and cleans up in its own process (no Node.js
 * process per exit). Anything but "200" (no jaulad, an error, a timeout) runs FALLBACK instead
 * (`jaula __exited NAME INSTANCE`); both are idempotent.
 */
int notify(int argc, char **argv) {
  if (argc < 5 || strcmp(argv[3], "--")) return USAGE;
  const char *sockpath = argv[0], *name = argv[1], *instance = argv[2];
  char **fallback = argv + 4;
  /* A stop is under way (its marker in the guest's run directory, the shim's working
   * directory): the stopper records the exit and cleans up; nothing to hand over. */
  if (access("stopping", F_OK) == 0) return 0;
  int ok = 0;
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && strlen(sockpath) < sizeof addr.sun_path) {
    strcpy(addr.sun_path, sockpath);
    struct timeval tv = {120, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    char body[256], req[768];
    int bl = snprintf(body, sizeof body, "{\"instance\":\"%s\"}", instance);
    int rl = snprintf(req, sizeof req,
                      "POST /v1/guests/%s/exited HTTP/1.1\r\nHost: jaulad\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                      name, bl, body);
    if (bl > 0 && bl < (int)sizeof body && rl > 0 && rl < (int)sizeof req &&
        connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0 && write_all(fd, req, rl) == 0) {
      char resp[32];
      size_t got = 0;
      while (got < 12) {
        ssize_t n = read(fd, resp + got, sizeof resp - 1 - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
      }
      ok = got >= 12 && !strncmp(resp, "HTTP/1.1 200", 12);
    }
  }
  if (fd >= 0) close(fd);
  if (ok) return 0;
  reset_signals();
  execvp(fallback[0], fallback);
  fprintf(stderr, "jaula-helper: cannot execute \"%s\": %s\n", fallback[0], strerror(errno));
  return 127;
}
