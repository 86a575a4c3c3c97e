#include "cm/route.h"

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "vdev/access.h"

namespace vrdma::cm {

bool IsIpv4Mapped(const Gid& gid) {
  for (int i = 0; i < 10; ++i) {
    if (gid[i] != 0) return false;
  }
  return gid[10] == 0xff && gid[11] == 0xff;
}

std::optional<Gid> GidOfSockaddr(const sockaddr_storage& sa) {
  Gid gid{};
  if (sa.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&sa);
    gid[10] = gid[11] = 0xff;
    std::memcpy(&gid[12], &in->sin_addr, 4);
    return gid;
  }
  if (sa.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&sa);
    std::memcpy(gid.data(), &in6->sin6_addr, 16);
    return gid;
  }
  return std::nullopt;
}

sockaddr_storage SockaddrOfGid(const Gid& gid, uint16_t port) {
  sockaddr_storage sa{};
  if (IsIpv4Mapped(gid)) {
    auto* in = reinterpret_cast<sockaddr_in*>(&sa);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    std::memcpy(&in->sin_addr, &gid[12], 4);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&sa);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    std::memcpy(&in6->sin6_addr, gid.data(), 16);
  }
  return sa;
}

uint16_t PortOf(const sockaddr_storage& sa) {
  if (sa.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&sa)->sin_port);
  if (sa.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&sa)->sin6_port);
  return 0;
}

void SetPort(sockaddr_storage* sa, uint16_t port) {
  if (sa->ss_family == AF_INET) reinterpret_cast<sockaddr_in*>(sa)->sin_port = htons(port);
  if (sa->ss_family == AF_INET6) reinterpret_cast<sockaddr_in6*>(sa)->sin6_port = htons(port);
}

bool IsAnyAddress(const sockaddr_storage& sa) {
  std::optional<Gid> gid = GidOfSockaddr(sa);
  if (!gid) return false;
  if (sa.ss_family == AF_INET)
    return gid->at(12) == 0 && gid->at(13) == 0 && gid->at(14) == 0 && gid->at(15) == 0;
  for (uint8_t b : *gid) {
    if (b) return false;
  }
  return true;
}

socklen_t SockaddrLen(const sockaddr_storage& sa) {
  if (sa.ss_family == AF_INET) return sizeof(sockaddr_in);
  if (sa.ss_family == AF_INET6) return sizeof(sockaddr_in6);
  return 0;
}

int CheckSockaddr(const sockaddr_storage& sa, size_t len) {
  if (len < sizeof(sa_family_t)) return EINVAL;
  if (sa.ss_family != AF_INET && sa.ss_family != AF_INET6) return EAFNOSUPPORT;
  return len < SockaddrLen(sa) ? EINVAL : 0;
}

namespace {

// The first valid entry `matches` accepts, of the vdev's RoCE mode if one is; -1: none.
template <typename Match>
int PreferredEntry(const vdev::Vdev& vdev, Match matches) {
  int other = -1;
  for (size_t i = 0; i < vdev.gids.size(); ++i) {
    const driver::GidEntry& e = vdev.gids[i];
    if (!e.valid || !matches(e)) continue;
    if ((e.type == driver::wire::NetworkType::kRoceV1) == vdev.cm_roce_v1) {
      return static_cast<int>(i);
    }
    if (other < 0) other = static_cast<int>(i);
  }
  return other;
}

}  // namespace

int GidIndexIn(const vdev::Vdev& vdev, const Gid& gid) {
  return PreferredEntry(vdev, [&](const driver::GidEntry& e) { return e.gid == gid; });
}

int RouteGidIndexIn(const vdev::Vdev& vdev, bool ipv4) {
  return PreferredEntry(vdev,
                        [&](const driver::GidEntry& e) { return IsIpv4Mapped(e.gid) == ipv4; });
}

std::optional<LocalAddress> FindLocalAddress(const vdev::Registry& registry, const vdev::Peer& peer,
                                             const Gid& gid) {
  for (const auto& [name, v] : registry.vdevs()) {
    if (!vdev::VisibleTo(v->netns, peer, registry.netns_mode())) continue;
    int index = GidIndexIn(*v, gid);
    if (index >= 0) return LocalAddress{v.get(), static_cast<uint32_t>(index)};
  }
  return std::nullopt;
}

namespace {

// Appends one rtattr to a netlink message held in `buf`.
void AddAttr(nlmsghdr* msg, size_t cap, uint16_t type, const void* data, size_t len) {
  size_t at = NLMSG_ALIGN(msg->nlmsg_len);
  if (at + RTA_SPACE(len) > cap) return;
  auto* rta = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(msg) + at);
  rta->rta_type = type;
  rta->rta_len = static_cast<uint16_t>(RTA_LENGTH(len));
  std::memcpy(RTA_DATA(rta), data, len);
  msg->nlmsg_len = static_cast<uint32_t>(at + RTA_SPACE(len));
}

}  // namespace

absl::StatusOr<RouteAnswer> LookupRoute(const Gid& dst, const vdev::Netns* netns) {
  const bool v4 = IsIpv4Mapped(dst);
  int fd = -1;
  {
    vdev::NetnsScope scope(netns);
    if (scope.entered()) fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  }
  if (fd < 0) return absl::InternalError(absl::StrCat("netlink socket: ", strerror(errno)));
  alignas(nlmsghdr) char req[256] = {};
  auto* msg = reinterpret_cast<nlmsghdr*>(req);
  msg->nlmsg_len = NLMSG_LENGTH(sizeof(rtmsg));
  msg->nlmsg_type = RTM_GETROUTE;
  msg->nlmsg_flags = NLM_F_REQUEST;
  msg->nlmsg_seq = 1;
  auto* rtm = static_cast<rtmsg*>(NLMSG_DATA(msg));
  rtm->rtm_family = v4 ? AF_INET : AF_INET6;
  rtm->rtm_dst_len = v4 ? 32 : 128;
  AddAttr(msg, sizeof req, RTA_DST, v4 ? &dst[12] : dst.data(), v4 ? 4 : 16);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, req, msg->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
    int err = errno;
    close(fd);
    return absl::InternalError(absl::StrCat("RTM_GETROUTE: ", strerror(err)));
  }
  // The kernel answers a route request at once, from its own tables (no client, no
  // device, can make it wait).
  alignas(nlmsghdr) char answer[4096];
  ssize_t n = recv(fd, answer, sizeof answer, 0);
  int err = errno;
  close(fd);
  if (n < 0) return absl::InternalError(absl::StrCat("RTM_GETROUTE: ", strerror(err)));
  for (auto* h = reinterpret_cast<nlmsghdr*>(answer); NLMSG_OK(h, static_cast<size_t>(n));
       h = NLMSG_NEXT(h, n)) {
    if (h->nlmsg_type == NLMSG_ERROR) {
      const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
      return absl::NotFoundError(absl::StrCat("no route: ", strerror(-e->error)));
    }
    if (h->nlmsg_type != RTM_NEWROUTE) continue;
    const auto* r = static_cast<const rtmsg*>(NLMSG_DATA(h));
    RouteAnswer out;
    int len = static_cast<int>(RTM_PAYLOAD(h));
    for (const rtattr* a = RTM_RTA(r); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
      if (a->rta_type == RTA_OIF && RTA_PAYLOAD(a) >= 4) {
        std::memcpy(&out.ifindex, RTA_DATA(a), 4);
      } else if (a->rta_type == RTA_PREFSRC && RTA_PAYLOAD(a) == (v4 ? 4u : 16u)) {
        Gid g{};
        if (v4) {
          g[10] = g[11] = 0xff;
          std::memcpy(&g[12], RTA_DATA(a), 4);
        } else {
          std::memcpy(g.data(), RTA_DATA(a), 16);
        }
        out.prefsrc = g;
      }
    }
    if (out.ifindex == 0) return absl::NotFoundError("no route: no output interface");
    return out;
  }
  return absl::NotFoundError("no route");
}

}  // namespace vrdma::cm
