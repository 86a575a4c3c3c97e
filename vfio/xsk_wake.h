// Wakes a sleeping engine when frames reach an AF_XDP port. DPDK 22.11's net_af_xdp has
// no receive interrupt, but its XDP socket can serve as one: poll() on an XSK reports
// EPOLLIN while the socket's RX ring holds descriptors (the kernel's xsk_poll), and the
// kernel wakes the socket's waiters when it fills that ring (sk_data_ready, from
// xsk_flush). Level-triggered on the ring itself, so there is nothing to arm or drain:
// the PMD's next receive burst empties it. The PMD does not hand its socket out, so the
// port takes its own descriptor of the AF_XDP socket its queue setup made.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"

namespace vrdma::vfio {

// The descriptors of this process's AF_XDP sockets (SO_DOMAIN), in increasing order.
std::vector<int> AfXdpSockets();

class XskWake {
 public:
  // The one AF_XDP socket of this process that is not in `before` (AfXdpSockets() taken
  // before the port's queues were set up), duplicated. NotFound or FailedPrecondition
  // when there is none or more than one.
  static absl::StatusOr<std::unique_ptr<XskWake>> Adopt(const std::vector<int>& before);
  ~XskWake();
  XskWake(const XskWake&) = delete;
  XskWake& operator=(const XskWake&) = delete;

  int fd() const { return fd_; }

 private:
  explicit XskWake(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace vrdma::vfio
