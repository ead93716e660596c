/*
 * jaula_native: the few system calls Node.js does not expose.
 *
 *   flock(fd, op) -> boolean          flock(2); false when LOCK_NB would block
 *   openat2(dirfd, path, flags, mode, resolve) -> fd
 *                                      openat2(2), used with RESOLVE_IN_ROOT so that host-side
 *                                      access to a guest's tree can never leave the guest's root
 *   prlimit(pid, resource, soft, hard) prlimit(2): `jaula set GUEST nofile=N` changes the limit
 *                                      of the guest's running processes
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
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
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

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"flock", NULL, js_flock, NULL, NULL, NULL, napi_default, NULL},
      {"openat2", NULL, js_openat2, NULL, NULL, NULL, napi_default, NULL},
      {"prlimit", NULL, js_prlimit, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
