// RDMA netlink's device interface (NETLINK_RDMA, client RDMA_NL_NLDEV) for the devices of
// this daemon, answered as the kernel's drivers/infiniband/core/nldev.c answers it: what
// iproute2's `rdma dev|link|res|statistic|system show` ask. vrdma-run's libvrdma gives a
// process's NETLINK_RDMA sockets to the daemon (proto::Op::kRdmaNetlink): each datagram the
// process sends comes here, and the datagrams returned are what the process then reads.
//
// Only what the requester may see is answered (AdminContext's rules, as for `vrdmactl`):
// the devices of its network namespace; the resources of its own processes, or every
// process's for the administrator; and of those, only processes its PID namespace can
// see, under the PIDs it knows them by (pid_view.h). Keys (lkey, rkey) only to the
// administrator, where the kernel asks for CAP_NET_ADMIN. Commands that change devices
// (SET, NEWLINK, DELLINK, STAT_SET, ...) are refused: vrdmactl changes vdevs.
//
// The request is the client's, so untrusted: every length is checked; a malformed message
// is answered with NLMSG_ERROR EINVAL, as the kernel's netlink_rcv_skb does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "vdev/admin.h"
#include "vdev/peer.h"

namespace vrdma::vdev::nldev {

// The largest datagram: NLMSG_GOODSIZE with 4 KiB pages, what a kernel dump fills, so a
// reader with libmnl's MNL_SOCKET_BUFFER_SIZE (4096) never truncates one.
inline constexpr size_t kDatagramSize = 3776;
// Device indexes: a vdev's is its id (`vrdmactl dev show`'s "N: name"); a pdev's is
// kPdevIndexBase plus its place in vrdmad's --pdev list.
inline constexpr uint32_t kPdevIndexBase = 1u << 30;

struct Requester {
  uint32_t portid = 0;         // the socket's netlink port ID, set in every reply's nlmsg_pid
  bool cap_ack = false;        // NETLINK_CAP_ACK: errors do not echo the request's payload
  bool ext_ack = false;        // NETLINK_EXT_ACK: errors carry a message (NLMSGERR_ATTR_MSG)
  const Peer* peer = nullptr;  // who holds the socket
};

// Answers every message in `datagram`. Returns the reply datagrams in order.
std::vector<std::vector<uint8_t>> Answer(const AdminContext& ctx, const Requester& who,
                                         std::span<const uint8_t> datagram);

}  // namespace vrdma::vdev::nldev
