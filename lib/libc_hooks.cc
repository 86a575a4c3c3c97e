// The libc entry points librdmacm reaches the rdma_cm character device through, for
// ChannelTable (rdma_cm_channel.h): open/open64 of kRdmaCmPath, write, fstat/fstat64 and
// close of a channel. Everything else goes to the next definition, found with
// dlsym(RTLD_NEXT): libc's, or that of an interposer preloaded after us. Each symbol
// carries the version node libc exports it under (libvrdma.map: GLIBC_2.2.5, and
// GLIBC_2.33 for fstat), so references bind here.
//
// write() and close() are called by everything in the process: for a descriptor that is
// not a channel they cost one relaxed load before libc's function (MayBeChannel).
// The build's _FILE_OFFSET_BITS=64 would rename open and fstat to open64 and fstat64 here;
// _FORTIFY_SOURCE's inline open() wrapper would clash with the definition.
#undef _FILE_OFFSET_BITS
#undef _FORTIFY_SOURCE

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstring>

#include "cm/client/rdma_cm_channel.h"

namespace {

using vrdma::cm_client::ChannelTable;

// The process's table: constant-initialized (usable by hooks that run before any
// constructor) and never destroyed (hooks run during exit too).
union TableHolder {
  constexpr TableHolder() : table() {}
  ~TableHolder() {}
  ChannelTable table;
};
constinit TableHolder g_holder;
ChannelTable& Table() { return g_holder.table; }

// libc's own function: resolved by the constructor below, or by the first call that comes
// before it (another library's constructor).
template <typename Fn>
class Real {
 public:
  constexpr Real(const char* name, const char* version) : name_(name), version_(version) {}
  Fn Get() {
    Fn fn = fn_.load(std::memory_order_relaxed);
    if (__builtin_expect(fn == nullptr, 0)) fn = Resolve();
    return fn;
  }
  Fn Resolve() {
    // The next definition a plain call would reach: another interposer's when one
    // comes after us in LD_PRELOAD (librspreload.so's write and close hold rsockets,
    // and are unversioned), else libc's default version.
    void* sym = dlsym(RTLD_NEXT, name_);
    if (!sym) sym = dlvsym(RTLD_NEXT, name_, version_);
    Fn fn = reinterpret_cast<Fn>(sym);
    fn_.store(fn, std::memory_order_relaxed);
    return fn;
  }

 private:
  std::atomic<Fn> fn_{nullptr};
  const char* name_;
  const char* version_;
};

using OpenFn = int (*)(const char*, int, ...);
using WriteFn = ssize_t (*)(int, const void*, size_t);
using CloseFn = int (*)(int);
using FstatFn = int (*)(int, struct stat*);
using Fstat64Fn = int (*)(int, struct stat64*);

constinit Real<OpenFn> g_open("open", "GLIBC_2.2.5");
constinit Real<OpenFn> g_open64("open64", "GLIBC_2.2.5");
constinit Real<WriteFn> g_write("write", "GLIBC_2.2.5");
constinit Real<CloseFn> g_close("close", "GLIBC_2.2.5");
constinit Real<FstatFn> g_fstat("fstat", "GLIBC_2.33");
constinit Real<Fstat64Fn> g_fstat64("fstat64", "GLIBC_2.33");

__attribute__((constructor)) void ResolveReal() {
  g_open.Resolve();
  g_open64.Resolve();
  g_write.Resolve();
  g_close.Resolve();
  g_fstat.Resolve();
  g_fstat64.Resolve();
}

// open(2)'s mode argument is there only with O_CREAT or O_TMPFILE.
bool HasMode(int flags) { return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE; }

int Fail(int negative_errno) {
  errno = -negative_errno;
  return -1;
}

// Out of line: libc declares open()'s path nonnull, yet open(NULL) is EFAULT, not a crash.
__attribute__((noinline)) bool IsRdmaCm(const char* path) {
  return path && std::strcmp(path, vrdma::cm_client::kRdmaCmPath) == 0;
}

int OpenChannel(int flags) {
  int fd = Table().Open(flags);
  return fd < 0 ? Fail(fd) : fd;
}

// A successful fstat() leaves errno alone (CmDeviceNumber reads sysfs, a stale entry's
// connection closes).
template <typename Stat>
void PatchStat(int fd, Stat* st) {
  if (__builtin_expect(!Table().MayBeChannel(fd), 1)) return;
  int saved = errno;
  Table().PatchStat(fd, st);
  errno = saved;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int open(const char* path, int flags, ...) {
  if (IsRdmaCm(path)) return OpenChannel(flags);
  mode_t mode = 0;
  if (HasMode(flags)) {
    va_list ap;
    va_start(ap, flags);
    mode = va_arg(ap, mode_t);
    va_end(ap);
  }
  return g_open.Get()(path, flags, mode);
}

__attribute__((visibility("default"))) int open64(const char* path, int flags, ...) {
  if (IsRdmaCm(path)) return OpenChannel(flags);
  mode_t mode = 0;
  if (HasMode(flags)) {
    va_list ap;
    va_start(ap, flags);
    mode = va_arg(ap, mode_t);
    va_end(ap);
  }
  return g_open64.Get()(path, flags, mode);
}

__attribute__((visibility("default"))) ssize_t write(int fd, const void* buf, size_t len) {
  if (__builtin_expect(Table().MayBeChannel(fd), 0)) {
    int saved = errno;  // errno changes only when the write fails
    std::optional<ssize_t> r = Table().Write(fd, buf, len);
    if (r && *r < 0) return Fail(static_cast<int>(*r));
    errno = saved;
    if (r) return *r;
  }
  return g_write.Get()(fd, buf, len);
}

__attribute__((visibility("default"))) int close(int fd) {
  if (__builtin_expect(Table().MayBeChannel(fd), 0)) {
    int saved = errno;  // closing the daemon connection leaves errno as it was
    Table().Forget(fd);
    errno = saved;
  }
  return g_close.Get()(fd);
}

__attribute__((visibility("default"))) int fstat(int fd, struct stat* st) noexcept {
  int r = g_fstat.Get()(fd, st);
  if (r == 0) PatchStat(fd, st);
  return r;
}

__attribute__((visibility("default"))) int fstat64(int fd, struct stat64* st) noexcept {
  int r = g_fstat64.Get()(fd, st);
  if (r == 0) PatchStat(fd, st);
  return r;
}

}  // extern "C"
