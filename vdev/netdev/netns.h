// A network namespace other than the daemon's, where a vdev's interface lives (a
// container's): held by a descriptor, entered by the calling thread only for the moment it
// makes a socket or reads an interface there (setns(2) changes the calling thread alone),
// so netdev/'s rtnetlink sockets, interface ioctls and ICMP work in it as in the daemon's
// own namespace. A socket keeps the namespace it was made in.
//
// Holding the descriptor keeps the namespace alive (as any socket made in it does), so a
// container's interface stays while its vdev exists: the vdev goes with `dev del` (the CNI
// plugin's DEL), or when the interface is deleted inside the namespace.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"

namespace vrdma::vdev {

class Netns {
 public:
  // Takes `fd` (of /proc/PID/ns/net, /run/netns/NAME, ...). InvalidArgument when it is not
  // a network namespace; the descriptor is closed either way.
  static absl::StatusOr<std::shared_ptr<Netns>> Adopt(int fd);
  ~Netns();
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;

  int fd() const { return fd_; }
  uint64_t cookie() const { return cookie_; }  // SO_NETNS_COOKIE of sockets made in it
  ino_t inode() const { return inode_; }       // as /proc/PID/ns/net names it: net:[INODE]

 private:
  Netns(int fd, uint64_t cookie, ino_t inode) : fd_(fd), cookie_(cookie), inode_(inode) {}
  int fd_;
  uint64_t cookie_;
  ino_t inode_;
};

// Puts the calling thread in `ns` until destroyed, then back where it was. A null `ns`
// does nothing. The way back (the namespace the thread was in, held open meanwhile)
// cannot fail for a thread that could leave it; if it did, the daemon stops rather than
// run on in the wrong namespace.
class NetnsScope {
 public:
  explicit NetnsScope(const Netns* ns);
  ~NetnsScope();
  NetnsScope(const NetnsScope&) = delete;
  NetnsScope& operator=(const NetnsScope&) = delete;
  // False when `ns` was given and could not be entered (errno says why).
  bool entered() const { return ok_; }

 private:
  int back_ = -1;
  bool ok_ = true;
};

}  // namespace vrdma::vdev
