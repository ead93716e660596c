/*
 * jaula_native: the few system calls Node.js does not expose.
 *
 *   flock(fd, op) -> boolean          flock(2); false when LOCK_NB would block
 *   openat2(dirfd, path, flags, mode, resolve) -> fd
 *                                      openat2(2), used with RESOLVE_IN_ROOT so that host-side
 *                                      access to a guest's tree can never leave the guest's root
 *   prlimit(pid, resource, soft, hard) prlimit(2): `jaula set GUEST nofile=N` changes the limit
 *                                      of the guest's running processes
 *   readFiles(paths, buf, out)         reads many small kernel files (/proc, cgroupfs) into one
 *                                      buffer in one call, on a few threads: `jaula ps` over
 *                                      hundreds of guests reads thousands, and Node's cost per
 *                                      call would dominate
 *   linkCounts(paths, out)             stat(2)'s link counts of many paths (does a guest's
 *                                      cgroup have children?)
 *
 * Errors are thrown as Error objects whose `code` is the errno name (e.g. "ELOOP").
 * Keep this file tiny: everything that Node can do itself stays in TypeScript.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <linux/openat2.h>
#include <node_api.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
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
  size_t len;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5 || get_int(env, argv[0], &dirfd) || get_int(env, argv[2], &flags) ||
      get_int(env, argv[3], &mode) || get_int(env, argv[4], &resolve) ||
      napi_get_value_string_utf8(env, argv[1], path, sizeof path, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "openat2(dirfd, path, flags, mode, resolve): bad arguments");
    return NULL;
  }
  if (len >= sizeof path - 1) return throw_errno(env, ENAMETOOLONG, "openat2");
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
  size_t size, base; /* its region: buf[base .. base + size) */
  int32_t *out;
  int full;
};

static void *read_part(void *arg) {
  struct read_part *p = arg;
  size_t used = 0;
  for (uint32_t k = p->first; k < p->first + p->count; k++) {
    p->out[2 * k] = (int32_t)(p->base + used);
    p->out[2 * k + 1] = -1;
    int fd = open(p->paths[k], O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    size_t start = used;
    ssize_t r = 0;
    while (used < p->size && (r = read(fd, p->buf + p->base + used, p->size - used)) > 0) used += (size_t)r;
    close(fd);
    if (used >= p->size) { /* full: the file may not have ended */
      p->full = 1;
      return NULL;
    }
    if (r < 0) used = start;
    else p->out[2 * k + 1] = (int32_t)(used - start);
  }
  return NULL;
}

#define READ_THREADS 4

/* readFiles(paths: string[], buf: Buffer, out: Int32Array): out[2k] = offset of file k in buf,
 * out[2k+1] = its length (-1: unreadable). Returns 0, or -1 when buf is too small (grow it and
 * call again). Long lists are read by up to READ_THREADS threads (the kernel formats /proc files
 * on the reading CPU, so this uses the host's cores). */
static napi_value js_read_files(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], result;
  uint32_t n;
  char *buf;
  size_t size;
  napi_typedarray_type type;
  size_t outlen;
  void *outdata;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3 || napi_get_array_length(env, argv[0], &n) != napi_ok ||
      napi_get_buffer_info(env, argv[1], (void **)&buf, &size) != napi_ok ||
      napi_get_typedarray_info(env, argv[2], &type, &outlen, &outdata, NULL, NULL) != napi_ok ||
      type != napi_int32_array || outlen < 2 * (size_t)n) {
    napi_throw_type_error(env, NULL, "readFiles(paths, buf, out): string[], Buffer, Int32Array(2 * paths.length)");
    return NULL;
  }
  char **paths = calloc(n ? n : 1, sizeof *paths);
  if (!paths) return throw_errno(env, ENOMEM, "readFiles");
  napi_value ret = NULL;
  for (uint32_t k = 0; k < n; k++) {
    napi_value v;
    size_t len;
    if (napi_get_element(env, argv[0], k, &v) != napi_ok ||
        napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok || len >= 4096 ||
        !(paths[k] = malloc(len + 1)) ||
        napi_get_value_string_utf8(env, v, paths[k], len + 1, &len) != napi_ok) {
      napi_throw_type_error(env, NULL, "readFiles: paths must be strings shorter than 4096 bytes");
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
    part[t] = (struct read_part){paths, first, last - first, buf, size / parts, size / parts * t, outdata, 0};
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
    size_t len;
    struct stat st;
    CHECK(napi_get_element(env, argv[0], k, &v));
    if (napi_get_value_string_utf8(env, v, path, sizeof path, &len) != napi_ok || len >= sizeof path - 1) {
      napi_throw_type_error(env, NULL, "linkCounts: paths must be strings shorter than 4096 bytes");
      return NULL;
    }
    out[k] = stat(path, &st) == 0 ? (int32_t)st.st_nlink : -1;
  }
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"flock", NULL, js_flock, NULL, NULL, NULL, napi_default, NULL},
      {"openat2", NULL, js_openat2, NULL, NULL, NULL, napi_default, NULL},
      {"prlimit", NULL, js_prlimit, NULL, NULL, NULL, napi_default, NULL},
      {"readFiles", NULL, js_read_files, NULL, NULL, NULL, napi_default, NULL},
      {"linkCounts", NULL, js_link_counts, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
