// Wakes a sleeping engine when a RoCE frame reaches a kernel interface: an AF_PACKET
// socket whose classic BPF filter passes only RoCE (ethertype 0x8915, or UDP to port
// 4791 over IPv4/IPv6) while armed, and nothing while disarmed, so a busy engine pays
// no per-packet cost for it. Used for ports whose PMD has no receive interrupt.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace vrdma::vfio {

class WakeSocket {
 public:
  static absl::StatusOr<std::unique_ptr<WakeSocket>> Open(const std::string& iface);
  ~WakeSocket();
  WakeSocket(const WakeSocket&) = delete;
  WakeSocket& operator=(const WakeSocket&) = delete;

  int fd() const { return fd_; }
  // Armed: RoCE frames make fd() readable. Disarming also drains what is queued.
  void Arm(bool armed);

 private:
  explicit WakeSocket(int fd) : fd_(fd) {}
  void Drain();

  int fd_;
  bool armed_ = false;
};

}  // namespace vrdma::vfio
