/*
 * migprobe: the probes of bench/migrate (built there with gcc -static; the busybox guest has no
 * UDP server and no reader of the monotonic clock).
 *
 *   migprobe echo PORT        in the guest: a UDP echo service on PORT (every address)
 *   migprobe clock FILE       in the guest: every millisecond, CLOCK_MONOTONIC (ns) written over
 *                             FILE; at its start, the time since the stamp its previous instance
 *                             left (the guest's own view of a restart) is appended to FILE.gaps as
 *                             "restart MS", and any jump of more than 20 ms between two of its own
 *                             readings (frozen, or not scheduled) as "jump MS"
 *   migprobe mem MIB          in the guest: MIB MiB of memory, every page of it written again
 *                             and again (a ms of rest per MiB: all of it changed every MIB ms or so),
 *                             so that a live move has that much changed memory to carry
 *   migprobe ping ADDR PORT   in the client: one datagram every millisecond to ADDR:PORT; prints
 *                             "gap FROM TO" (CLOCK_MONOTONIC ns) when replies resume after more than
 *                             5 ms without one, and "r LAST" (the last reply) every 50 ms
 *
 * One machine, one kernel, no time namespaces: every namespace reads the same CLOCK_MONOTONIC,
 * which is also what node's process.hrtime reads.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void sleep_ms(int ms) {
  struct timespec t = {0, ms * 1000000L};
  while (nanosleep(&t, &t) < 0 && errno == EINTR) {
  }
}

static int echo(int port) {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0) {
    perror("migprobe echo: bind");
    return 1;
  }
  char buf[2048];
  for (;;) {
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
    if (n >= 0) sendto(s, buf, n, 0, (struct sockaddr *)&from, fl);
  }
}

static void note(const char *gaps, const char *what, int64_t ns) {
  int fd = open(gaps, O_WRONLY | O_APPEND | O_CREAT, 0644);
  if (fd < 0) return;
  dprintf(fd, "%s %.1f\n", what, ns / 1e6);
  close(fd);
}

static int clockprobe(const char *file) {
  char gaps[4096];
  snprintf(gaps, sizeof gaps, "%s.gaps", file);
  int fd = open(file, O_RDWR | O_CREAT, 0644);
  if (fd < 0) {
    perror("migprobe clock: open");
    return 1;
  }
  char buf[32] = {0};
  int64_t t = now_ns();
  if (pread(fd, buf, sizeof buf - 1, 0) > 0 && atoll(buf) > 0) note(gaps, "restart", t - atoll(buf));
  for (int64_t last = t;; last = t) {
    t = now_ns();
    if (t - last > 20000000) note(gaps, "jump", t - last);
    int n = snprintf(buf, sizeof buf, "%020lld\n", (long long)t);
    if (pwrite(fd, buf, n, 0) != n) return 1;
    sleep_ms(1);
  }
}

static int ping(const char *addr, int port) {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (s < 0 || inet_pton(AF_INET, addr, &a.sin_addr) != 1) {
    fprintf(stderr, "migprobe ping: bad address %s\n", addr);
    return 1;
  }
  fcntl(s, F_SETFL, O_NONBLOCK);
  setvbuf(stdout, NULL, _IOLBF, 0);
  int64_t last = 0, told = 0, next = now_ns();
  uint64_t seq = 0;
  for (;;) {
    int64_t t = now_ns();
    if (t >= next) {
      seq++;
      sendto(s, &seq, sizeof seq, 0, (struct sockaddr *)&a, sizeof a);
      next += 1000000;
      if (next < t) next = t + 1000000;
    }
    char buf[64];
    while (recv(s, buf, sizeof buf, 0) > 0) {
      t = now_ns();
      if (last && t - last > 5000000) printf("gap %lld %lld\n", (long long)last, (long long)t);
      last = t;
    }
    if (t - told > 50000000) {
      printf("r %lld\n", (long long)last);
      told = t;
    }
    struct pollfd p = {s, POLLIN, 0};
    int64_t wait = next - now_ns();
    if (wait > 0) {
      struct timespec w = {wait / 1000000000, wait % 1000000000};
      ppoll(&p, 1, &w, NULL);
    }
  }
}

static int mem(long mib) {
  size_t n = (size_t)mib << 20;
  volatile char *m = malloc(n);
  if (!m) {
    perror("migprobe mem: malloc");
    return 1;
  }
  for (unsigned char v = 1;; v++) {
    for (size_t i = 0; i < n; i += 4096) {
      m[i] = (char)v;
      if (((i >> 12) & 255) == 255) sleep_ms(1); /* (a ms of rest per MiB written) */
    }
    sleep_ms(1);
  }
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "echo")) return echo(atoi(argv[2]));
  if (argc == 3 && !strcmp(argv[1], "clock")) return clockprobe(argv[2]);
  if (argc == 4 && !strcmp(argv[1], "ping")) return ping(argv[2], atoi(argv[3]));
  if (argc == 3 && !strcmp(argv[1], "mem")) return mem(atol(argv[2]));
  fprintf(stderr, "usage: migprobe echo PORT | clock FILE | mem MIB | ping ADDR PORT\n");
  return 2;
}
