// NETLINK_RDMA sockets for programs under vrdma-run, answered by vrdmad for its devices
// (proto::Op::kRdmaNetlink, vdev/nldev/nldev.h): iproute2's `rdma` and anything else that
// speaks RDMA netlink see the vdevs as the kernel would show its own devices.
//
// socket(AF_NETLINK, SOCK_RAW or SOCK_DGRAM, NETLINK_RDMA) returns one end of an AF_UNIX
// datagram socketpair; the library keeps the other end. Each datagram the program sends
// goes to the daemon over a connection of the socket's own, and the answer's datagrams are
// queued on the pair, so poll, select, epoll and blocking reads work as on a netlink
// socket. What a datagram socketpair cannot say itself is done by the libc hooks
// (lib/libc_hooks.cc): the address (getsockname, the sender's in recvmsg and recvfrom,
// both struct sockaddr_nl, the kernel's port 0), bind with its port ID, the SOL_NETLINK
// options (NETLINK_CAP_ACK and NETLINK_EXT_ACK shape errors; the others are accepted),
// and refilling the pair when a dump holds more than its buffer.
//
// The kernel's own RDMA netlink (on a host whose kernel has RDMA) is what libibverbs'
// device scan sees (RealKernelScope); a program whose daemon cannot be reached gets the
// kernel's socket (or its error) too. Not offered: multicast groups (bind and
// NETLINK_ADD_MEMBERSHIP accept them, no events come), read() of a reply longer than the
// pair's buffer (recv, recvfrom and recvmsg refill it), and the daemons after the first
// when VRDMA_SOCKET names several.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "vdev/protocol/fd_bitmap.h"

namespace vrdma::provider {

class NetlinkSockets {
 public:
  constexpr NetlinkSockets() = default;
  ~NetlinkSockets();
  NetlinkSockets(const NetlinkSockets&) = delete;
  NetlinkSockets& operator=(const NetlinkSockets&) = delete;

  bool MayBe(int fd) const noexcept { return marked_.MayBe(fd); }

  // socket(AF_NETLINK, type, NETLINK_RDMA). nullopt: make the kernel's socket instead
  // (inside RealKernelScope, or no daemon to answer). Else the descriptor or -errno.
  std::optional<int> Open(int type);

  // The calls on a descriptor: nullopt when it is not one of ours (the caller calls
  // libc's function), else the result, -errno for an error.
  std::optional<int> Bind(int fd, const sockaddr* addr, socklen_t len);
  std::optional<int> GetSockName(int fd, sockaddr* addr, socklen_t* len);
  std::optional<int> SetSockOpt(int fd, int level, int name, const void* value, socklen_t len);
  std::optional<int> GetSockOpt(int fd, int level, int name, void* value, socklen_t* len);
  std::optional<ssize_t> SendMsg(int fd, const msghdr* msg, int flags);
  std::optional<ssize_t> RecvMsg(int fd, msghdr* msg, int flags);
  // close(fd): forgets it. The caller closes fd itself.
  void Forget(int fd);

 private:
  struct Socket;
  std::shared_ptr<Socket> Find(int fd);
  void Pump(Socket& s);   // with s.mutex held
  uint32_t NextPortId();  // with mutex_ held

  std::mutex mutex_;
  std::map<int, std::shared_ptr<Socket>>* sockets_ = nullptr;  // made by the first Open
  proto::FdBitmap marked_;
  int next_portid_ = -4096;  // after the process's PID, as netlink_autobind numbers them
  bool pid_taken_ = false;
};

// The process's table (constant-initialized, never destroyed: hooks run during exit).
NetlinkSockets& TheNetlinkSockets();

}  // namespace vrdma::provider
