// Keeps the kernel from answering RoCEv2 with ICMP port unreachable. On a port that
// shares its interface with the kernel (AF_PACKET, TAP), the kernel's stack also gets
// every RoCEv2 datagram addressed to it and, with no socket on UDP 4791, sends ICMP
// "port unreachable" back to the peer for each one (see ../shared/vectors). Holding the
// port with a socket whose filter drops everything makes the kernel deliver them to
// nowhere, silently, without queueing any.
#pragma once

#include <memory>

#include "absl/status/statusor.h"

namespace vrdma::vfio {

inline constexpr uint16_t kRoceV2UdpPort = 4791;  // IANA, RoCEv2 (IBTA A17.2)

class RoceUdpHold {
 public:
  // Binds UDP 4791 for IPv6 and IPv4 in the caller's network namespace. Already held
  // by someone else (another vrdmad, the kernel's rdma_rxe) is fine: nothing answers
  // with ICMP then either.
  static absl::StatusOr<std::unique_ptr<RoceUdpHold>> Open();
  ~RoceUdpHold();
  RoceUdpHold(const RoceUdpHold&) = delete;
  RoceUdpHold& operator=(const RoceUdpHold&) = delete;

  bool held_ipv4() const { return fd4_ >= 0; }
  bool held_ipv6() const { return fd6_ >= 0; }

 private:
  RoceUdpHold() = default;
  int fd4_ = -1;
  int fd6_ = -1;
};

}  // namespace vrdma::vfio
