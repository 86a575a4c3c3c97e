// The process at the other end of a client connection, identified by what cannot be
// recycled or borrowed (docs/security.md): its credentials as the kernel recorded them at
// connect() (SO_PEERCRED, SO_PEERGROUPS), a pidfd of that very process (SO_PEERPIDFD), and
// a /proc directory proven to belong to it. A PID number is kept for logs only: read
// later, it may name another process.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace vrdma::vdev {

// Identity of a network namespace: its cookie (SO_NETNS_COOKIE, Linux 5.14), which every
// socket made in it reports. The server end of a UNIX connection is made in the client's
// namespace (unix_stream_connect), so the kernel itself says where a client connected from.
struct NamespaceId {
  uint64_t cookie = 0;
  bool operator==(const NamespaceId&) const = default;
  bool known() const { return cookie != 0; }
  static NamespaceId OfSocket(int fd);
  static NamespaceId Current();  // of this process
};

class Peer {
 public:
  // The peer of connected socket `sock`, as of its connect(). Fails when the peer has
  // already exited (its memory and namespaces can no longer be proven to be its own).
  // Where the pidfd comes from: the kernel's SO_PEERPIDFD (Linux 6.5), else pidfd_open of
  // SO_PEERCRED's PID proven to hold the other end of `sock` (sock_diag, /proc/PID/fd);
  // kPidfdOpen takes the second way on any kernel (tests).
  enum class PidfdSource { kAuto, kPidfdOpen };
  static absl::StatusOr<Peer> FromSocket(int sock, PidfdSource source = PidfdSource::kAuto);
  // A peer for tests and in-process use: credentials only, no process.
  static Peer ForCredentials(pid_t pid, uid_t uid, gid_t gid);

  Peer(Peer&& other) noexcept;
  Peer& operator=(Peer&& other) noexcept;
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;
  ~Peer();

  pid_t pid() const { return pid_; }  // for logs: the number at connect time
  uid_t uid() const { return uid_; }
  gid_t gid() const { return gid_; }
  const std::vector<gid_t>& groups() const { return groups_; }
  bool InGroup(gid_t gid) const;
  const std::string& comm() const { return comm_; }
  // The network namespace the peer connected from.
  const NamespaceId& netns() const { return netns_; }

  // Opens `relative` (e.g. "maps", "map_files/7f00-7f10") under the peer's own /proc
  // directory. NotFound once the peer has exited: never another process's file.
  // FailedPrecondition when the kernel gave no pidfd (SO_PEERPIDFD needs Linux 6.5).
  absl::StatusOr<int> OpenProcFile(const std::string& relative, int flags) const;

 private:
  Peer() = default;
  void Close();

  pid_t pid_ = 0;
  uid_t uid_ = static_cast<uid_t>(-1);
  gid_t gid_ = static_cast<gid_t>(-1);
  std::vector<gid_t> groups_;
  std::string comm_ = "?";
  NamespaceId netns_;
  int pidfd_ = -1;
  int proc_fd_ = -1;  // /proc/PID of the pidfd's process, checked after opening
};

}  // namespace vrdma::vdev
