/*
 * LD_PRELOAD shim for Debian's User-Mode Linux 6.1 (linux.uml), used only by the test sandbox.
 *
 * UML restores a guest's FPU state with PTRACE_SETREGSET(NT_X86_XSTATE) from a fixed buffer sized
 * for AVX-512 (2696 bytes). The host kernel accepts that regset only at its full size
 * (xstateregs_set(): count != fpu_user_cfg.max_size -> EFAULT), which is larger on CPUs with AMX,
 * so UML panics at boot with "ptrace set fp regs failed, errno = 14". Upstream UML fixed this by
 * sizing the buffer from the host (6.13). Here we read the tracee's full state, overlay the part
 * UML knows about, and write back the full size: every feature UML saves is restored exactly, and
 * the rest (AMX tiles, which no guest process is permitted to use) is left as it was.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef long (*ptrace_fn)(enum __ptrace_request, pid_t, void *, void *);

/* UML's kernel stacks are small and it runs guest work on one host thread: a static buffer. */
static unsigned char full_state[65536] __attribute__((aligned(64)));

long ptrace(enum __ptrace_request request, ...) {
  static ptrace_fn real_ptrace;
  va_list args;
  va_start(args, request);
  pid_t pid = va_arg(args, pid_t);
  void *addr = va_arg(args, void *);
  void *data = va_arg(args, void *);
  va_end(args);
  if (!real_ptrace) real_ptrace = (ptrace_fn)dlsym(RTLD_NEXT, "ptrace");

  if (request == PTRACE_SETREGSET && (long)addr == NT_X86_XSTATE && data) {
    struct iovec *given = data;
    struct iovec full = {full_state, sizeof full_state};
    if (real_ptrace(PTRACE_GETREGSET, pid, addr, &full) == 0 && full.iov_len > given->iov_len) {
      memcpy(full_state, given->iov_base, given->iov_len);
      return real_ptrace(PTRACE_SETREGSET, pid, addr, &full);
    }
  }
  return real_ptrace(request, pid, addr, data);
}
