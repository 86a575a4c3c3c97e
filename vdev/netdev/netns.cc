#include "vdev/netdev/netns.h"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace vrdma::vdev {

absl::StatusOr<std::shared_ptr<Netns>> Netns::Adopt(int fd) {
  if (fd < 0) return absl::InvalidArgumentError("no network namespace descriptor");
  struct stat st;
  if (ioctl(fd, NS_GET_NSTYPE) != CLONE_NEWNET || fstat(fd, &st) != 0) {
    close(fd);
    return absl::InvalidArgumentError("the descriptor is not a network namespace's");
  }
  std::shared_ptr<Netns> ns(new Netns(fd, 0, st.st_ino));
  uint64_t cookie = 0;
  {
    NetnsScope scope(ns.get());
    if (!scope.entered()) return absl::ErrnoToStatus(errno, "entering the network namespace");
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    socklen_t len = sizeof cookie;
    if (s >= 0 && getsockopt(s, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0) cookie = 0;
    if (s >= 0) close(s);
  }
  if (cookie == 0) {
    return absl::FailedPreconditionError("the network namespace has no cookie (Linux 5.14+)");
  }
  ns->cookie_ = cookie;
  return ns;
}

Netns::~Netns() { close(fd_); }

NetnsScope::NetnsScope(const Netns* ns) {
  if (!ns) return;
  back_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (back_ < 0 || setns(ns->fd(), CLONE_NEWNET) != 0) {
    int err = errno;
    if (back_ >= 0) close(back_);
    back_ = -1;
    ok_ = false;
    errno = err;
  }
}

NetnsScope::~NetnsScope() {
  if (back_ < 0) return;
  int saved = errno;
  if (setns(back_, CLONE_NEWNET) != 0) {
    std::perror("vrdmad: returning to its network namespace");
    std::abort();
  }
  close(back_);
  errno = saved;
}

}  // namespace vrdma::vdev
