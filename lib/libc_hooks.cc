// libvrdma.so's libc hooks. Three clients:
// - the rdma_cm character device librdmacm reaches through open/open64 of kRdmaCmPath,
//   write, fstat/fstat64 and close of a channel (ChannelTable, cm/client/rdma_cm_channel.h);
// - the sysfs view (vdev/provider/sysfs_view.h): every entry point that takes a path
//   (open and its fortified and *at forms, fopen, opendir, scandir, the stat family,
//   statx, access, faccessat, readlink, readlinkat, realpath, chdir, the xattr reads)
//   sends an absolute
//   path under /sys/class/infiniband, infiniband_verbs or infiniband_mad into the view.
//   Functions libc calls internally (fopen's open, scandir's opendir) do not pass through
//   the dynamic linker, hence the list. Relative paths after a chdir into the view are in
//   the view's real directory already;
// - RDMA netlink (vdev/provider/rdma_netlink_socket.h): socket(AF_NETLINK, ..,
//   NETLINK_RDMA), and on such a socket bind, getsockname, setsockopt, getsockopt, the
//   send and receive calls (and write, close).
// Everything else goes to the next definition, found with dlsym(RTLD_NEXT): libc's, or
// that of an interposer preloaded after us. Each symbol carries the version node libc
// exports it under (libvrdma.map), so references bind here.
//
// write(), close() and the socket calls are called by everything in the process: for a
// descriptor that is not a channel or a netlink socket of ours they cost one or two
// relaxed loads before libc's function (MayBeChannel, NetlinkSockets::MayBe).
// The build's _FILE_OFFSET_BITS=64 would rename open and fstat to open64 and fstat64 here;
// _FORTIFY_SOURCE's inline open() wrapper would clash with the definition.
#undef _FILE_OFFSET_BITS
#undef _FORTIFY_SOURCE

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <optional>

#include "cm/client/rdma_cm_channel.h"
#include "vdev/provider/rdma_netlink_socket.h"
#include "vdev/provider/sysfs_view.h"

namespace {

using vrdma::provider::TheNetlinkSockets;

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

// The path functions the sysfs view routes.
using OpenatFn = int (*)(int, const char*, int, ...);
using Open2Fn = int (*)(const char*, int);
using Openat2Fn = int (*)(int, const char*, int);
using FopenFn = FILE* (*)(const char*, const char*);
using OpendirFn = DIR* (*)(const char*);
using ScandirFn = int (*)(const char*, dirent***, int (*)(const dirent*),
                          int (*)(const dirent**, const dirent**));
using Scandir64Fn = int (*)(const char*, dirent64***, int (*)(const dirent64*),
                            int (*)(const dirent64**, const dirent64**));
using StatFn = int (*)(const char*, struct stat*);
using Stat64Fn = int (*)(const char*, struct stat64*);
using FstatatFn = int (*)(int, const char*, struct stat*, int);
using Fstatat64Fn = int (*)(int, const char*, struct stat64*, int);
using StatxFn = int (*)(int, const char*, int, unsigned, struct statx*);
using AccessFn = int (*)(const char*, int);
using FaccessatFn = int (*)(int, const char*, int, int);
using ReadlinkFn = ssize_t (*)(const char*, char*, size_t);
using ReadlinkatFn = ssize_t (*)(int, const char*, char*, size_t);
using RealpathFn = char* (*)(const char*, char*);
using ChdirFn = int (*)(const char*);
using ReadlinkChkFn = ssize_t (*)(const char*, char*, size_t, size_t);
using ReadlinkatChkFn = ssize_t (*)(int, const char*, char*, size_t, size_t);
using GetxattrFn = ssize_t (*)(const char*, const char*, void*, size_t);
using ListxattrFn = ssize_t (*)(const char*, char*, size_t);

constinit Real<OpenatFn> g_openat("openat", "GLIBC_2.4");
constinit Real<OpenatFn> g_openat64("openat64", "GLIBC_2.4");
constinit Real<Open2Fn> g_open_2("__open_2", "GLIBC_2.7");
constinit Real<Open2Fn> g_open64_2("__open64_2", "GLIBC_2.7");
constinit Real<Openat2Fn> g_openat_2("__openat_2", "GLIBC_2.7");
constinit Real<Openat2Fn> g_openat64_2("__openat64_2", "GLIBC_2.7");
constinit Real<FopenFn> g_fopen("fopen", "GLIBC_2.2.5");
constinit Real<FopenFn> g_fopen64("fopen64", "GLIBC_2.2.5");
constinit Real<OpendirFn> g_opendir("opendir", "GLIBC_2.2.5");
constinit Real<ScandirFn> g_scandir("scandir", "GLIBC_2.2.5");
constinit Real<Scandir64Fn> g_scandir64("scandir64", "GLIBC_2.2.5");
constinit Real<StatFn> g_stat("stat", "GLIBC_2.33");
constinit Real<Stat64Fn> g_stat64("stat64", "GLIBC_2.33");
constinit Real<StatFn> g_lstat("lstat", "GLIBC_2.33");
constinit Real<Stat64Fn> g_lstat64("lstat64", "GLIBC_2.33");
constinit Real<FstatatFn> g_fstatat("fstatat", "GLIBC_2.33");
constinit Real<Fstatat64Fn> g_fstatat64("fstatat64", "GLIBC_2.33");
constinit Real<StatxFn> g_statx("statx", "GLIBC_2.28");
constinit Real<AccessFn> g_access("access", "GLIBC_2.2.5");
constinit Real<FaccessatFn> g_faccessat("faccessat", "GLIBC_2.4");
constinit Real<ReadlinkFn> g_readlink("readlink", "GLIBC_2.2.5");
constinit Real<ReadlinkatFn> g_readlinkat("readlinkat", "GLIBC_2.4");
constinit Real<RealpathFn> g_realpath("realpath", "GLIBC_2.3");
constinit Real<ChdirFn> g_chdir("chdir", "GLIBC_2.2.5");
constinit Real<ReadlinkChkFn> g_readlink_chk("__readlink_chk", "GLIBC_2.4");
constinit Real<ReadlinkatChkFn> g_readlinkat_chk("__readlinkat_chk", "GLIBC_2.5");
constinit Real<GetxattrFn> g_getxattr("getxattr", "GLIBC_2.3");
constinit Real<GetxattrFn> g_lgetxattr("lgetxattr", "GLIBC_2.3");
constinit Real<ListxattrFn> g_listxattr("listxattr", "GLIBC_2.3");
constinit Real<ListxattrFn> g_llistxattr("llistxattr", "GLIBC_2.3");

// The socket calls RDMA netlink takes.
using SocketFn = int (*)(int, int, int);
using BindFn = int (*)(int, const sockaddr*, socklen_t);
using GetsocknameFn = int (*)(int, sockaddr*, socklen_t*);
using SetsockoptFn = int (*)(int, int, int, const void*, socklen_t);
using GetsockoptFn = int (*)(int, int, int, void*, socklen_t*);
using SendFn = ssize_t (*)(int, const void*, size_t, int);
using SendtoFn = ssize_t (*)(int, const void*, size_t, int, const sockaddr*, socklen_t);
using SendmsgFn = ssize_t (*)(int, const msghdr*, int);
using RecvFn = ssize_t (*)(int, void*, size_t, int);
using RecvfromFn = ssize_t (*)(int, void*, size_t, int, sockaddr*, socklen_t*);
using RecvmsgFn = ssize_t (*)(int, msghdr*, int);
using RecvChkFn = ssize_t (*)(int, void*, size_t, size_t, int);
using RecvfromChkFn = ssize_t (*)(int, void*, size_t, size_t, int, sockaddr*, socklen_t*);
constinit Real<SocketFn> g_socket("socket", "GLIBC_2.2.5");
constinit Real<BindFn> g_bind("bind", "GLIBC_2.2.5");
constinit Real<GetsocknameFn> g_getsockname("getsockname", "GLIBC_2.2.5");
constinit Real<SetsockoptFn> g_setsockopt("setsockopt", "GLIBC_2.2.5");
constinit Real<GetsockoptFn> g_getsockopt("getsockopt", "GLIBC_2.2.5");
constinit Real<SendFn> g_send("send", "GLIBC_2.2.5");
constinit Real<SendtoFn> g_sendto("sendto", "GLIBC_2.2.5");
constinit Real<SendmsgFn> g_sendmsg("sendmsg", "GLIBC_2.2.5");
constinit Real<RecvFn> g_recv("recv", "GLIBC_2.2.5");
constinit Real<RecvfromFn> g_recvfrom("recvfrom", "GLIBC_2.2.5");
constinit Real<RecvmsgFn> g_recvmsg("recvmsg", "GLIBC_2.2.5");
constinit Real<RecvChkFn> g_recv_chk("__recv_chk", "GLIBC_2.4");
constinit Real<RecvfromChkFn> g_recvfrom_chk("__recvfrom_chk", "GLIBC_2.4");

// A path in the sysfs view, rewritten into `buf`; any other path as it is. The common case
// costs one comparison of the first bytes.
class Route {
 public:
  explicit Route(const char* path) : path_(path) {
    if (__builtin_expect(path != nullptr && path[0] == '/' && path[1] == 's', 0) &&
        vrdma::provider::SysfsRedirect(path, buf_, sizeof buf_)) {
      path_ = buf_;
    }
  }
  const char* path() const { return path_; }
  bool redirected() const { return path_ == buf_; }

 private:
  const char* path_;
  char buf_[PATH_MAX];
};

// Every libc function is resolved here, before the program's threads exist: resolving
// one on its first call takes the dynamic linker's lock (dlsym), which a thread that calls
// send() or recv() while another runs dlopen or dlclose (UCX loading and unloading its
// transports) would wait for forever.
__attribute__((constructor)) void ResolveReal() {
  g_open.Resolve();
  g_open64.Resolve();
  g_write.Resolve();
  g_close.Resolve();
  g_fstat.Resolve();
  g_fstat64.Resolve();
  g_openat.Resolve();
  g_openat64.Resolve();
  g_open_2.Resolve();
  g_open64_2.Resolve();
  g_openat_2.Resolve();
  g_openat64_2.Resolve();
  g_fopen.Resolve();
  g_fopen64.Resolve();
  g_opendir.Resolve();
  g_scandir.Resolve();
  g_scandir64.Resolve();
  g_stat.Resolve();
  g_stat64.Resolve();
  g_lstat.Resolve();
  g_lstat64.Resolve();
  g_fstatat.Resolve();
  g_fstatat64.Resolve();
  g_statx.Resolve();
  g_access.Resolve();
  g_faccessat.Resolve();
  g_readlink.Resolve();
  g_readlinkat.Resolve();
  g_realpath.Resolve();
  g_chdir.Resolve();
  g_readlink_chk.Resolve();
  g_readlinkat_chk.Resolve();
  g_getxattr.Resolve();
  g_lgetxattr.Resolve();
  g_listxattr.Resolve();
  g_llistxattr.Resolve();
  g_socket.Resolve();
  g_bind.Resolve();
  g_getsockname.Resolve();
  g_setsockopt.Resolve();
  g_getsockopt.Resolve();
  g_send.Resolve();
  g_sendto.Resolve();
  g_sendmsg.Resolve();
  g_recv.Resolve();
  g_recvfrom.Resolve();
  g_recvmsg.Resolve();
  g_recv_chk.Resolve();
  g_recvfrom_chk.Resolve();
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

// A result of the netlink sockets: -errno (Fail), or the value.
template <typename T>
T Result(T r) {
  return r < 0 ? Fail(static_cast<int>(r)) : r;
}

// One buffer as a message, for the send and receive calls that take one. nullopt: not a
// netlink socket of ours after all.
std::optional<ssize_t> NetlinkSend(int fd, const void* buf, size_t len, const sockaddr* to,
                                   socklen_t tolen, int flags) {
  iovec iov{const_cast<void*>(buf), len};
  msghdr m{};
  m.msg_name = const_cast<sockaddr*>(to);
  m.msg_namelen = tolen;
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  std::optional<ssize_t> r = TheNetlinkSockets().SendMsg(fd, &m, flags);
  if (r) *r = Result(*r);
  return r;
}

std::optional<ssize_t> NetlinkRecv(int fd, void* buf, size_t len, int flags, sockaddr* from,
                                   socklen_t* fromlen) {
  iovec iov{buf, len};
  msghdr m{};
  m.msg_name = from;
  m.msg_namelen = fromlen ? *fromlen : 0;
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  std::optional<ssize_t> r = TheNetlinkSockets().RecvMsg(fd, &m, flags);
  if (!r) return r;
  *r = Result(*r);
  if (*r >= 0 && from && fromlen) *fromlen = m.msg_namelen;
  return r;
}

int OpenChannel(int flags) {
  int fd = Table().Open(flags);
  return fd < 0 ? Fail(fd) : fd;
}

// The open family: the rdma_cm device's path opens a channel; any other path goes to
// `call` (libc's function), into the sysfs view when it is there.
template <typename Call>
int OpenPath(const char* path, int flags, Call call) {
  if (IsRdmaCm(path)) return OpenChannel(flags);
  return call(Route(path).path());
}

// open(2)'s mode argument, after `flags` in the hook's own arguments (there only with
// O_CREAT or O_TMPFILE). A macro: va_start belongs to the variadic function itself.
#define VRDMA_OPEN_MODE(flags) \
  mode_t mode = 0;             \
  if (HasMode(flags)) {        \
    va_list ap;                \
    va_start(ap, flags);       \
    mode = va_arg(ap, mode_t); \
    va_end(ap);                \
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

// Every hook is exported (the library hides everything else).
#define VRDMA_HOOK __attribute__((visibility("default")))

extern "C" {

VRDMA_HOOK int open(const char* path, int flags, ...) {
  VRDMA_OPEN_MODE(flags);
  return OpenPath(path, flags, [&](const char* p) { return g_open.Get()(p, flags, mode); });
}

VRDMA_HOOK int open64(const char* path, int flags, ...) {
  VRDMA_OPEN_MODE(flags);
  return OpenPath(path, flags, [&](const char* p) { return g_open64.Get()(p, flags, mode); });
}

VRDMA_HOOK ssize_t write(int fd, const void* buf, size_t len) {
  if (__builtin_expect(TheNetlinkSockets().MayBe(fd), 0)) {
    if (std::optional<ssize_t> r = NetlinkSend(fd, buf, len, nullptr, 0, 0)) return *r;
  }
  if (__builtin_expect(Table().MayBeChannel(fd), 0)) {
    int saved = errno;  // errno changes only when the write fails
    std::optional<ssize_t> r = Table().Write(fd, buf, len);
    if (r && *r < 0) return Fail(static_cast<int>(*r));
    errno = saved;
    if (r) return *r;
  }
  return g_write.Get()(fd, buf, len);
}

VRDMA_HOOK int close(int fd) {
  if (__builtin_expect(TheNetlinkSockets().MayBe(fd), 0)) TheNetlinkSockets().Forget(fd);
  if (__builtin_expect(Table().MayBeChannel(fd), 0)) {
    int saved = errno;  // closing the daemon connection leaves errno as it was
    Table().Forget(fd);
    errno = saved;
  }
  return g_close.Get()(fd);
}

VRDMA_HOOK int fstat(int fd, struct stat* st) noexcept {
  int r = g_fstat.Get()(fd, st);
  if (r == 0) PatchStat(fd, st);
  return r;
}

VRDMA_HOOK int fstat64(int fd, struct stat64* st) noexcept {
  int r = g_fstat64.Get()(fd, st);
  if (r == 0) PatchStat(fd, st);
  return r;
}

VRDMA_HOOK int openat(int dirfd, const char* path, int flags, ...) {
  VRDMA_OPEN_MODE(flags);
  return OpenPath(path, flags,
                  [&](const char* p) { return g_openat.Get()(dirfd, p, flags, mode); });
}

VRDMA_HOOK int openat64(int dirfd, const char* path, int flags, ...) {
  VRDMA_OPEN_MODE(flags);
  return OpenPath(path, flags,
                  [&](const char* p) { return g_openat64.Get()(dirfd, p, flags, mode); });
}

// _FORTIFY_SOURCE's forms of open, taken when the flags are not a constant.
VRDMA_HOOK int __open_2(const char* path, int flags) {
  return OpenPath(path, flags, [&](const char* p) { return g_open_2.Get()(p, flags); });
}
VRDMA_HOOK int __open64_2(const char* path, int flags) {
  return OpenPath(path, flags, [&](const char* p) { return g_open64_2.Get()(p, flags); });
}
VRDMA_HOOK int __openat_2(int dirfd, const char* path, int flags) {
  return OpenPath(path, flags, [&](const char* p) { return g_openat_2.Get()(dirfd, p, flags); });
}
VRDMA_HOOK int __openat64_2(int dirfd, const char* path, int flags) {
  return OpenPath(path, flags, [&](const char* p) { return g_openat64_2.Get()(dirfd, p, flags); });
}

VRDMA_HOOK FILE* fopen(const char* path, const char* mode) {
  return g_fopen.Get()(Route(path).path(), mode);
}
VRDMA_HOOK FILE* fopen64(const char* path, const char* mode) {
  return g_fopen64.Get()(Route(path).path(), mode);
}
VRDMA_HOOK DIR* opendir(const char* path) { return g_opendir.Get()(Route(path).path()); }
VRDMA_HOOK int scandir(const char* dir, dirent*** list, int (*filter)(const dirent*),
                       int (*compar)(const dirent**, const dirent**)) {
  return g_scandir.Get()(Route(dir).path(), list, filter, compar);
}
VRDMA_HOOK int scandir64(const char* dir, dirent64*** list, int (*filter)(const dirent64*),
                         int (*compar)(const dirent64**, const dirent64**)) {
  return g_scandir64.Get()(Route(dir).path(), list, filter, compar);
}

VRDMA_HOOK int stat(const char* path, struct stat* st) noexcept {
  return g_stat.Get()(Route(path).path(), st);
}
VRDMA_HOOK int stat64(const char* path, struct stat64* st) noexcept {
  return g_stat64.Get()(Route(path).path(), st);
}
VRDMA_HOOK int lstat(const char* path, struct stat* st) noexcept {
  return g_lstat.Get()(Route(path).path(), st);
}
VRDMA_HOOK int lstat64(const char* path, struct stat64* st) noexcept {
  return g_lstat64.Get()(Route(path).path(), st);
}
VRDMA_HOOK int fstatat(int dirfd, const char* path, struct stat* st, int flags) noexcept {
  return g_fstatat.Get()(dirfd, Route(path).path(), st, flags);
}
VRDMA_HOOK int fstatat64(int dirfd, const char* path, struct stat64* st, int flags) noexcept {
  return g_fstatat64.Get()(dirfd, Route(path).path(), st, flags);
}
VRDMA_HOOK int statx(int dirfd, const char* path, int flags, unsigned mask,
                     struct statx* stx) noexcept {
  return g_statx.Get()(dirfd, Route(path).path(), flags, mask, stx);
}
VRDMA_HOOK int access(const char* path, int mode) noexcept {
  return g_access.Get()(Route(path).path(), mode);
}
VRDMA_HOOK int faccessat(int dirfd, const char* path, int mode, int flags) noexcept {
  return g_faccessat.Get()(dirfd, Route(path).path(), mode, flags);
}
VRDMA_HOOK ssize_t readlink(const char* path, char* buf, size_t len) noexcept {
  return g_readlink.Get()(Route(path).path(), buf, len);
}
VRDMA_HOOK ssize_t readlinkat(int dirfd, const char* path, char* buf, size_t len) noexcept {
  return g_readlinkat.Get()(dirfd, Route(path).path(), buf, len);
}
// _FORTIFY_SOURCE's forms of readlink.
VRDMA_HOOK ssize_t __readlink_chk(const char* path, char* buf, size_t len, size_t buflen) {
  return g_readlink_chk.Get()(Route(path).path(), buf, len, buflen);
}
VRDMA_HOOK ssize_t __readlinkat_chk(int dirfd, const char* path, char* buf, size_t len,
                                    size_t buflen) {
  return g_readlinkat_chk.Get()(dirfd, Route(path).path(), buf, len, buflen);
}
VRDMA_HOOK int chdir(const char* path) noexcept { return g_chdir.Get()(Route(path).path()); }
// ls -l asks each entry for ACLs.
VRDMA_HOOK ssize_t getxattr(const char* path, const char* name, void* value, size_t len) noexcept {
  return g_getxattr.Get()(Route(path).path(), name, value, len);
}
VRDMA_HOOK ssize_t lgetxattr(const char* path, const char* name, void* value, size_t len) noexcept {
  return g_lgetxattr.Get()(Route(path).path(), name, value, len);
}
VRDMA_HOOK ssize_t listxattr(const char* path, char* list, size_t len) noexcept {
  return g_listxattr.Get()(Route(path).path(), list, len);
}
VRDMA_HOOK ssize_t llistxattr(const char* path, char* list, size_t len) noexcept {
  return g_llistxattr.Get()(Route(path).path(), list, len);
}

// A path in the view resolves to itself (it is canonical: the view has no links between
// its own entries), not to the view's directory; any other path as libc resolves it.
VRDMA_HOOK char* realpath(const char* path, char* resolved) noexcept {
  Route route(path);
  if (!route.redirected()) return g_realpath.Get()(path, resolved);
  char* real = g_realpath.Get()(route.path(), nullptr);
  if (!real) return nullptr;
  free(real);
  size_t len = std::strlen(path);
  while (len > 1 && path[len - 1] == '/') --len;
  if (len >= PATH_MAX) {
    errno = ENAMETOOLONG;
    return nullptr;
  }
  char* out = resolved ? resolved : static_cast<char*>(malloc(PATH_MAX));
  if (!out) {
    errno = ENOMEM;
    return nullptr;
  }
  std::memcpy(out, path, len);
  out[len] = 0;
  return out;
}

// ---- RDMA netlink ----

VRDMA_HOOK int socket(int domain, int type, int protocol) noexcept {
  if (__builtin_expect(domain == AF_NETLINK && protocol == NETLINK_RDMA, 0)) {
    std::optional<int> fd = TheNetlinkSockets().Open(type);
    if (fd) return Result(*fd);
  }
  return g_socket.Get()(domain, type, protocol);
}

VRDMA_HOOK int bind(int fd, const sockaddr* addr, socklen_t len) noexcept {
  if (__builtin_expect(TheNetlinkSockets().MayBe(fd), 0)) {
    if (std::optional<int> r = TheNetlinkSockets().Bind(fd, addr, len)) return Result(*r);
  }
  return g_bind.Get()(fd, addr, len);
}

VRDMA_HOOK int getsockname(int fd, sockaddr* addr, socklen_t* len) noexcept {
  if (__builtin_expect(TheNetlinkSockets().MayBe(fd), 0)) {
    if (std::optional<int> r = TheNetlinkSockets().GetSockName(fd, addr, len)) return Result(*r);
  }
  return g_getsockname.Get()(fd, addr, len);
}

VRDMA_HOOK int setsockopt(int fd, int level, int name, const void* value, socklen_t len) noexcept {
  if (__builtin_expect(TheNetlinkSockets().MayBe(fd), 0)) {
    if (std::optional<int> r = TheNetlinkSockets().SetSockOpt(fd, level, name, value, len)) {
      return Result(*r);
    }
  }
  return g_setsockopt.Get()(fd, level, name, value, len);
}

VRDMA_HOOK int getsockopt(int fd, int level, int name, void* value, socklen_t* len) noexcept {
  if (__builtin_expect(TheNetlinkSockets().MayBe(fd), 0)) {
    if (std::optional<int> r = TheNetlinkSockets().GetSockOpt(fd, level, name, value, len)) {
      return Result(*r);
    }
  }
  return g_getsockopt.Get()(fd, level, name, value, len);
}

VRDMA_HOOK ssize_t send(int fd, const void* buf, size_t len, int flags) {
  if (__builtin_expect(TheNetlinkSockets().MayBe(fd), 0)) {
    if (std::optional<ssize_t> r = NetlinkSend(fd, buf, len, nullptr, 0, flags)) return *r;
  }
  return g_send.Get()(fd, buf, len, flags);
}

VRDMA_HOOK ssize_t sendto(int fd, const void* buf, size_t len, int flags, const sockaddr* to,
                          socklen_t tolen) {
  if (__builtin_expect(TheNetlinkSockets().MayBe(fd), 0)) {
    if (std::optional<ssize_t> r = NetlinkSend(fd, buf, len, to, tolen, flags)) return *r;
  }
  return g_sendto.Get()(fd, buf, len, flags, to, tolen);
}

VRDMA_HOOK ssize_t sendmsg(int fd, const msghdr* msg, int flags) {
  if (__builtin_expect(TheNetlinkSockets().MayBe(fd), 0)) {
    if (std::optional<ssize_t> r = TheNetlinkSockets().SendMsg(fd, msg, flags)) return Result(*r);
  }
  return g_sendmsg.Get()(fd, msg, flags);
}

VRDMA_HOOK ssize_t recv(int fd, void* buf, size_t len, int flags) {
  if (__builtin_expect(TheNetlinkSockets().MayBe(fd), 0)) {
    if (std::optional<ssize_t> r = NetlinkRecv(fd, buf, len, flags, nullptr, nullptr)) return *r;
  }
  return g_recv.Get()(fd, buf, len, flags);
}

VRDMA_HOOK ssize_t recvfrom(int fd, void* buf, size_t len, int flags, sockaddr* from,
                            socklen_t* fromlen) {
  if (__builtin_expect(TheNetlinkSockets().MayBe(fd), 0)) {
    if (std::optional<ssize_t> r = NetlinkRecv(fd, buf, len, flags, from, fromlen)) return *r;
  }
  return g_recvfrom.Get()(fd, buf, len, flags, from, fromlen);
}

VRDMA_HOOK ssize_t recvmsg(int fd, msghdr* msg, int flags) {
  if (__builtin_expect(TheNetlinkSockets().MayBe(fd), 0)) {
    if (std::optional<ssize_t> r = TheNetlinkSockets().RecvMsg(fd, msg, flags)) return Result(*r);
  }
  return g_recvmsg.Get()(fd, msg, flags);
}

// _FORTIFY_SOURCE's forms of recv and recvfrom (buflen: the buffer's known size).
VRDMA_HOOK ssize_t __recv_chk(int fd, void* buf, size_t len, size_t buflen, int flags) {
  if (__builtin_expect(TheNetlinkSockets().MayBe(fd), 0) && len <= buflen) {
    if (std::optional<ssize_t> r = NetlinkRecv(fd, buf, len, flags, nullptr, nullptr)) return *r;
  }
  return g_recv_chk.Get()(fd, buf, len, buflen, flags);
}

VRDMA_HOOK ssize_t __recvfrom_chk(int fd, void* buf, size_t len, size_t buflen, int flags,
                                  sockaddr* from, socklen_t* fromlen) {
  if (__builtin_expect(TheNetlinkSockets().MayBe(fd), 0) && len <= buflen) {
    if (std::optional<ssize_t> r = NetlinkRecv(fd, buf, len, flags, from, fromlen)) return *r;
  }
  return g_recvfrom_chk.Get()(fd, buf, len, buflen, flags, from, fromlen);
}

}  // extern "C"
