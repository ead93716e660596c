/*
 * jaula_native: the few system calls Node.js does not expose.
 *
 *   flock(fd, op) -> boolean          flock(2); false when LOCK_NB would block
 *   openat2(dirfd, path, flags, mode, resolve) -> fd
 *                                      openat2(2), used with RESOLVE_IN_ROOT so that host-side
 *                                      access to a guest's tree can never leave the guest's root
 *   prlimit(pid, resource, soft, hard) prlimit(2): `jaula set GUEST nofile=N` changes the limit
 *                                      of the guest's running processes
 *   readFiles(paths, buf, out, max)    reads many small kernel files (/proc, cgroupfs) into one
 *                                      buffer in one call, on a few threads: `jaula ps` over
 *                                      hundreds of guests reads thousands, and Node's cost per
 *                                      call would dominate; at most `max` bytes a file (guests
 *                                      control the size of their processes' cmdline)
 *   linkCounts(paths, out)             stat(2)'s link counts of many paths (does a guest's
 *                                      cgroup have children?)
 *   walk(dirfd, flags) -> Buffer      every entry below a directory, found by fd-relative calls
 *                                      that never follow a symlink (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW):
 *                                      storage code reads guest trees with it (src/os/walk.ts)
 *   dedupe(srcfd, dstfd, len) -> n     FIDEDUPERANGE over a whole file: bytes now shared, or -1
 *                                      when the contents differ (the kernel compares them)
 *   syncfs(fd)                         syncfs(2)
 *   mount(src, target, type, flags, data) / umount2(target, flags)
 *   fiemap(fd) -> [bytes, shared]    FS_IOC_FIEMAP: a file's extents, and those shared (reflinks)
 *   fsGetXattr(fd) -> [xflags, projid] / fsSetXattr(fd, xflags, projid)
 *                                      FS_IOC_FSGETXATTR / FS_IOC_FSSETXATTR (project IDs)
 *   btrfsSnapshot(src, dstDir, name, readonly, qgroup)
 *                                      BTRFS_IOC_SNAP_CREATE_V2: a snapshot of the subvolume src
 *                                      as dstDir/name, made a member of the quota group (level
 *                                      << 48 | id; 0: none): a guest's snapshot while it is
 *                                      frozen costs one ioctl, not a process
 *   nsCreate(userPath, hostId, size, join, netPath, pingLo, pingHi)
 *                                      a guest's user namespace (map 0 hostId size) and/or network
 *                                      namespace (owned by the new or the `join`ed user namespace,
 *                                      loopback up, ping_group_range), bound to files
 *   idmapMounts(hostId, size, recursive, keepFlags, [src, dst, ...])
 *                                      idmapped binds: native/nsops.c (no helper process)
 *   netVeths(netPath, fields)         a guest's bridged veths, configured, over rtnetlink: native/netlink.c
 *   pipe() / onExit(cb) / exitsRef(on) / spawn(argv, env, fds, setsid, cwd[, exe]) -> pid
 *                                      programs started by posix_spawn (no copy of this process's
 *                                      page tables, as Node's fork makes), their exits reaped by
 *                                      one thread and handed to cb: native/spawn.c
 *   sealedCopy(path) -> fd             a sealed memfd copy of a program (the OCI runtime's)
 *   inotifyInit() -> fd                inotify_init1(IN_NONBLOCK | IN_CLOEXEC); the events are read
 *                                      with fs.readSync (EAGAIN when none): synchronously, so a
 *                                      change another process finished is seen by the next read
 *   inotifyAddWatch(fd, path, mask) -> wd
 *                                      inotify_add_watch(2)
 *   setFsIds(uid, gid)                 setfsuid(2)/setfsgid(2) of the calling thread, keeping its
 *                                      capabilities effective: files it creates get these owners
 *                                      (an overlay mounted so writes through idmapped layers; the
 *                                      host writing into an unprivileged guest as its root)
 *
 * Errors are thrown as Error objects whose `code` is the errno name (e.g. "ELOOP"). A string
 * argument that does not fit its buffer whole, or holds a NUL byte, is refused (ENAMETOOLONG,
 * EINVAL or a TypeError), never cut to a shorter path.
 * Keep this file tiny: everything that Node can do itself stays in TypeScript.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdio.h>
#include <linux/btrfs.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <node_api.h>
#include "nsops.h"
#include "netlink.h"
#include "spawn.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/fsuid.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CHECK(call)                                                                                \
  do {                                                                                             \
    if ((call) != napi_ok) return NULL;                                                            \
  } while (0)

static napi_value throw_errno(napi_env env, int err, const char *what) {
  char msg[4400];
  const char *name = strerrorname_np(err);
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, name ? name : "EUNKNOWN", msg);
  return NULL;
}

static int get_int(napi_env env, napi_value v, int64_t *out) {
  return napi_get_value_int64(env, v, out) == napi_ok ? 0 : -1;
}

/*
 * A string argument as a C string in out[cap]: -1 with errno ENAMETOOLONG when it does not fit
 * with its NUL (never cut: napi_get_value_string_utf8 stops before a multi-byte character that
 * does not fit, so a copy's length alone cannot tell that it was cut to a shorter path), EINVAL
 * when it holds a NUL byte (the kernel would see only what comes before it) or is no string.
 */
static int get_cstr(napi_env env, napi_value v, char *out, size_t cap, size_t *lenp) {
  size_t len, got;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    errno = EINVAL;
    return -1;
  }
  if (len >= cap) {
    errno = ENAMETOOLONG;
    return -1;
  }
  if (napi_get_value_string_utf8(env, v, out, cap, &got) != napi_ok || got != len || strlen(out) != len) {
    errno = EINVAL;
    return -1;
  }
  if (lenp) *lenp = len;
  return 0;
}

/* Throw what get_cstr refused, naming the argument. */
static napi_value throw_cstr(napi_env env, const char *what) {
  if (errno == ENAMETOOLONG) return throw_errno(env, ENAMETOOLONG, what);
  char msg[256];
  snprintf(msg, sizeof msg, "%s: a string without NUL bytes expected", what);
  napi_throw_error(env, "EINVAL", msg);
  return NULL;
}

static napi_value js_flock(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int64_t fd, op;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || get_int(env, argv[0], &fd) || get_int(env, argv[1], &op)) {
    napi_throw_type_error(env, NULL, "flock(fd, op): numbers expected");
    return NULL;
  }
  int r;
  do r = flock((int)fd, (int)op);
  while (r < 0 && errno == EINTR);
  napi_value result;
  if (r < 0) {
    if (errno == EWOULDBLOCK) {
      CHECK(napi_get_boolean(env, false, &result));
      return result;
    }
    return throw_errno(env, errno, "flock");
  }
  CHECK(napi_get_boolean(env, true, &result));
  return result;
}

static napi_value js_openat2(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  int64_t dirfd, flags, mode, resolve;
  char path[4096];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5 || get_int(env, argv[0], &dirfd) || get_int(env, argv[2], &flags) ||
      get_int(env, argv[3], &mode) || get_int(env, argv[4], &resolve)) {
    napi_throw_type_error(env, NULL, "openat2(dirfd, path, flags, mode, resolve): bad arguments");
    return NULL;
  }
  if (get_cstr(env, argv[1], path, sizeof path, NULL)) return throw_cstr(env, "openat2");
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = (uint64_t)flags | O_CLOEXEC;
  how.mode = ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) ? (uint64_t)mode : 0;
  how.resolve = (uint64_t)resolve;
  long fd;
  do fd = syscall(SYS_openat2, (int)dirfd, path, &how, sizeof how);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return throw_errno(env, errno, path);
  napi_value result;
  CHECK(napi_create_int32(env, (int32_t)fd, &result));
  return result;
}

static napi_value js_prlimit(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  int64_t pid, resource, soft, hard;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4 || get_int(env, argv[0], &pid) || get_int(env, argv[1], &resource) ||
      get_int(env, argv[2], &soft) || get_int(env, argv[3], &hard) || soft < 0 || hard < soft) {
    napi_throw_type_error(env, NULL, "prlimit(pid, resource, soft, hard): numbers, soft <= hard");
    return NULL;
  }
  struct rlimit rl = {.rlim_cur = (rlim_t)soft, .rlim_max = (rlim_t)hard};
  if (prlimit((pid_t)pid, (int)resource, &rl, NULL) < 0) return throw_errno(env, errno, "prlimit");
  return NULL;
}

/* Reading for readFiles: one thread per part of the list, each into its own part of the buffer. */
struct read_part {
  char **paths;
  uint32_t first, count;
  char *buf;
  size_t size, base, max; /* its region: buf[base .. base + size); at most `max` bytes a file */
  double *out;
  int full;
};

static void *read_part(void *arg) {
  struct read_part *p = arg;
  size_t used = 0;
  for (uint32_t k = p->first; k < p->first + p->count; k++) {
    double *o = p->out + 3 * (size_t)k;
    o[0] = (double)(p->base + used);
    o[1] = -1;
    o[2] = 0;
    int fd = open(p->paths[k], O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    size_t start = used, room = p->size - used, want = room < p->max ? room : p->max;
    ssize_t r = 0;
    while (used - start < want && (r = read(fd, p->buf + p->base + used, want - (used - start))) > 0)
      used += (size_t)r;
    if (r >= 0 && used - start == p->max) { /* at the cap: is there more? (a guest's cmdline) */
      char c;
      do r = read(fd, &c, 1);
      while (r < 0 && errno == EINTR);
      o[2] = r > 0 ? 1 : 0;
      r = 0;
    } else if (r >= 0 && used - start == room && room < p->max) { /* the region is full: grow it */
      close(fd);
      p->full = 1;
      return NULL;
    }
    close(fd);
    if (r < 0) used = start;
    else o[1] = (double)(used - start);
  }
  return NULL;
}

#define READ_THREADS 4

/*
 * readFiles(paths: string[], buf: Buffer, out: Float64Array(3 * paths.length), maxPerFile):
 * out[3k] = offset of file k in buf, out[3k+1] = its length (-1: unreadable), out[3k+2] = 1
 * when it had more than maxPerFile bytes (only those were read). Returns 0, or -1 when buf is
 * too small (grow it and call again: (paths.length + 4) * maxPerFile bytes always do). Guests control
 * the size of some of these files (their processes' cmdline, their net/dev): the cap bounds what
 * one file costs, the caller's buffer what all cost; offsets are doubles, not 32-bit. Long lists
 * are read by up to READ_THREADS threads (the kernel formats /proc files on the reading CPU, so
 * this uses the host's cores).
 */
static napi_value js_read_files(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], result;
  uint32_t n;
  char *buf;
  size_t size;
  napi_typedarray_type type;
  size_t outlen;
  void *outdata;
  int64_t max;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4 || napi_get_array_length(env, argv[0], &n) != napi_ok ||
      napi_get_buffer_info(env, argv[1], (void **)&buf, &size) != napi_ok ||
      napi_get_typedarray_info(env, argv[2], &type, &outlen, &outdata, NULL, NULL) != napi_ok ||
      type != napi_float64_array || outlen < 3 * (size_t)n || get_int(env, argv[3], &max) || max < 1) {
    napi_throw_type_error(env, NULL,
                          "readFiles(paths, buf, out, maxPerFile): string[], Buffer, Float64Array(3 * paths.length), "
                          "a positive number");
    return NULL;
  }
  char **paths = calloc(n ? n : 1, sizeof *paths);
  if (!paths) return throw_errno(env, ENOMEM, "readFiles");
  napi_value ret = NULL;
  for (uint32_t k = 0; k < n; k++) {
    napi_value v;
    if (napi_get_element(env, argv[0], k, &v) != napi_ok || !(paths[k] = malloc(4096)) ||
        get_cstr(env, v, paths[k], 4096, NULL)) {
      napi_throw_type_error(env, NULL, "readFiles: paths must be strings shorter than 4096 bytes, without NUL");
      goto done;
    }
  }
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  uint32_t parts = n < 64 || cpus < 2 ? 1 : (uint32_t)(cpus < READ_THREADS ? cpus : READ_THREADS);
  struct read_part part[READ_THREADS];
  pthread_t tid[READ_THREADS];
  int started[READ_THREADS] = {0};
  for (uint32_t t = 0; t < parts; t++) {
    uint32_t first = (uint32_t)((uint64_t)n * t / parts), last = (uint32_t)((uint64_t)n * (t + 1) / parts);
    part[t] = (struct read_part){paths, first, last - first, buf, size / parts, size / parts * t, (size_t)max,
                                 outdata, 0};
    if (t > 0 && pthread_create(&tid[t], NULL, read_part, &part[t]) == 0) started[t] = 1;
  }
  read_part(&part[0]);
  int full = part[0].full;
  for (uint32_t t = 1; t < parts; t++) {
    if (started[t]) pthread_join(tid[t], NULL);
    else read_part(&part[t]);
    full |= part[t].full;
  }
  if (napi_create_int32(env, full ? -1 : 0, &result) == napi_ok) ret = result;
done:
  for (uint32_t k = 0; k < n; k++) free(paths[k]);
  free(paths);
  return ret;
}

/* linkCounts(paths: string[], out: Int32Array): out[k] = the link count of path k (-1: absent).
 * A directory's count is 2 + its subdirectories, on cgroupfs too: whether a guest's cgroup has
 * children, for hundreds of guests without a readdir each. */
static napi_value js_link_counts(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  uint32_t n;
  napi_typedarray_type type;
  size_t outlen;
  void *outdata;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || napi_get_array_length(env, argv[0], &n) != napi_ok ||
      napi_get_typedarray_info(env, argv[1], &type, &outlen, &outdata, NULL, NULL) != napi_ok ||
      type != napi_int32_array || outlen < (size_t)n) {
    napi_throw_type_error(env, NULL, "linkCounts(paths, out): string[], Int32Array(paths.length)");
    return NULL;
  }
  int32_t *out = outdata;
  for (uint32_t k = 0; k < n; k++) {
    napi_value v;
    char path[4096];
    struct stat st;
    CHECK(napi_get_element(env, argv[0], k, &v));
    if (get_cstr(env, v, path, sizeof path, NULL)) {
      napi_throw_type_error(env, NULL, "linkCounts: paths must be strings shorter than 4096 bytes, without NUL");
      return NULL;
    }
    out[k] = stat(path, &st) == 0 ? (int32_t)st.st_nlink : -1;
  }
  return NULL;
}

/* ---- walk ---------------------------------------------------------------------------------- */

#define WALK_XATTRS 1  /* collect the xattrs of directories and regular files */
#define WALK_ONEFS 2   /* do not descend into directories on another filesystem */
/* A record's flags (its `flags` field). */
#define REC_XATTRS_UNREAD 1 /* its xattrs could not all be read (E2BIG: more names than
                               listxattr(2) returns, ERANGE, EIO, ...): xattrlen is not all */
#define WALK_MAX_DEPTH 1024

struct buf {
  char *p;
  size_t len, cap;
  int err;
};

static void *buf_grow(struct buf *b, size_t n) {
  if (b->err) return NULL;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (cap < b->len + n) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->err = ENOMEM;
      return NULL;
    }
    b->p = p;
    b->cap = cap;
  }
  void *at = b->p + b->len;
  b->len += n;
  return at;
}

/* One record: a fixed header (little endian on the hosts jaula runs on) then path and xattrs. */
struct rec {
  uint32_t reclen, pathlen, mode, uid, gid, nlink, xattrlen, mtime_nsec, ctime_nsec, flags;
  uint64_t ino, size, blocks, dev, rdev;
  int64_t mtime_sec, ctime_sec;
};

/* getxattrat(2) and listxattrat(2) (Linux 6.13): no path walk through /proc per file. */
#ifndef SYS_getxattrat
#define SYS_getxattrat 464
#endif
#ifndef SYS_listxattrat
#define SYS_listxattrat 465
#endif
struct xattr_args_compat {
  uint64_t value;
  uint32_t size;
  uint32_t flags;
};
static int have_xattrat = 1;

static void proc_path(char *path, size_t size, int dfd, const char *name) {
  if (name)
    snprintf(path, size, "/proc/self/fd/%d/%s", dfd, name);
  else
    snprintf(path, size, "/proc/self/fd/%d", dfd);
}

static ssize_t x_list(int dfd, const char *name, char *list, size_t size) {
  if (have_xattrat) {
    long r = syscall(SYS_listxattrat, dfd, name ? name : "", name ? AT_SYMLINK_NOFOLLOW : AT_EMPTY_PATH,
                     list, size);
    if (r >= 0 || errno != ENOSYS) return r;
    have_xattrat = 0;
  }
  char path[64 + 256];
  proc_path(path, sizeof path, dfd, name);
  return llistxattr(path, list, size);
}

static ssize_t x_get(int dfd, const char *name, const char *key, char *val, size_t size) {
  if (have_xattrat) {
    struct xattr_args_compat a = {(uint64_t)(uintptr_t)val, (uint32_t)size, 0};
    long r = syscall(SYS_getxattrat, dfd, name ? name : "", name ? AT_SYMLINK_NOFOLLOW : AT_EMPTY_PATH,
                     key, &a, sizeof a);
    if (r >= 0 || errno != ENOSYS) return r;
    have_xattrat = 0;
  }
  char path[64 + 256];
  proc_path(path, sizeof path, dfd, name);
  return lgetxattr(path, key, val, size);
}

/*
 * The xattrs of dfd's entry `name` (or of dfd itself when name is NULL), never following a link.
 * Returns 0, or -1 when they could not all be read: a file whose xattr names pass 64 KiB (E2BIG,
 * possible on XFS, btrfs and tmpfs) must not pass for a file without them. A guest could pad a
 * file so to hide its security.capability from hashify, which would then share that inode with
 * another guest's identical file. Only "none here" (ENODATA, ENOTSUP) is no error.
 */
static int put_xattrs(struct buf *b, int dfd, const char *name, uint32_t *total) {
  static char names[65536], val[65536];
  ssize_t n = x_list(dfd, name, names, sizeof names);
  if (n < 0) return errno == ENODATA || errno == ENOTSUP || errno == EOPNOTSUPP ? 0 : -1;
  int ret = 0;
  for (char *k = names; k < names + n; k += strlen(k) + 1) {
    ssize_t v = x_get(dfd, name, k, val, sizeof val);
    if (v < 0) { /* removed meanwhile (ENODATA) or unreadable: the list is not the file's */
      ret = -1;
      continue;
    }
    uint16_t kl = (uint16_t)strlen(k);
    uint32_t vl = (uint32_t)v;
    char *at = buf_grow(b, 2 + 4 + kl + vl);
    if (!at) return -1;
    memcpy(at, &kl, 2);
    memcpy(at + 2, &vl, 4);
    memcpy(at + 6, k, kl);
    memcpy(at + 6 + kl, val, vl);
    *total += 6 + kl + vl;
  }
  return ret;
}

static int put_entry(struct buf *b, int dfd, const char *name, const char *path, size_t pathlen,
                     const struct stat *st, int flags) {
  size_t off = b->len;
  struct rec *r = buf_grow(b, sizeof *r + pathlen);
  if (!r) return -1;
  memset(r, 0, sizeof *r);
  r->pathlen = (uint32_t)pathlen;
  r->mode = st->st_mode;
  r->uid = st->st_uid;
  r->gid = st->st_gid;
  r->nlink = (uint32_t)st->st_nlink;
  r->ino = st->st_ino;
  r->size = (uint64_t)st->st_size;
  r->blocks = (uint64_t)st->st_blocks;
  r->dev = st->st_dev;
  r->rdev = st->st_rdev;
  r->mtime_sec = st->st_mtim.tv_sec;
  r->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
  r->ctime_sec = st->st_ctim.tv_sec;
  r->ctime_nsec = (uint32_t)st->st_ctim.tv_nsec;
  memcpy((char *)r + sizeof *r, path, pathlen);
  uint32_t xl = 0, rflags = 0;
  if ((flags & WALK_XATTRS) && (S_ISREG(st->st_mode) || S_ISDIR(st->st_mode)) &&
      put_xattrs(b, dfd, name, &xl) < 0)
    rflags |= REC_XATTRS_UNREAD;
  if (b->err) return -1;
  r = (struct rec *)(b->p + off);
  r->xattrlen = xl;
  r->flags = rflags;
  r->reclen = (uint32_t)(b->len - off);
  return 0;
}

static int walk_dir(struct buf *b, int dfd, char *path, size_t pathlen, dev_t rootdev, int flags,
                    int depth) {
  if (depth > WALK_MAX_DEPTH) return ELOOP;
  int d2 = dup(dfd);
  if (d2 < 0) return errno;
  DIR *d = fdopendir(d2);
  if (!d) {
    int e = errno;
    close(d2);
    return e;
  }
  /* Read all names first: the directory stream is closed before descending. */
  struct buf names = {0};
  /* errno is reset before every readdir: a successful realloc in buf_grow may leave ENOMEM in
   * errno (glibc's malloc falls back to mmap when brk fails), which must not read as an error. */
  int rerr = 0;
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(d);
    if (!de) {
      rerr = errno;
      break;
    }
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    size_t l = strlen(de->d_name) + 1;
    char *at = buf_grow(&names, l);
    if (!at) break;
    memcpy(at, de->d_name, l);
  }
  closedir(d);
  if (names.err || rerr) {
    free(names.p);
    return names.err ? names.err : rerr;
  }
  int ret = 0;
  for (size_t i = 0; i < names.len && !ret; i += strlen(names.p + i) + 1) {
    const char *name = names.p + i;
    size_t nl = strlen(name);
    if (pathlen + 1 + nl >= 65536) {
      ret = ENAMETOOLONG;
      break;
    }
    size_t plen = pathlen;
    if (plen) path[plen++] = '/';
    memcpy(path + plen, name, nl);
    plen += nl;
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
      if (errno == ENOENT) continue; /* removed meanwhile */
      ret = errno;
      break;
    }
    if (put_entry(b, dfd, name, path, plen, &st, flags)) {
      ret = b->err;
      break;
    }
    if (S_ISDIR(st.st_mode) && (!(flags & WALK_ONEFS) || st.st_dev == rootdev)) {
      int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0) {
        if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) continue;
        ret = errno;
        break;
      }
      ret = walk_dir(b, sub, path, plen, rootdev, flags, depth + 1);
      close(sub);
    }
  }
  free(names.p);
  return ret;
}

static void free_buf(napi_env env, void *data, void *hint) { free(data); }

static napi_value js_walk(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int64_t dirfd, flags;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || get_int(env, argv[0], &dirfd) || get_int(env, argv[1], &flags)) {
    napi_throw_type_error(env, NULL, "walk(dirfd, flags): numbers expected");
    return NULL;
  }
  struct stat st;
  if (fstat((int)dirfd, &st) < 0) return throw_errno(env, errno, "walk");
  if (!S_ISDIR(st.st_mode)) return throw_errno(env, ENOTDIR, "walk");
  int fd = openat((int)dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, errno, "walk");
  struct buf b = {0};
  char *path = malloc(65536);
  int e = path ? 0 : ENOMEM;
  if (!e) e = put_entry(&b, fd, NULL, "", 0, &st, (int)flags) ? b.err : 0;
  if (!e) e = walk_dir(&b, fd, path, 0, st.st_dev, (int)flags, 0);
  close(fd);
  free(path);
  if (e) {
    free(b.p);
    return throw_errno(env, e, "walk");
  }
  napi_value result;
  if (b.len == 0) {
    free(b.p);
    CHECK(napi_create_buffer(env, 0, NULL, &result));
    return result;
  }
  if (napi_create_external_buffer(env, b.len, b.p, free_buf, NULL, &result) != napi_ok) {
    free(b.p);
    return NULL;
  }
  return result;
}

/* Read `n` integer arguments; on failure a TypeError naming `usage` is thrown and -1 returned. */
static int get_ints(napi_env env, napi_callback_info info, size_t n, int64_t *out, const char *usage) {
  size_t argc = 8;
  napi_value argv[8];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return -1;
  for (size_t i = 0; i < n; i++)
    if (argc < n || get_int(env, argv[i], &out[i])) {
      napi_throw_type_error(env, NULL, usage);
      return -1;
    }
  return 0;
}

/* ---- dedupe, clone, syncfs, mount, fsxattr -------------------------------------------------- */

/*
 * cloneFile(srcfd, dstfd): make the empty regular file dstfd a copy of srcfd that shares its
 * data extents (FICLONE: no data copied) with the same owner, mode, xattrs and times (to the
 * nanosecond). Owner first (chown drops set-id bits and file capabilities), times last.
 */
static napi_value js_clone_file(napi_env env, napi_callback_info info) {
  int64_t a2[2];
  if (get_ints(env, info, 2, a2, "cloneFile(srcfd, dstfd): numbers expected")) return NULL;
  int src = (int)a2[0], dst = (int)a2[1];
  struct stat st;
  if (fstat(src, &st) < 0) return throw_errno(env, errno, "cloneFile");
  if (!S_ISREG(st.st_mode)) return throw_errno(env, EINVAL, "cloneFile");
  if (ioctl(dst, FICLONE, src) < 0) return throw_errno(env, errno, "FICLONE");
  if (fchown(dst, st.st_uid, st.st_gid) < 0) return throw_errno(env, errno, "fchown");
  if (fchmod(dst, st.st_mode & 07777) < 0) return throw_errno(env, errno, "fchmod");
  static char names[65536], val[65536];
  ssize_t n = flistxattr(src, names, sizeof names);
  if (n < 0) return throw_errno(env, errno, "flistxattr");
  for (char *k = names; k < names + n; k += strlen(k) + 1) {
    ssize_t v = fgetxattr(src, k, val, sizeof val);
    if (v < 0) return throw_errno(env, errno, k);
    if (fsetxattr(dst, k, val, (size_t)v, 0) < 0) return throw_errno(env, errno, k);
  }
  struct timespec ts[2] = {st.st_atim, st.st_mtim};
  if (futimens(dst, ts) < 0) return throw_errno(env, errno, "futimens");
  return NULL;
}

static napi_value js_dedupe(napi_env env, napi_callback_info info) {
  int64_t a3[3];
  if (get_ints(env, info, 3, a3, "dedupe(srcfd, dstfd, length): numbers expected")) return NULL;
  int64_t src = a3[0], dst = a3[1], len = a3[2];
  struct {
    struct file_dedupe_range r;
    struct file_dedupe_range_info i;
  } a;
  int64_t off = 0, done = 0;
  const int64_t chunk = 16 << 20; /* btrfs refuses more per call */
  while (off < len) {
    memset(&a, 0, sizeof a);
    a.r.src_offset = (uint64_t)off;
    a.r.src_length = (uint64_t)(len - off < chunk ? len - off : chunk);
    a.r.dest_count = 1;
    a.i.dest_fd = dst;
    a.i.dest_offset = (uint64_t)off;
    if (ioctl((int)src, FIDEDUPERANGE, &a) < 0) return throw_errno(env, errno, "FIDEDUPERANGE");
    if (a.i.status == FILE_DEDUPE_RANGE_DIFFERS) {
      done = -1;
      break;
    }
    if (a.i.status < 0) return throw_errno(env, -a.i.status, "FIDEDUPERANGE");
    if (a.i.bytes_deduped == 0) break;
    done += (int64_t)a.i.bytes_deduped;
    off += (int64_t)a.i.bytes_deduped;
  }
  napi_value result;
  CHECK(napi_create_int64(env, done, &result));
  return result;
}

static napi_value js_syncfs(napi_env env, napi_callback_info info) {
  int64_t fd;
  if (get_ints(env, info, 1, &fd, "syncfs(fd): a number expected")) return NULL;
  if (syncfs((int)fd) < 0) return throw_errno(env, errno, "syncfs");
  return NULL;
}

/* A string (0), null or undefined (1), or -1: too long, with a NUL byte, or no string. */
static int get_str(napi_env env, napi_value v, char *out, size_t cap) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return -1;
  if (t == napi_null || t == napi_undefined) {
    out[0] = 0;
    return 1;
  }
  return get_cstr(env, v, out, cap, NULL);
}

static napi_value js_mount(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  char src[4096], target[4096], type[64], data[8192];
  int64_t flags;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int ns = -1, nt = -1, nty = -1, nd = -1;
  if (argc < 5 || (ns = get_str(env, argv[0], src, sizeof src)) < 0 ||
      (nt = get_str(env, argv[1], target, sizeof target)) != 0 ||
      (nty = get_str(env, argv[2], type, sizeof type)) < 0 || get_int(env, argv[3], &flags) ||
      (nd = get_str(env, argv[4], data, sizeof data)) < 0) {
    napi_throw_type_error(env, NULL, "mount(source, target, type, flags, data): bad arguments");
    return NULL;
  }
  if (mount(ns ? NULL : src, target, nty ? NULL : type, (unsigned long)flags, nd ? NULL : data) < 0)
    return throw_errno(env, errno, target);
  return NULL;
}

static napi_value js_umount2(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  char target[4096];
  int64_t flags;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || get_str(env, argv[0], target, sizeof target) != 0 || get_int(env, argv[1], &flags)) {
    napi_throw_type_error(env, NULL, "umount2(target, flags): bad arguments");
    return NULL;
  }
  if (umount2(target, (int)flags) < 0) return throw_errno(env, errno, target);
  return NULL;
}

/* nsCreate and idmapMounts run on a thread of libuv's pool (their children, the namespaces'
 * making and the mounts take a few milliseconds that the main thread does not wait for). */
struct ns_job {
  napi_async_work work;
  napi_deferred deferred;
  int kind; /* 0: nsCreate, 1: idmapMounts, 2: netVeths */
  char user[4096], join[4096], net[4096];
  struct nsops_create_args a;
  int64_t host, size, rec, keep;
  char (*bufs)[4096];
  const char **ptrs;
  uint32_t n;
  int rc;
  char err[8800];
};
#define VETH_FIELDS 9 /* netVeths: strings per veth */
static void ns_execute(napi_env env, void *data) {
  (void)env;
  struct ns_job *j = data;
  if (j->kind == 0) j->rc = nsops_create(&j->a, j->err, sizeof j->err);
  else if (j->kind == 2) {
    int n = (int)j->n / VETH_FIELDS;
    struct veth_spec v[16];
    const char *const *f = j->ptrs;
#define OPT(x) ((x)[0] ? (x) : NULL)
    for (int i = 0; i < n; i++, f += VETH_FIELDS)
      v[i] = (struct veth_spec){f[0], f[1], f[2], OPT(f[3]), OPT(f[4]), OPT(f[5]), OPT(f[6]), OPT(f[7]), f[8][0] == '1'};
#undef OPT
    j->rc = netlink_veths(j->net, v, n, j->err, sizeof j->err);
  } else
    j->rc = nsops_idmap_mounts((unsigned long long)j->host, (unsigned long long)j->size, j->rec != 0, j->keep != 0,
                               j->ptrs, (int)j->n, j->err, sizeof j->err);
}
static void ns_free(struct ns_job *j) {
  free(j->bufs);
  free(j->ptrs);
  free(j);
}
static void ns_complete(napi_env env, napi_status status, void *data) {
  struct ns_job *j = data;
  napi_value v, code, msg, undef;
  if (status == napi_ok && j->rc == 0) {
    napi_get_undefined(env, &undef);
    napi_resolve_deferred(env, j->deferred, undef);
  } else {
    int e = status == napi_ok ? -j->rc : ECANCELED;
    const char *name = strerrorname_np(e);
    napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, status == napi_ok ? j->err : "cancelled", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, code, msg, &v);
    napi_reject_deferred(env, j->deferred, v);
  }
  napi_delete_async_work(env, j->work);
  ns_free(j);
}
static napi_value ns_queue(napi_env env, struct ns_job *j) {
  napi_value promise, name;
  if (napi_create_promise(env, &j->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "jaula ns", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, ns_execute, ns_complete, j, &j->work) != napi_ok ||
      napi_queue_async_work(env, j->work) != napi_ok) {
    ns_free(j);
    napi_throw_error(env, NULL, "could not queue the work");
    return NULL;
  }
  return promise;
}

/* nsCreate(userPath, hostId, size, join, netPath, pingLo, pingHi) -> Promise: native/nsops.c */
static napi_value js_ns_create(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  int64_t plo, phi;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct ns_job *j = calloc(1, sizeof *j);
  int nu = -1, nj = -1, nn = -1;
  if (!j || argc < 7 || (nu = get_str(env, argv[0], j->user, sizeof j->user)) < 0 || get_int(env, argv[1], &j->host) ||
      get_int(env, argv[2], &j->size) || (nj = get_str(env, argv[3], j->join, sizeof j->join)) < 0 ||
      (nn = get_str(env, argv[4], j->net, sizeof j->net)) < 0 || get_int(env, argv[5], &plo) ||
      get_int(env, argv[6], &phi) || j->host < 0 || j->size < 0) {
    free(j);
    napi_throw_type_error(env, NULL, "nsCreate(userPath, hostId, size, join, netPath, pingLo, pingHi): bad arguments");
    return NULL;
  }
  j->a = (struct nsops_create_args){nu ? NULL : j->user, (unsigned long long)j->host, (unsigned long long)j->size,
                                    nj ? NULL : j->join, nn ? NULL : j->net, plo, phi};
  return ns_queue(env, j);
}

/* Strings of a JS array into j->bufs/j->ptrs (at most max of them, count a multiple of mult). */
static bool get_job_strings(napi_env env, napi_value arr, struct ns_job *j, uint32_t max, uint32_t mult) {
  bool isarr = false;
  if (napi_is_array(env, arr, &isarr) != napi_ok || !isarr || napi_get_array_length(env, arr, &j->n) != napi_ok ||
      j->n % mult || j->n > max)
    return false;
  j->bufs = malloc((size_t)j->n * 4096 + 1);
  j->ptrs = malloc(sizeof(char *) * (j->n + 1));
  if (!j->bufs || !j->ptrs) return false;
  for (uint32_t i = 0; i < j->n; i++) {
    napi_value v;
    if (napi_get_element(env, arr, i, &v) != napi_ok || get_cstr(env, v, j->bufs[i], 4096, NULL) != 0) return false;
    j->ptrs[i] = j->bufs[i];
  }
  return true;
}

/* netVeths(netPath, [name, mac, hostIf, bridge, address, address6, gateway, gateway6, onlink, ...])
 * -> Promise: native/netlink.c ("" for none; onlink "1") */
static napi_value js_net_veths(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct ns_job *j = calloc(1, sizeof *j);
  if (!j || argc < 2 || get_str(env, argv[0], j->net, sizeof j->net) != 0 ||
      !get_job_strings(env, argv[1], j, 16 * VETH_FIELDS, VETH_FIELDS)) {
    if (j) ns_free(j);
    napi_throw_type_error(env, NULL, "netVeths(netPath, fields): bad arguments");
    return NULL;
  }
  j->kind = 2;
  return ns_queue(env, j);
}

/* idmapMounts(hostId, size, recursive, keepFlags, [src, dst, ...]) -> Promise: native/nsops.c */
static napi_value js_idmap_mounts(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct ns_job *j = calloc(1, sizeof *j);
  if (!j || argc < 5 || get_int(env, argv[0], &j->host) || get_int(env, argv[1], &j->size) ||
      get_int(env, argv[2], &j->rec) || get_int(env, argv[3], &j->keep) || j->host < 0 || j->size < 0 ||
      !get_job_strings(env, argv[4], j, 256, 2)) {
    if (j) ns_free(j);
    napi_throw_type_error(env, NULL, "idmapMounts(hostId, size, recursive, keepFlags, pairs): bad arguments");
    return NULL;
  }
  j->kind = 1;
  return ns_queue(env, j);
}

/* pipe() -> [readFd, writeFd], both close-on-exec (for spawn's fds). */
static napi_value js_pipe(napi_env env, napi_callback_info info) {
  (void)info;
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return throw_errno(env, errno, "pipe");
  napi_value arr, a, b;
  CHECK(napi_create_array_with_length(env, 2, &arr));
  CHECK(napi_create_int32(env, p[0], &a));
  CHECK(napi_create_int32(env, p[1], &b));
  CHECK(napi_set_element(env, arr, 0, a));
  CHECK(napi_set_element(env, arr, 1, b));
  return arr;
}

/* Exits of programs started by spawn(), handed from the reaper thread (native/spawn.c). */
static napi_threadsafe_function exit_tsfn;
struct exit_msg {
  pid_t pid;
  int code, sig;
};
static void exit_call_js(napi_env env, napi_value cb, void *ctx, void *data) {
  (void)ctx;
  struct exit_msg *m = data;
  if (env && cb) {
    napi_value argv[3], undef;
    napi_create_int32(env, m->pid, &argv[0]);
    napi_create_int32(env, m->code, &argv[1]);
    napi_create_int32(env, m->sig, &argv[2]);
    napi_get_undefined(env, &undef);
    napi_call_function(env, undef, cb, 3, argv, NULL);
  }
  free(m);
}
/* Node frees the thread-safe function when its environment is torn down (a process whose event
 * loop has drained ends so): an exit reaped after that must not reach it (napi_call_threadsafe_
 * function on freed memory aborted 3 runs in 40 of a test whose children outlived its loop). Its
 * finalizer, which runs before the free, closes the door under this lock. */
static pthread_mutex_t exit_mu = PTHREAD_MUTEX_INITIALIZER;
static bool exit_closed;
static void exit_tsfn_gone(napi_env env, void *data, void *hint) {
  (void)env, (void)data, (void)hint;
  pthread_mutex_lock(&exit_mu);
  exit_closed = true;
  pthread_mutex_unlock(&exit_mu);
}
static void exit_from_reaper(pid_t pid, int code, int sig) {
  struct exit_msg *m = malloc(sizeof *m);
  if (!m) return;
  *m = (struct exit_msg){pid, code, sig};
  /* (the queue is unbounded: a blocking call never waits, so the finalizer never waits long) */
  pthread_mutex_lock(&exit_mu);
  if (!exit_closed && napi_call_threadsafe_function(exit_tsfn, m, napi_tsfn_blocking) == napi_ok) m = NULL;
  pthread_mutex_unlock(&exit_mu);
  free(m);
}

/* onExit(cb(pid, code, signal)): once, before any spawn. Unreferenced (see exitsRef). */
static napi_value js_on_exit(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], name;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (exit_tsfn) return NULL;
  CHECK(napi_create_string_utf8(env, "jaula exits", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, NULL, exit_tsfn_gone, NULL, exit_call_js,
                                        &exit_tsfn));
  CHECK(napi_unref_threadsafe_function(env, exit_tsfn));
  return NULL;
}

/* exitsRef(on): whether a program's exit still to come keeps the event loop alive. */
static napi_value js_exits_ref(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  bool on = false;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (!exit_tsfn || argc < 1 || napi_get_value_bool(env, argv[0], &on) != napi_ok) return NULL;
  CHECK(on ? napi_ref_threadsafe_function(env, exit_tsfn) : napi_unref_threadsafe_function(env, exit_tsfn));
  return NULL;
}

/* A string array as a NULL-ended C array (malloc'd, strings too); NULL with errno on failure. */
static char **get_strv(napi_env env, napi_value v, uint32_t max) {
  uint32_t n = 0;
  bool isarr = false;
  if (napi_is_array(env, v, &isarr) != napi_ok || !isarr || napi_get_array_length(env, v, &n) != napi_ok || n > max) {
    errno = EINVAL;
    return NULL;
  }
  char **out = calloc(n + 1, sizeof(char *));
  for (uint32_t i = 0; out && i < n; i++) {
    napi_value e;
    size_t len;
    if (napi_get_element(env, v, i, &e) != napi_ok || napi_get_value_string_utf8(env, e, NULL, 0, &len) != napi_ok ||
        !(out[i] = malloc(len + 1)) || get_cstr(env, e, out[i], len + 1, NULL) < 0) {
      for (uint32_t k = 0; k <= i; k++) free(out[k]);
      free(out);
      errno = EINVAL;
      return NULL;
    }
  }
  return out;
}
static void free_strv(char **v) {
  for (size_t i = 0; v && v[i]; i++) free(v[i]);
  free(v);
}

/* spawn(argv, env, fds, setsid, cwd[, exe]) -> Promise<pid>: native/spawn.c, on a thread of libuv's
 * pool (posix_spawn's parent waits until the child has exec'd: not on the main thread); its
 * exit goes to onExit's cb (possibly before this promise settles). */
struct spawn_job {
  napi_async_work work;
  napi_deferred deferred;
  char **av, **ev;
  int fds[8], nfds, setsid, rc;
  char cwd[4096], exe[4096];
  int has_cwd, has_exe;
  pid_t pid;
};
static void spawn_execute(napi_env env, void *data) {
  (void)env;
  struct spawn_job *j = data;
  j->rc = spawn_program(j->av, j->has_exe ? j->exe : NULL, j->ev, j->fds, j->nfds, j->setsid,
                        j->has_cwd ? j->cwd : NULL, &j->pid);
  if (j->rc == 0) {
    j->rc = spawn_watch(j->pid, exit_from_reaper);
    if (j->rc) kill(j->pid, SIGKILL), waitpid(j->pid, NULL, 0); /* (unwatched: not started, for the caller) */
  }
}
static void spawn_complete(napi_env env, napi_status status, void *data) {
  struct spawn_job *j = data;
  napi_value v;
  if (status == napi_ok && j->rc == 0) {
    napi_create_int32(env, j->pid, &v);
    napi_resolve_deferred(env, j->deferred, v);
  } else {
    int e = status == napi_ok ? j->rc : ECANCELED;
    const char *name = strerrorname_np(e);
    char msg[4400];
    snprintf(msg, sizeof msg, "%s: %s", j->av[0], strerror(e));
    napi_value code, m;
    napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
    napi_create_error(env, code, m, &v);
    napi_reject_deferred(env, j->deferred, v);
  }
  napi_delete_async_work(env, j->work);
  free_strv(j->av);
  free_strv(j->ev);
  free(j);
}
static napi_value js_spawn(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  int64_t setsid = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct spawn_job *j = calloc(1, sizeof *j);
  napi_valuetype envt = napi_undefined;
  int ncwd = -1, nexe = 1;
  uint32_t nfds = 0;
  bool ok = j && argc >= 5 && exit_tsfn && (j->av = get_strv(env, argv[0], 4096)) && j->av[0] &&
            j->av[0][0] == '/' && napi_typeof(env, argv[1], &envt) == napi_ok &&
            (envt == napi_null || (j->ev = get_strv(env, argv[1], 65536))) &&
            napi_get_array_length(env, argv[2], &nfds) == napi_ok && nfds <= 8 && !get_int(env, argv[3], &setsid) &&
            (ncwd = get_str(env, argv[4], j->cwd, sizeof j->cwd)) >= 0 &&
            (argc < 6 || (nexe = get_str(env, argv[5], j->exe, sizeof j->exe)) >= 0);
  for (uint32_t i = 0; ok && i < nfds; i++) {
    napi_value e;
    int64_t fd;
    ok = napi_get_element(env, argv[2], i, &e) == napi_ok && !get_int(env, e, &fd) && fd >= -1 && fd < INT32_MAX;
    if (ok) j->fds[i] = (int)fd;
  }
  napi_value promise, name;
  if (ok) {
    j->nfds = (int)nfds;
    j->setsid = setsid != 0;
    j->has_cwd = ncwd == 0;
    j->has_exe = nexe == 0 && j->exe[0] == '/';
    ok = napi_create_promise(env, &j->deferred, &promise) == napi_ok &&
         napi_create_string_utf8(env, "jaula spawn", NAPI_AUTO_LENGTH, &name) == napi_ok &&
         napi_create_async_work(env, NULL, name, spawn_execute, spawn_complete, j, &j->work) == napi_ok &&
         napi_queue_async_work(env, j->work) == napi_ok;
    if (ok) return promise;
  }
  if (j) free_strv(j->av), free_strv(j->ev), free(j);
  napi_throw_type_error(env, NULL,
                        "spawn(argv, env, fds, setsid, cwd[, exe]): bad arguments (onExit first; argv[0] a path)");
  return NULL;
}

/* sealedCopy(path) -> fd: native/spawn.c's sealed_copy (a memfd, close-on-exec). */
static napi_value js_sealed_copy(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char path[4096];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || get_str(env, argv[0], path, sizeof path) != 0) {
    napi_throw_type_error(env, NULL, "sealedCopy(path): a path expected");
    return NULL;
  }
  int fd, e = sealed_copy(path, &fd);
  if (e) return throw_errno(env, e, path);
  napi_value r;
  CHECK(napi_create_int32(env, fd, &r));
  return r;
}

static napi_value js_inotify_init(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return throw_errno(env, errno, "inotify_init1");
  napi_value r;
  CHECK(napi_create_int32(env, fd, &r));
  return r;
}

static napi_value js_inotify_add_watch(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  char path[4096];
  int64_t fd, mask;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3 || get_int(env, argv[0], &fd) || get_str(env, argv[1], path, sizeof path) != 0 ||
      get_int(env, argv[2], &mask)) {
    napi_throw_type_error(env, NULL, "inotifyAddWatch(fd, path, mask): bad arguments");
    return NULL;
  }
  int wd = inotify_add_watch((int)fd, path, (uint32_t)mask);
  if (wd < 0) return throw_errno(env, errno, path);
  napi_value r;
  CHECK(napi_create_int32(env, wd, &r));
  return r;
}

/* setfsuid/setfsgid act on this thread only (the raw system calls: glibc's setfsuid is not broadcast). */
static napi_value js_setfsids(napi_env env, napi_callback_info info) {
  int64_t ids[2];
  if (get_ints(env, info, 2, ids, "setFsIds(uid, gid): numbers expected")) return NULL;
  syscall(SYS_setfsgid, (gid_t)ids[1]);
  syscall(SYS_setfsuid, (uid_t)ids[0]);
  if ((int64_t)syscall(SYS_setfsuid, (uid_t)-1) != ids[0] || (int64_t)syscall(SYS_setfsgid, (gid_t)-1) != ids[1])
    return throw_errno(env, EPERM, "setfsuid");
  /* A non-zero fsuid drops the file capabilities from the effective set: raise them again. */
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  if (syscall(SYS_capget, &h, d) < 0) return throw_errno(env, errno, "capget");
  d[0].effective = d[0].permitted;
  d[1].effective = d[1].permitted;
  if (syscall(SYS_capset, &h, d) < 0) return throw_errno(env, errno, "capset");
  return NULL;
}

static napi_value js_fsgetxattr(napi_env env, napi_callback_info info) {
  int64_t fd;
  if (get_ints(env, info, 1, &fd, "fsGetXattr(fd): a number expected")) return NULL;
  struct fsxattr fa;
  memset(&fa, 0, sizeof fa);
  if (ioctl((int)fd, FS_IOC_FSGETXATTR, &fa) < 0) return throw_errno(env, errno, "FS_IOC_FSGETXATTR");
  napi_value result, a, b;
  CHECK(napi_create_array_with_length(env, 2, &result));
  CHECK(napi_create_uint32(env, fa.fsx_xflags, &a));
  CHECK(napi_create_uint32(env, fa.fsx_projid, &b));
  CHECK(napi_set_element(env, result, 0, a));
  CHECK(napi_set_element(env, result, 1, b));
  return result;
}

static napi_value js_fssetxattr(napi_env env, napi_callback_info info) {
  int64_t a3[3];
  if (get_ints(env, info, 3, a3, "fsSetXattr(fd, xflags, projid): numbers expected")) return NULL;
  int64_t fd = a3[0], xflags = a3[1], projid = a3[2];
  struct fsxattr fa;
  memset(&fa, 0, sizeof fa);
  if (ioctl((int)fd, FS_IOC_FSGETXATTR, &fa) < 0) return throw_errno(env, errno, "FS_IOC_FSGETXATTR");
  fa.fsx_xflags = (uint32_t)xflags;
  fa.fsx_projid = (uint32_t)projid;
  if (ioctl((int)fd, FS_IOC_FSSETXATTR, &fa) < 0) return throw_errno(env, errno, "FS_IOC_FSSETXATTR");
  return NULL;
}

/* FS_IOC_FIEMAP over a whole file: [bytes in extents, bytes in extents shared with other files]. */
static napi_value js_fiemap(napi_env env, napi_callback_info info) {
  int64_t fd;
  if (get_ints(env, info, 1, &fd, "fiemap(fd): a number expected")) return NULL;
  enum { N = 256 };
  static char mem[sizeof(struct fiemap) + N * sizeof(struct fiemap_extent)];
  struct fiemap *fm = (struct fiemap *)mem;
  uint64_t start = 0, total = 0, shared = 0;
  for (;;) {
    memset(mem, 0, sizeof mem);
    fm->fm_start = start;
    fm->fm_length = ~0ULL - start;
    fm->fm_extent_count = N;
    if (ioctl((int)fd, FS_IOC_FIEMAP, fm) < 0) return throw_errno(env, errno, "FS_IOC_FIEMAP");
    if (fm->fm_mapped_extents == 0) break;
    int last = 0;
    for (unsigned i = 0; i < fm->fm_mapped_extents; i++) {
      struct fiemap_extent *x = &fm->fm_extents[i];
      if (!(x->fe_flags & (FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC | FIEMAP_EXTENT_UNWRITTEN))) {
        total += x->fe_length;
        if (x->fe_flags & FIEMAP_EXTENT_SHARED) shared += x->fe_length;
      }
      start = x->fe_logical + x->fe_length;
      if (x->fe_flags & FIEMAP_EXTENT_LAST) last = 1;
    }
    if (last) break;
  }
  napi_value result, a, b;
  CHECK(napi_create_array_with_length(env, 2, &result));
  CHECK(napi_create_double(env, (double)total, &a));
  CHECK(napi_create_double(env, (double)shared, &b));
  CHECK(napi_set_element(env, result, 0, a));
  CHECK(napi_set_element(env, result, 1, b));
  return result;
}

/* btrfsSnapshot(src, dstDir, name, readonly, qgroup): see the top of this file. */
static napi_value js_btrfs_snapshot(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  char src[4096], dir[4096], name[BTRFS_SUBVOL_NAME_MAX + 1];
  bool ro;
  int64_t qgroup;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5 || get_str(env, argv[0], src, sizeof src) != 0 || get_str(env, argv[1], dir, sizeof dir) != 0 ||
      get_str(env, argv[2], name, sizeof name) != 0 || napi_get_value_bool(env, argv[3], &ro) != napi_ok ||
      get_int(env, argv[4], &qgroup)) {
    napi_throw_type_error(env, NULL, "btrfsSnapshot(src, dstDir, name, readonly, qgroup): bad arguments");
    return NULL;
  }
  struct {
    struct btrfs_qgroup_inherit h;
    __u64 group;
  } inherit;
  struct btrfs_ioctl_vol_args_v2 args;
  memset(&inherit, 0, sizeof inherit);
  memset(&args, 0, sizeof args);
  int s = open(src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (s < 0) return throw_errno(env, errno, src);
  int d = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (d < 0) {
    int e = errno;
    close(s);
    return throw_errno(env, e, dir);
  }
  args.fd = s;
  args.flags = ro ? BTRFS_SUBVOL_RDONLY : 0;
  if (qgroup) {
    inherit.h.num_qgroups = 1;
    inherit.group = (__u64)qgroup;
    args.flags |= BTRFS_SUBVOL_QGROUP_INHERIT;
    args.size = sizeof inherit;
    args.qgroup_inherit = &inherit.h;
  }
  memcpy(args.name, name, strlen(name) + 1);
  int r = ioctl(d, BTRFS_IOC_SNAP_CREATE_V2, &args);
  int e = errno;
  close(s);
  close(d);
  if (r < 0) return throw_errno(env, e, "BTRFS_IOC_SNAP_CREATE_V2");
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"flock", NULL, js_flock, NULL, NULL, NULL, napi_default, NULL},
      {"openat2", NULL, js_openat2, NULL, NULL, NULL, napi_default, NULL},
      {"prlimit", NULL, js_prlimit, NULL, NULL, NULL, napi_default, NULL},
      {"readFiles", NULL, js_read_files, NULL, NULL, NULL, napi_default, NULL},
      {"linkCounts", NULL, js_link_counts, NULL, NULL, NULL, napi_default, NULL},
      {"walk", NULL, js_walk, NULL, NULL, NULL, napi_default, NULL},
      {"dedupe", NULL, js_dedupe, NULL, NULL, NULL, napi_default, NULL},
      {"cloneFile", NULL, js_clone_file, NULL, NULL, NULL, napi_default, NULL},
      {"syncfs", NULL, js_syncfs, NULL, NULL, NULL, napi_default, NULL},
      {"mount", NULL, js_mount, NULL, NULL, NULL, napi_default, NULL},
      {"umount2", NULL, js_umount2, NULL, NULL, NULL, napi_default, NULL},
      {"fiemap", NULL, js_fiemap, NULL, NULL, NULL, napi_default, NULL},
      {"fsGetXattr", NULL, js_fsgetxattr, NULL, NULL, NULL, napi_default, NULL},
      {"fsSetXattr", NULL, js_fssetxattr, NULL, NULL, NULL, napi_default, NULL},
      {"inotifyInit", NULL, js_inotify_init, NULL, NULL, NULL, napi_default, NULL},
      {"inotifyAddWatch", NULL, js_inotify_add_watch, NULL, NULL, NULL, napi_default, NULL},
      {"setFsIds", NULL, js_setfsids, NULL, NULL, NULL, napi_default, NULL},
      {"btrfsSnapshot", NULL, js_btrfs_snapshot, NULL, NULL, NULL, napi_default, NULL},
      {"nsCreate", NULL, js_ns_create, NULL, NULL, NULL, napi_default, NULL},
      {"netVeths", NULL, js_net_veths, NULL, NULL, NULL, napi_default, NULL},
      {"pipe", NULL, js_pipe, NULL, NULL, NULL, napi_default, NULL},
      {"onExit", NULL, js_on_exit, NULL, NULL, NULL, napi_default, NULL},
      {"exitsRef", NULL, js_exits_ref, NULL, NULL, NULL, napi_default, NULL},
      {"spawn", NULL, js_spawn, NULL, NULL, NULL, napi_default, NULL},
      {"sealedCopy", NULL, js_sealed_copy, NULL, NULL, NULL, napi_default, NULL},
      {"idmapMounts", NULL, js_idmap_mounts, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
