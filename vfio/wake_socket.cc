#include "vfio/wake_socket.h"

#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"

namespace vrdma::vfio {
namespace {

// Classic BPF over an untagged Ethernet frame (the kernel hands VLAN tags to packet
// sockets out of band). Accepts RoCEv1 (ethertype 0x8915) and RoCEv2 (UDP destination
// port 4791, IANA) over IPv4 (first fragments only) and IPv6.
constexpr sock_filter kRoceFilter[] = {
    {BPF_LD | BPF_H | BPF_ABS, 0, 0, 12},          // 0: A = ethertype
    {BPF_JMP | BPF_JEQ | BPF_K, 14, 0, 0x8915},    // 1: RoCEv1 -> accept
    {BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 0x0800},     // 2: IPv4 -> 4
    {BPF_JMP | BPF_JEQ | BPF_K, 7, 11, 0x86dd},    // 3: IPv6 -> 11, else drop
    {BPF_LD | BPF_B | BPF_ABS, 0, 0, 23},          // 4: A = IPv4 protocol
    {BPF_JMP | BPF_JEQ | BPF_K, 0, 9, 17},         // 5: UDP, else drop
    {BPF_LD | BPF_H | BPF_ABS, 0, 0, 20},          // 6: A = flags/fragment offset
    {BPF_JMP | BPF_JSET | BPF_K, 7, 0, 0x1fff},    // 7: later fragment -> drop
    {BPF_LDX | BPF_B | BPF_MSH, 0, 0, 14},         // 8: X = IPv4 header length
    {BPF_LD | BPF_H | BPF_IND, 0, 0, 16},          // 9: A = UDP destination port
    {BPF_JMP | BPF_JEQ | BPF_K, 5, 4, 4791},       // 10: accept / drop
    {BPF_LD | BPF_B | BPF_ABS, 0, 0, 20},          // 11: A = IPv6 next header
    {BPF_JMP | BPF_JEQ | BPF_K, 0, 2, 17},         // 12: UDP, else drop
    {BPF_LD | BPF_H | BPF_ABS, 0, 0, 56},          // 13: A = UDP destination port
    {BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 4791},       // 14: accept / drop
    {BPF_RET | BPF_K, 0, 0, 0},                    // 15: drop
    {BPF_RET | BPF_K, 0, 0, 64},                   // 16: accept (64 bytes are plenty)
};
constexpr sock_filter kDropAll[] = {{BPF_RET | BPF_K, 0, 0, 0}};

int SetFilter(int fd, const sock_filter* code, size_t n) {
  sock_fprog prog{static_cast<unsigned short>(n), const_cast<sock_filter*>(code)};
  return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog);
}

}  // namespace

absl::StatusOr<std::unique_ptr<WakeSocket>> WakeSocket::Open(const std::string& iface) {
  unsigned ifindex = if_nametoindex(iface.c_str());
  if (ifindex == 0) return absl::NotFoundError(absl::StrCat("no interface named ", iface));
  // Protocol 0: the socket hears nothing until it is bound, after the filter is in place.
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "AF_PACKET socket for the wake-up");
  int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  sockaddr_ll ll{};
  ll.sll_family = AF_PACKET;
  ll.sll_protocol = htons(ETH_P_ALL);
  ll.sll_ifindex = static_cast<int>(ifindex);
  if (SetFilter(fd, kDropAll, 1) != 0 || bind(fd, reinterpret_cast<sockaddr*>(&ll), sizeof ll) != 0) {
    int err = errno;
    close(fd);
    return absl::ErrnoToStatus(err, absl::StrCat("wake-up socket on ", iface));
  }
  auto w = std::unique_ptr<WakeSocket>(new WakeSocket(fd));
  w->Drain();
  return w;
}

WakeSocket::~WakeSocket() { close(fd_); }

void WakeSocket::Arm(bool armed) {
  if (armed == armed_) return;
  armed_ = armed;
  if (armed) {
    SetFilter(fd_, kRoceFilter, sizeof kRoceFilter / sizeof kRoceFilter[0]);
  } else {
    SetFilter(fd_, kDropAll, 1);
    Drain();
  }
}

void WakeSocket::Drain() {
  char byte;
  while (recv(fd_, &byte, 1, MSG_DONTWAIT | MSG_TRUNC) >= 0) {
  }
}

}  // namespace vrdma::vfio
