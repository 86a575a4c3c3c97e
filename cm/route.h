// RDMA-CM addressing on RoCE: IP socket addresses as GIDs, the vdev (and GID entry) that
// owns an address, and the interface the daemon's routing table sends a destination
// through (what Linux's rdma_resolve_ip asks ip_route_output for). There is no SA on
// RoCE: a path is the two GIDs, the interface's MTU and the neighbour's MAC.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"
#include "driver/device.h"
#include "vdev/peer.h"
#include "vdev/registry.h"

namespace vrdma::cm {

using driver::wire::Gid;

// The GID of an AF_INET (IPv4-mapped, ::ffff:a.b.c.d) or AF_INET6 address; nullopt for
// another family.
std::optional<Gid> GidOfSockaddr(const sockaddr_storage& sa);
// The socket address of a GID (AF_INET for an IPv4-mapped one) with `port`.
sockaddr_storage SockaddrOfGid(const Gid& gid, uint16_t port);
bool IsIpv4Mapped(const Gid& gid);
uint16_t PortOf(const sockaddr_storage& sa);  // host order
void SetPort(sockaddr_storage* sa, uint16_t port);
bool IsAnyAddress(const sockaddr_storage& sa);      // 0.0.0.0 or ::
socklen_t SockaddrLen(const sockaddr_storage& sa);  // 0 for an unset family
// Checks a socket address from a client: AF_INET or AF_INET6, at least `len` bytes of it
// given. EAFNOSUPPORT for AF_IB and others, EINVAL for a short one.
int CheckSockaddr(const sockaddr_storage& sa, size_t len);

// A vdev's GID entry.
struct LocalAddress {
  vdev::Vdev* vdev = nullptr;
  uint32_t gid_index = 0;  // in the vdev's table (0..15)
};
// The vdev, among those `peer` may see, with `gid` in its table: its entry of the vdev's
// RoCE mode (RoCEv2 unless `dev set DEV roce_mode v1`) when it has one, else the other.
std::optional<LocalAddress> FindLocalAddress(const vdev::Registry& registry, const vdev::Peer& peer,
                                             const Gid& gid);
// The entry of `gid` in one vdev's table, as above; -1 when it has none.
int GidIndexIn(const vdev::Vdev& vdev, const Gid& gid);
// The entry a connection leaving by `vdev` takes when the route names no source address:
// the first of the address family (IPv4 or not), of the vdev's RoCE mode if it has one.
int RouteGidIndexIn(const vdev::Vdev& vdev, bool ipv4);

// The interface the routing table sends `dst` out of (RTM_GETROUTE), and the source
// address the kernel would pick: the daemon's table, or that of `netns` (a container's,
// where the asking client is). NotFound when there is no route.
struct RouteAnswer {
  int ifindex = 0;
  std::optional<Gid> prefsrc;
};
absl::StatusOr<RouteAnswer> LookupRoute(const Gid& dst, const vdev::Netns* netns = nullptr);

}  // namespace vrdma::cm
