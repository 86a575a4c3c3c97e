#include "vdev/peer.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

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

}  // namespace

absl::StatusOr<Peer> Peer::FromSocket(int sock) {
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

  len = sizeof p.pidfd_;
  if (getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &p.pidfd_, &len) != 0) {
    p.pidfd_ = -1;
    if (errno == ENOPROTOOPT || errno == EINVAL) return p;  // a kernel before 6.5
    return absl::ErrnoToStatus(errno, "SO_PEERPIDFD");      // ESRCH: the peer has exited
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
  struct stat st;
  if (fstatat(p.proc_fd_, "ns/net", &st, 0) == 0) {
    p.netns_ = NamespaceId{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
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
        "the client's process cannot be identified (no SO_PEERPIDFD before Linux 6.5, or "
        "a process outside the daemon's PID namespace)");
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
