#include "vdev/netdev/neighbour.h"

#include <arpa/inet.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"

namespace vrdma::vdev {
// Named rather than anonymous: NeighbourQuery::State, which has external linkage, holds
// an Rtnl and an IpAddr.
namespace neighbour_internal {

bool IsV4Mapped(const driver::wire::Gid& g) {
  static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(g.data(), kPrefix, 12) == 0;
}

struct IpAddr {
  int family = AF_INET6;
  uint8_t bytes[16] = {};
  size_t len() const { return family == AF_INET ? 4 : 16; }
};

IpAddr FromGid(const driver::wire::Gid& g) {
  IpAddr a;
  if (IsV4Mapped(g)) {
    a.family = AF_INET;
    std::memcpy(a.bytes, g.data() + 12, 4);
  } else {
    std::memcpy(a.bytes, g.data(), 16);
  }
  return a;
}

// One rtnetlink request and its single reply, on a socket of its own, made in `netns`
// (null: the caller's namespace).
class Rtnl {
 public:
  explicit Rtnl(const Netns* netns = nullptr) : fd_(Open(netns)) {
    timeval tv{1, 0};
    if (fd_ >= 0) setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~Rtnl() {
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return fd_ >= 0; }
  static int Open(const Netns* netns) {
    NetnsScope scope(netns);
    if (!scope.entered()) return -1;
    return socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  }
  // Sends `req` (a complete message) and returns the reply's length in buf_, or -errno.
  int Call(nlmsghdr* req) {
    req->nlmsg_seq = ++seq_;
    if (send(fd_, req, req->nlmsg_len, 0) < 0) return -errno;
    for (;;) {
      ssize_t n = recv(fd_, buf_, sizeof buf_, 0);
      if (n < 0) return -errno;
      auto* h = reinterpret_cast<nlmsghdr*>(buf_);
      if (!NLMSG_OK(h, static_cast<uint32_t>(n)) || h->nlmsg_seq != seq_) continue;
      if (h->nlmsg_type == NLMSG_ERROR) {
        auto* e = static_cast<nlmsgerr*>(NLMSG_DATA(h));
        return e->error ? e->error : -ENODATA;
      }
      return static_cast<int>(n);
    }
  }
  nlmsghdr* reply() { return reinterpret_cast<nlmsghdr*>(buf_); }

 private:
  int fd_;
  uint32_t seq_ = 0;
  alignas(nlmsghdr) char buf_[8192];
};

void AddAttr(nlmsghdr* h, uint16_t type, const void* data, size_t len) {
  auto* rta = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(h) + NLMSG_ALIGN(h->nlmsg_len));
  rta->rta_type = type;
  rta->rta_len = static_cast<uint16_t>(RTA_LENGTH(len));
  std::memcpy(RTA_DATA(rta), data, len);
  h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(rta->rta_len);
}

// The next hop towards `dst` out of `ifindex`: `dst` itself on a connected route, or
// the route's gateway.
absl::StatusOr<IpAddr> NextHop(Rtnl& nl, int ifindex, const IpAddr& dst) {
  alignas(nlmsghdr) char buf[256] = {};
  auto* req = reinterpret_cast<nlmsghdr*>(buf);
  req->nlmsg_len = NLMSG_LENGTH(sizeof(rtmsg));
  req->nlmsg_type = RTM_GETROUTE;
  req->nlmsg_flags = NLM_F_REQUEST;
  auto* rt = static_cast<rtmsg*>(NLMSG_DATA(req));
  rt->rtm_family = static_cast<uint8_t>(dst.family);
  rt->rtm_dst_len = static_cast<uint8_t>(dst.len() * 8);
  AddAttr(req, RTA_DST, dst.bytes, dst.len());
  AddAttr(req, RTA_OIF, &ifindex, sizeof ifindex);
  int n = nl.Call(req);
  if (n < 0) {
    return absl::NotFoundError(absl::StrCat("no route to the destination: ", strerror(-n)));
  }
  nlmsghdr* h = nl.reply();
  auto* r = static_cast<rtmsg*>(NLMSG_DATA(h));
  IpAddr hop = dst;
  int oif = 0;
  int len = static_cast<int>(RTM_PAYLOAD(h));
  for (rtattr* a = RTM_RTA(r); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
    if (a->rta_type == RTA_GATEWAY && RTA_PAYLOAD(a) == dst.len()) {
      std::memcpy(hop.bytes, RTA_DATA(a), dst.len());
    } else if (a->rta_type == RTA_OIF) {
      std::memcpy(&oif, RTA_DATA(a), sizeof oif);
    }
  }
  if (r->rtm_type != RTN_UNICAST && r->rtm_type != RTN_LOCAL) {
    return absl::NotFoundError("the destination is not reachable by unicast");
  }
  if (oif && oif != ifindex) {
    return absl::NotFoundError("the route to the destination leaves through another interface");
  }
  return hop;
}

// The neighbour entry's MAC once it is usable; nullopt while it is missing or
// incomplete; NotFound once the kernel has given up on it.
absl::StatusOr<std::optional<driver::wire::MacAddr>> LookupNeighbour(Rtnl& nl, int ifindex,
                                                                     const IpAddr& ip) {
  alignas(nlmsghdr) char buf[256] = {};
  auto* req = reinterpret_cast<nlmsghdr*>(buf);
  req->nlmsg_len = NLMSG_LENGTH(sizeof(ndmsg));
  req->nlmsg_type = RTM_GETNEIGH;
  req->nlmsg_flags = NLM_F_REQUEST;
  auto* ndm = static_cast<ndmsg*>(NLMSG_DATA(req));
  ndm->ndm_family = static_cast<uint8_t>(ip.family);
  ndm->ndm_ifindex = ifindex;
  AddAttr(req, NDA_DST, ip.bytes, ip.len());
  int n = nl.Call(req);
  if (n == -ENOENT) return std::optional<driver::wire::MacAddr>();
  if (n < 0) return absl::InternalError(absl::StrCat("neighbour lookup: ", strerror(-n)));
  nlmsghdr* h = nl.reply();
  auto* nd = static_cast<ndmsg*>(NLMSG_DATA(h));
  if (nd->ndm_state & NUD_FAILED) return absl::NotFoundError("the neighbour did not answer");
  constexpr uint16_t kUsable =
      NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP;
  if (!(nd->ndm_state & kUsable)) return std::optional<driver::wire::MacAddr>();
  int len = static_cast<int>(RTM_PAYLOAD(h));
  for (rtattr* a =
           reinterpret_cast<rtattr*>(reinterpret_cast<char*>(nd) + NLMSG_ALIGN(sizeof(ndmsg)));
       RTA_OK(a, len); a = RTA_NEXT(a, len)) {
    if (a->rta_type == NDA_LLADDR && RTA_PAYLOAD(a) == 6) {
      driver::wire::MacAddr mac;
      std::memcpy(mac.data(), RTA_DATA(a), 6);
      return std::optional<driver::wire::MacAddr>(mac);
    }
  }
  return std::optional<driver::wire::MacAddr>();
}

// Makes the kernel resolve `ip`: one ICMP echo request sent out of `ifindex` (the
// kernel resolves the next hop before it can send it). An echo, not rdma-core's UDP to
// the discard port, so the peer answers with an echo reply rather than ICMP port
// unreachable.
void Solicit(int ifindex, const IpAddr& ip) {
  bool v4 = ip.family == AF_INET;
  int fd = socket(ip.family, SOCK_RAW | SOCK_CLOEXEC,
                  v4 ? static_cast<int>(IPPROTO_ICMP) : static_cast<int>(IPPROTO_ICMPV6));
  if (fd < 0) return;
  char ifname[IF_NAMESIZE] = {};
  if (if_indextoname(static_cast<unsigned>(ifindex), ifname)) {
    setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, static_cast<socklen_t>(strlen(ifname)));
  }
  // Type, code, checksum, identifier, sequence (RFC 792; RFC 4443 4.1). The kernel
  // computes the ICMPv6 checksum; the ICMPv4 one is ours.
  uint8_t echo[8] = {static_cast<uint8_t>(v4 ? 8 : 128), 0, 0, 0, 0x76, 0x72, 0, 1};
  if (v4) {
    uint32_t sum = 0;
    for (int i = 0; i < 8; i += 2) sum += static_cast<uint32_t>(echo[i] << 8 | echo[i + 1]);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    echo[2] = static_cast<uint8_t>(~sum >> 8);
    echo[3] = static_cast<uint8_t>(~sum);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    std::memcpy(&a.sin_addr, ip.bytes, 4);
    sendto(fd, echo, sizeof echo, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&a), sizeof a);
  } else {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    std::memcpy(&a.sin6_addr, ip.bytes, 16);
    a.sin6_scope_id = static_cast<uint32_t>(ifindex);
    sendto(fd, echo, sizeof echo, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  close(fd);
}

}  // namespace neighbour_internal
using namespace neighbour_internal;

std::optional<driver::wire::MacAddr> MacFromGid(const driver::wire::Gid& g) {
  if (IsV4Mapped(g) && (g[12] & 0xf0) == 0xe0) {
    return driver::wire::MacAddr{0x01,  0x00, 0x5e, static_cast<uint8_t>(g[13] & 0x7f),
                                 g[14], g[15]};
  }
  if (g[0] == 0xff) return driver::wire::MacAddr{0x33, 0x33, g[12], g[13], g[14], g[15]};
  // fe80::/64 with a modified EUI-64 interface identifier (ff:fe in the middle).
  if (g[0] == 0xfe && g[1] == 0x80 && g[11] == 0xff && g[12] == 0xfe) {
    return driver::wire::MacAddr{static_cast<uint8_t>(g[8] ^ 2), g[9], g[10], g[13], g[14], g[15]};
  }
  return std::nullopt;
}

// Its rtnetlink socket is made in the interface's namespace (and stays there); the ICMP
// socket of a solicitation is made there too.
struct NeighbourQuery::State {
  explicit State(std::shared_ptr<const Netns> ns) : netns(std::move(ns)) {}
  std::shared_ptr<const Netns> netns;
  Rtnl nl{netns.get()};
  int ifindex = 0;
  IpAddr hop;
};

NeighbourQuery::NeighbourQuery(std::unique_ptr<State> state) : state_(std::move(state)) {}
NeighbourQuery::~NeighbourQuery() = default;

absl::StatusOr<std::unique_ptr<NeighbourQuery>> NeighbourQuery::Start(
    int ifindex, const driver::wire::Gid& dgid, std::chrono::milliseconds timeout, uint64_t now_ns,
    std::shared_ptr<const Netns> netns) {
  auto state = std::make_unique<State>(std::move(netns));
  if (!state->nl.ok()) return absl::InternalError(absl::StrCat("rtnetlink: ", strerror(errno)));
  absl::StatusOr<IpAddr> hop = NextHop(state->nl, ifindex, FromGid(dgid));
  if (!hop.ok()) return hop.status();
  state->ifindex = ifindex;
  state->hop = *hop;
  std::unique_ptr<NeighbourQuery> q(new NeighbourQuery(std::move(state)));
  q->next_poll_ns_ = now_ns;
  q->deadline_ns_ =
      now_ns +
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count());
  return q;
}

std::optional<absl::StatusOr<driver::wire::MacAddr>> NeighbourQuery::Poll(uint64_t now_ns) {
  if (now_ns < next_poll_ns_) return std::nullopt;
  State& st = *state_;
  absl::StatusOr<std::optional<driver::wire::MacAddr>> mac =
      LookupNeighbour(st.nl, st.ifindex, st.hop);
  if (mac.ok() && mac->has_value()) return absl::StatusOr<driver::wire::MacAddr>(**mac);
  if (!mac.ok() && !absl::IsNotFound(mac.status()))
    return absl::StatusOr<driver::wire::MacAddr>(mac.status());
  // Missing, incomplete, or failed (left from an earlier attempt, or the kernel gave up on
  // ours): as ib_core, ask (again) and keep looking until the time runs out.
  if (!solicited_ || !mac.ok()) {
    NetnsScope scope(st.netns.get());
    if (scope.entered()) Solicit(st.ifindex, st.hop);
    solicited_ = true;
  }
  if (now_ns >= deadline_ns_) {
    return absl::StatusOr<driver::wire::MacAddr>(
        absl::DeadlineExceededError("the neighbour did not answer in time"));
  }
  next_poll_ns_ =
      now_ns + static_cast<uint64_t>(
                   std::chrono::duration_cast<std::chrono::nanoseconds>(kPollInterval).count());
  return std::nullopt;
}

absl::StatusOr<driver::wire::MacAddr> ResolveNeighbour(int ifindex, const driver::wire::Gid& dgid,
                                                       std::chrono::milliseconds timeout,
                                                       const std::function<void()>& wait) {
  auto now = [] {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
  };
  absl::StatusOr<std::unique_ptr<NeighbourQuery>> q =
      NeighbourQuery::Start(ifindex, dgid, timeout, now());
  if (!q.ok()) return q.status();
  for (;;) {
    if (auto done = (*q)->Poll(now())) return *std::move(done);
    if (wait) {
      wait();
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
}

}  // namespace vrdma::vdev
