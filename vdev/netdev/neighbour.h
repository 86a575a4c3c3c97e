// Address resolution for RoCE destinations, as a NIC driver does it for an AH: the
// destination GID's IP address, or the gateway the kernel routes it through, looked
// up in the interface's neighbour table. A missing entry is resolved through the
// kernel (an ICMP echo request makes it send ARP / neighbour solicitation),
// then looked up again until it resolves, fails or the time runs out.
#pragma once

#include <chrono>
#include <functional>
#include <optional>

#include "absl/status/statusor.h"
#include "driver/device.h"

namespace vrdma::vdev {

// Multicast GIDs map to multicast MACs (RFC 1112 6.4, RFC 2464 7); link-local GIDs
// with a modified EUI-64 identifier carry their MAC. Otherwise nullopt.
std::optional<driver::wire::MacAddr> MacFromGid(const driver::wire::Gid& gid);

// Resolves `dgid` (an IPv4-mapped or IPv6 GID) on interface `ifindex` of the caller's
// network namespace. NotFound: no route or the neighbour did not answer
// (EHOSTUNREACH at the verbs edge); DeadlineExceeded: still unresolved after `timeout`.
// While waiting it calls `wait` (which must return within a few milliseconds), or
// sleeps when there is none: the daemon keeps its ports moving there, and a port whose
// kernel interface is vrdmad's own (the exception path) carries the solicitation.
absl::StatusOr<driver::wire::MacAddr> ResolveNeighbour(int ifindex, const driver::wire::Gid& dgid,
                                                       std::chrono::milliseconds timeout,
                                                       const std::function<void()>& wait = {});

}  // namespace vrdma::vdev
