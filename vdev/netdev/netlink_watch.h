// Watches the kernel's interface and address changes (rtnetlink), so vdevs follow their
// interface: GID tables are rebuilt, and a vdev whose interface left goes with it.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "vdev/netdev/netns.h"

namespace vrdma::vdev {

class NetlinkWatch {
 public:
  struct Changes {
    std::vector<int> changed;  // ifindexes whose link or addresses changed
    std::vector<int> removed;  // ifindexes deleted (or moved to another namespace)
    bool overflow = false;     // messages were lost: treat every interface as changed
  };

  // Watches the caller's namespace, or `netns` (netns.h).
  static absl::StatusOr<std::unique_ptr<NetlinkWatch>> Open(const Netns* netns = nullptr);
  ~NetlinkWatch();
  NetlinkWatch(const NetlinkWatch&) = delete;
  NetlinkWatch& operator=(const NetlinkWatch&) = delete;

  int fd() const { return fd_; }
  // Reads every pending message without blocking.
  Changes Drain();

 private:
  explicit NetlinkWatch(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace vrdma::vdev
