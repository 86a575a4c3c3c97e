#include "vdev/netdev/netlink_watch.h"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace vrdma::vdev {

absl::StatusOr<std::unique_ptr<NetlinkWatch>> NetlinkWatch::Open(const Netns* netns) {
  int fd = -1;
  {
    NetnsScope scope(netns);
    if (!scope.entered()) return absl::ErrnoToStatus(errno, "entering the namespace to watch");
    fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
  }
  if (fd < 0) return absl::ErrnoToStatus(errno, "netlink socket");
  sockaddr_nl addr{};
  addr.nl_family = AF_NETLINK;
  addr.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    close(fd);
    return absl::ErrnoToStatus(err, "netlink bind");
  }
  return std::unique_ptr<NetlinkWatch>(new NetlinkWatch(fd));
}

NetlinkWatch::~NetlinkWatch() { close(fd_); }

NetlinkWatch::Changes NetlinkWatch::Drain() {
  Changes out;
  alignas(nlmsghdr) char buf[16384];
  auto note = [](std::vector<int>* v, int ifindex) {
    if (std::find(v->begin(), v->end(), ifindex) == v->end()) v->push_back(ifindex);
  };
  for (;;) {
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {
        out.overflow = true;
        continue;
      }
      break;  // EAGAIN: drained
    }
    // NLMSG_OK/NLMSG_NEXT, spelled out without their signed/unsigned comparisons.
    size_t left = static_cast<size_t>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf);
         left >= sizeof(nlmsghdr) && h->nlmsg_len >= sizeof(nlmsghdr) && h->nlmsg_len <= left;
         left -= std::min<size_t>(left, NLMSG_ALIGN(h->nlmsg_len)),
               h = reinterpret_cast<nlmsghdr*>(reinterpret_cast<char*>(h) +
                                               NLMSG_ALIGN(h->nlmsg_len))) {
      switch (h->nlmsg_type) {
        case RTM_NEWLINK:
        case RTM_DELLINK: {
          if (h->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) break;
          auto* ifi = static_cast<ifinfomsg*>(NLMSG_DATA(h));
          note(h->nlmsg_type == RTM_DELLINK ? &out.removed : &out.changed, ifi->ifi_index);
          break;
        }
        case RTM_NEWADDR:
        case RTM_DELADDR: {
          if (h->nlmsg_len < NLMSG_LENGTH(sizeof(ifaddrmsg))) break;
          auto* ifa = static_cast<ifaddrmsg*>(NLMSG_DATA(h));
          note(&out.changed, static_cast<int>(ifa->ifa_index));
          break;
        }
        default:
          break;
      }
    }
  }
  return out;
}

}  // namespace vrdma::vdev
