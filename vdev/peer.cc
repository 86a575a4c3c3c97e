#include "vdev/peer.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "absl/strings/str_cat.h"

// asm-generic/socket.h, Linux 6.5: a pidfd of the process that called connect().
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

namespace vrdma::vdev {

namespace {

bool Alive(int pidfd) { return syscall(SYS_pidfd_send_signal, pidfd, 0, nullptr, 0) == 0; }

// The pidfd's process number as this /proc shows it ("Pid:" of its fdinfo, translated to
// the PID namespace of the /proc mount, which is what /proc/N names): 0 when it is not
// visible there, -1 when it has exited.
int ProcPidOf(int pidfd) {
  int fd = open(absl::StrCat("/proc/self/fdinfo/", pidfd).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[512];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  const char* line = std::strstr(buf, "\nPid:");
  int pid = 0;
  if (!line || std::sscanf(line + 5, "%d", &pid) != 1) return 0;
  return pid;
}

// The inode of the other end of connected AF_UNIX socket `sock`, from the kernel's
// sock_diag (UNIX_DIAG_PEER; linux/unix_diag.h), or 0.
// sock_diag answers for the sockets of its own network namespace, and the server end of a
// UNIX connection lives in the client's: the query is made in `netns_fd`'s namespace when
// given (setns of this thread only, and back).
int SockDiagSocket(int netns_fd) {
  if (netns_fd < 0) return socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  int own = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (own < 0) return -1;
  int nl = -1;
  if (setns(netns_fd, CLONE_NEWNET) == 0) {
    nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (setns(own, CLONE_NEWNET) != 0) std::abort();  // never run on in another namespace
  }
  close(own);
  return nl;
}

uint64_t UnixPeerInode(int sock, int netns_fd) {
  struct stat st;
  if (fstat(sock, &st) != 0) return 0;
  int nl = SockDiagSocket(netns_fd);
  if (nl < 0) return 0;
  struct {
    nlmsghdr nh;
    unix_diag_req req;
  } msg{};
  msg.nh.nlmsg_len = sizeof msg;
  msg.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nh.nlmsg_flags = NLM_F_REQUEST;
  msg.req.sdiag_family = AF_UNIX;
  msg.req.udiag_states = ~0u;
  msg.req.udiag_ino = static_cast<uint32_t>(st.st_ino);
  msg.req.udiag_show = UDIAG_SHOW_PEER;
  msg.req.udiag_cookie[0] = msg.req.udiag_cookie[1] = ~0u;  // INET_DIAG_NOCOOKIE
  uint64_t peer = 0;
  if (send(nl, &msg, sizeof msg, 0) == static_cast<ssize_t>(sizeof msg)) {
    alignas(nlmsghdr) char buf[8192];
    ssize_t n = recv(nl, buf, sizeof buf, 0);
    auto* nh = reinterpret_cast<nlmsghdr*>(buf);
    if (n > 0 && NLMSG_OK(nh, static_cast<size_t>(n)) && nh->nlmsg_type == SOCK_DIAG_BY_FAMILY) {
      auto* dm = static_cast<unix_diag_msg*>(NLMSG_DATA(nh));
      int attr_len = static_cast<int>(nh->nlmsg_len - NLMSG_LENGTH(sizeof *dm));
      for (rtattr* a = reinterpret_cast<rtattr*>(dm + 1); RTA_OK(a, attr_len);
           a = RTA_NEXT(a, attr_len)) {
        if (a->rta_type == UNIX_DIAG_PEER && RTA_PAYLOAD(a) >= sizeof(uint32_t)) {
          uint32_t v;
          std::memcpy(&v, RTA_DATA(a), sizeof v);
          peer = v;
        }
      }
    }
  }
  close(nl);
  return peer;
}

// Whether the process of /proc directory `proc_fd` holds socket inode `ino` open.
bool HoldsSocket(int proc_fd, uint64_t ino) {
  int dir_fd = openat(proc_fd, "fd", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  if (dir_fd < 0) return false;
  DIR* dir = fdopendir(dir_fd);
  if (!dir) {
    close(dir_fd);
    return false;
  }
  std::string want = absl::StrCat("socket:[", ino, "]");
  bool found = false;
  char target[64];
  while (dirent* e = readdir(dir)) {
    ssize_t n = readlinkat(dir_fd, e->d_name, target, sizeof target - 1);
    if (n > 0 && std::string_view(target, static_cast<size_t>(n)) == want) {
      found = true;
      break;
    }
  }
  closedir(dir);
  return found;
}

}  // namespace

// asm-generic/socket.h, Linux 5.14.
#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

NamespaceId NamespaceId::OfSocket(int fd) {
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0) cookie = 0;
  return NamespaceId{cookie};
}

NamespaceId NamespaceId::Current() {
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return NamespaceId{};
  NamespaceId id = OfSocket(fd);
  close(fd);
  return id;
}

absl::StatusOr<Peer> Peer::FromSocket(int sock, PidfdSource source) {
  Peer p;
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return absl::ErrnoToStatus(errno, "SO_PEERCRED");
  }
  p.pid_ = cred.pid;
  p.uid_ = cred.uid;
  p.gid_ = cred.gid;
  // Supplementary groups, as of connect() too.
  std::vector<gid_t> groups(64);
  for (;;) {
    len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (getsockopt(sock, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
      groups.resize(len / sizeof(gid_t));
      break;
    }
    if (errno != ERANGE || groups.size() >= 65536) {
      groups.clear();
      break;
    }
    groups.resize(std::max<size_t>(len / sizeof(gid_t), groups.size() * 2));
  }
  p.groups_ = std::move(groups);
  p.netns_ = NamespaceId::OfSocket(sock);

  len = sizeof p.pidfd_;
  bool proven_by_kernel = true;
  if (source == PidfdSource::kPidfdOpen ||
      getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &p.pidfd_, &len) != 0) {
    p.pidfd_ = -1;
    if (source != PidfdSource::kPidfdOpen && errno != ENOPROTOOPT && errno != EINVAL) {
      return absl::ErrnoToStatus(errno, "SO_PEERPIDFD");  // ESRCH: the peer has exited
    }
    // A kernel before 6.5: a pidfd of whatever holds the PID now, proven below to be the
    // process holding the other end of this connection.
    if (p.pid_ <= 0) return p;
    p.pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, p.pid_, 0));
    if (p.pidfd_ < 0) return absl::NotFoundError("the connecting process has exited");
    proven_by_kernel = false;
  }
  // /proc/PID names whichever process holds the number now. Opened first, then the
  // pidfd's process is checked to be alive: a number cannot be reused while its process
  // lives, so the directory is the peer's, and lookups under it fail once the peer exits.
  // The number is the pidfd's as /proc counts (not SO_PEERCRED's, which is the daemon's
  // PID namespace and may not be /proc's). A peer /proc does not show is known by its
  // credentials and pidfd only.
  int proc_pid = ProcPidOf(p.pidfd_);
  if (proc_pid > 0) {
    p.proc_fd_ = open(absl::StrCat("/proc/", proc_pid).c_str(),
                      O_DIRECTORY | O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  }
  if (!Alive(p.pidfd_)) return absl::NotFoundError("the connecting process has exited");
  if (p.proc_fd_ < 0) return p;
  if (!proven_by_kernel) {
    // The process at that PID must hold our peer's socket (sock_diag names it): then it
    // is the client, or a process the client gave its connection to. Else the client is
    // known by its credentials only.
    uint64_t peer_ino = UnixPeerInode(sock, -1);
    if (peer_ino == 0 && NamespaceId::OfSocket(sock) != NamespaceId::Current()) {
      // A client of another network namespace (--netns-mode shared): ask there.
      int ns = openat(p.proc_fd_, "ns/net", O_RDONLY | O_CLOEXEC);
      if (ns >= 0) {
        peer_ino = UnixPeerInode(sock, ns);
        close(ns);
      }
    }
    if (peer_ino == 0 || !HoldsSocket(p.proc_fd_, peer_ino)) {
      close(p.proc_fd_);
      p.proc_fd_ = -1;
      return p;
    }
  }
  auto comm = p.OpenProcFile("comm", O_RDONLY);
  if (comm.ok()) {
    char buf[64];
    ssize_t n = read(*comm, buf, sizeof buf - 1);
    close(*comm);
    if (n > 0) {
      std::string s(buf, static_cast<size_t>(n));
      while (!s.empty() && s.back() == '\n') s.pop_back();
      if (!s.empty()) p.comm_ = s;
    }
  }
  return p;
}

Peer Peer::ForCredentials(pid_t pid, uid_t uid, gid_t gid) {
  Peer p;
  p.pid_ = pid;
  p.uid_ = uid;
  p.gid_ = gid;
  return p;
}

Peer::Peer(Peer&& o) noexcept { *this = std::move(o); }

Peer& Peer::operator=(Peer&& o) noexcept {
  if (this == &o) return *this;
  Close();
  pid_ = o.pid_;
  uid_ = o.uid_;
  gid_ = o.gid_;
  groups_ = std::move(o.groups_);
  comm_ = std::move(o.comm_);
  netns_ = o.netns_;
  pidfd_ = o.pidfd_;
  proc_fd_ = o.proc_fd_;
  o.pidfd_ = -1;
  o.proc_fd_ = -1;
  return *this;
}

Peer::~Peer() { Close(); }

void Peer::Close() {
  if (pidfd_ >= 0) close(pidfd_);
  if (proc_fd_ >= 0) close(proc_fd_);
  pidfd_ = -1;
  proc_fd_ = -1;
}

bool Peer::InGroup(gid_t g) const {
  return gid_ == g || std::find(groups_.begin(), groups_.end(), g) != groups_.end();
}

absl::StatusOr<int> Peer::OpenProcFile(const std::string& relative, int flags) const {
  if (proc_fd_ < 0) {
    return absl::FailedPreconditionError(
        "the client's process cannot be proven (outside the daemon's PID namespace, or no "
        "longer holding its connection)");
  }
  int fd = openat(proc_fd_, relative.c_str(), flags | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT || err == ESRCH)
      return absl::NotFoundError("the client's process has exited");
    return absl::ErrnoToStatus(err,
                               absl::StrCat("opening the client's /proc/", pid_, "/", relative));
  }
  return fd;
}

}  // namespace vrdma::vdev
