#include "vfio/roce_udp_hold.h"

#include <arpa/inet.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"

namespace vrdma::vfio {
namespace {

// Returns the bound socket, -1 when someone else holds the port or the family is off,
// or -errno for any other failure.
int BindDropAll(int family) {
  int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return errno == EAFNOSUPPORT ? -1 : -errno;
  sock_filter drop{BPF_RET | BPF_K, 0, 0, 0};
  sock_fprog prog{1, &drop};
  int one = 1, small = 1;
  setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  int rc;
  if (family == AF_INET6) {
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(kRoceV2UdpPort);
    a.sin6_addr = in6addr_any;
    rc = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(kRoceV2UdpPort);
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    rc = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  if (rc == 0) return fd;
  int err = errno;
  close(fd);
  return err == EADDRINUSE || err == EADDRNOTAVAIL ? -1 : -err;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RoceUdpHold>> RoceUdpHold::Open() {
  auto h = std::unique_ptr<RoceUdpHold>(new RoceUdpHold());
  int fd4 = BindDropAll(AF_INET);
  if (fd4 < -1) return absl::ErrnoToStatus(-fd4, "holding UDP port 4791 (IPv4)");
  h->fd4_ = fd4;
  int fd6 = BindDropAll(AF_INET6);
  if (fd6 < -1) return absl::ErrnoToStatus(-fd6, "holding UDP port 4791 (IPv6)");
  h->fd6_ = fd6;
  return h;
}

RoceUdpHold::~RoceUdpHold() {
  if (fd4_ >= 0) close(fd4_);
  if (fd6_ >= 0) close(fd6_);
}

}  // namespace vrdma::vfio
