// Fault injection for tests/integration/sigbus.sh, preloaded into vrdmad (LD_PRELOAD):
// fcntl(F_GET_SEALS) on a memfd named vrdma-sigbus-attack* reports F_SEAL_SHRINK, which
// it does not have. The daemon's first line (the seal checks of vdev/shm) then accepts
// memory the client can still truncate — standing for a hole in that first line — so
// that the second line, the fault guard, is what the test exercises. Nothing else changes.
// Both names are defined here: the header must not rename one into the other.
#undef _FILE_OFFSET_BITS
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int Lying(int fd) {
  char link[64], target[256];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n <= 0) return 0;
  target[n] = 0;
  return strncmp(target, "/memfd:vrdma-sigbus-attack", 26) == 0;
}

static int Call(const char* name, int fd, int cmd, long arg) {
  int (*real)(int, int, ...) = (int (*)(int, int, ...))dlsym(RTLD_NEXT, name);
  int r = real(fd, cmd, arg);
  if (cmd == F_GET_SEALS && r >= 0 && Lying(fd)) r |= F_SEAL_SHRINK;
  return r;
}

int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  long arg = va_arg(ap, long);
  va_end(ap);
  return Call("fcntl", fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  long arg = va_arg(ap, long);
  va_end(ap);
  return Call("fcntl64", fd, cmd, arg);
}
