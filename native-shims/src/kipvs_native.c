/*
 * Calls Node does not expose: setns(2), so that kipvs can program the IPVS table, ipsets and
 * links of another network namespace (all three are per namespace). A netlink socket stays bound to
 * the namespace it was created in, so callers enter the namespace, open their sockets, and return.
 * And glibc's malloc_trim(3), for the daemon's memory (src/agent/observers.ts).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <node_api.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static napi_value throw_errno(napi_env env, const char *syscall_name, int err) {
  napi_value code, message, error;
  const char *name = strerrorname_np(err);
  char text[256];
  snprintf(text, sizeof text, "%s: %s (%s)", syscall_name, strerror(err), name ? name : "E?");
  napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_value errno_value;
  napi_create_int32(env, err, &errno_value);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_value syscall_value;
  napi_create_string_utf8(env, syscall_name, NAPI_AUTO_LENGTH, &syscall_value);
  napi_set_named_property(env, error, "syscall", syscall_value);
  napi_throw(env, error);
  return NULL;
}

static int get_int_arg(napi_env env, napi_callback_info info, size_t index, int32_t *out) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc <= index) return -1;
  return napi_get_value_int32(env, argv[index], out) == napi_ok ? 0 : -1;
}

/* setns(fd, nstype): nstype 0 accepts any namespace type, CLONE_NEWNET restricts to network. */
static napi_value js_setns(napi_env env, napi_callback_info info) {
  int32_t fd, nstype;
  if (get_int_arg(env, info, 0, &fd) || get_int_arg(env, info, 1, &nstype)) {
    napi_throw_type_error(env, NULL, "setns(fd: number, nstype: number)");
    return NULL;
  }
  if (setns(fd, nstype) != 0) return throw_errno(env, "setns", errno);
  return NULL;
}

static napi_value js_gettid(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  napi_create_int32(env, (int32_t)gettid(), &result);
  return result;
}

/*
 * malloc_trim(0): glibc hands back free pages anywhere in its heaps, not only at their top. Returns
 * whether it released any; false where the C library is not glibc (it has no such call).
 */
static napi_value js_malloc_trim(napi_env env, napi_callback_info info) {
  (void)info;
  int released = 0;
#ifdef __GLIBC__
  released = malloc_trim(0);
#endif
  napi_value result;
  napi_get_boolean(env, released != 0, &result);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn, flag;
  napi_create_function(env, "setns", NAPI_AUTO_LENGTH, js_setns, NULL, &fn);
  napi_set_named_property(env, exports, "setns", fn);
  napi_create_function(env, "gettid", NAPI_AUTO_LENGTH, js_gettid, NULL, &fn);
  napi_set_named_property(env, exports, "gettid", fn);
  napi_create_function(env, "mallocTrim", NAPI_AUTO_LENGTH, js_malloc_trim, NULL, &fn);
  napi_set_named_property(env, exports, "mallocTrim", fn);
  napi_create_int32(env, CLONE_NEWNET, &flag);
  napi_set_named_property(env, exports, "CLONE_NEWNET", flag);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
