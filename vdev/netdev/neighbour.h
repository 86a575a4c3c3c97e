// Address resolution for RoCE destinations, as a NIC driver does it for an AH: the
// destination GID's IP address, or the gateway the kernel routes it through, looked
// up in the interface's neighbour table. A missing entry is resolved through the
// kernel (an ICMP echo request makes it send ARP / neighbour solicitation),
// then looked up again until it resolves or the time runs out.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "driver/device.h"
#include "vdev/netdev/netns.h"

namespace vrdma::vdev {

// Multicast GIDs map to multicast MACs (RFC 1112 6.4, RFC 2464 7); link-local GIDs
// with a modified EUI-64 identifier carry their MAC. Otherwise nullopt.
std::optional<driver::wire::MacAddr> MacFromGid(const driver::wire::Gid& gid);

// One resolution of `dgid` (an IPv4-mapped or IPv6 GID) on interface `ifindex` of the
// caller's network namespace, taken one step at a time so that the daemon's loop never
// waits for it: Start looks the route up, Poll looks in the neighbour table (one
// rtnetlink request, answered at once) and, the first time the entry is missing, makes the
// kernel solicit it; later polls look again, at most every kPollInterval, until it
// resolves or the time runs out. A port whose kernel interface is vrdmad's own (the
// exception path) carries the solicitation meanwhile, the loop running as usual.
//
// Failures are those of ib_core's address resolution (rdma_resolve_ip), which a kernel
// provider's ibv_create_ah and RTR transition use: NotFound when there is no route or it
// leaves through another interface (EHOSTUNREACH at the verbs edge); DeadlineExceeded when
// the neighbour has not answered in time, whether its entry is still incomplete or the
// kernel has marked it failed (ETIMEDOUT).
class NeighbourQuery {
 public:
  static constexpr std::chrono::milliseconds kPollInterval{5};

  // `netns`: the interface's namespace when not the caller's (netns.h).
  static absl::StatusOr<std::unique_ptr<NeighbourQuery>> Start(
      int ifindex, const driver::wire::Gid& dgid, std::chrono::milliseconds timeout,
      uint64_t now_ns, std::shared_ptr<const Netns> netns = nullptr);
  ~NeighbourQuery();
  NeighbourQuery(const NeighbourQuery&) = delete;
  NeighbourQuery& operator=(const NeighbourQuery&) = delete;

  // At `now_ns` (CLOCK_MONOTONIC): nullopt while unresolved (and before the next look is
  // due, without a system call), else the MAC or the failure. Done once it answers.
  std::optional<absl::StatusOr<driver::wire::MacAddr>> Poll(uint64_t now_ns);
  uint64_t next_poll_ns() const { return next_poll_ns_; }

 private:
  struct State;
  explicit NeighbourQuery(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
  uint64_t next_poll_ns_ = 0;
  uint64_t deadline_ns_ = 0;
  bool solicited_ = false;
};

// The same, start to end: polls every 5 ms, calling `wait` between polls (or sleeping
// when there is none). For callers outside the daemon's loop (tests, tools).
absl::StatusOr<driver::wire::MacAddr> ResolveNeighbour(int ifindex, const driver::wire::Gid& dgid,
                                                       std::chrono::milliseconds timeout,
                                                       const std::function<void()>& wait = {});

}  // namespace vrdma::vdev
