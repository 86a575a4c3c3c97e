#include "vdev/provider/rdma_netlink_socket.h"

#include <fcntl.h>
#include <linux/netlink.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <vector>

#include "vdev/protocol/channel.h"
#include "vdev/protocol/protocol.h"
#include "vdev/provider/sysfs_view.h"

namespace vrdma::provider {

struct NetlinkSockets::Socket {
  ~Socket() {
    if (peer >= 0) close(peer);
    if (daemon >= 0) close(daemon);
  }
  std::mutex mutex;
  int type = SOCK_RAW;
  int peer = -1;        // the library's end of the pair: answers are sent from it
  int daemon = -1;      // this socket's connection to vrdmad
  uint32_t portid = 0;  // 0 until bound
  bool cap_ack = false;
  bool ext_ack = false;
  std::deque<std::vector<uint8_t>> pending;  // answers not yet on the pair
};

namespace {

union Holder {
  constexpr Holder() : sockets() {}
  ~Holder() {}
  NetlinkSockets sockets;
};
constinit Holder g_holder;

sockaddr_nl KernelAddress() {
  sockaddr_nl a{};
  a.nl_family = AF_NETLINK;
  return a;  // port 0: the kernel, which the daemon stands for
}

void CopyAddress(const sockaddr_nl& a, void* out, socklen_t* len) {
  if (!out || !len) return;
  std::memcpy(out, &a, std::min<size_t>(*len, sizeof a));
  *len = sizeof a;
}

}  // namespace

NetlinkSockets& TheNetlinkSockets() { return g_holder.sockets; }

NetlinkSockets::~NetlinkSockets() { delete sockets_; }

std::optional<int> NetlinkSockets::Open(int type) {
  if (RealKernelScope::Active()) return std::nullopt;
  const int base = type & ~(SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (base != SOCK_RAW && base != SOCK_DGRAM) return -ESOCKTNOSUPPORT;
  int daemon = proto::ConnectToDaemon();
  if (daemon < 0) return std::nullopt;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_DGRAM | (type & (SOCK_CLOEXEC | SOCK_NONBLOCK)), 0, sv) != 0) {
    int err = errno;
    close(daemon);
    return -err;
  }
  fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
  fcntl(sv[1], F_SETFD, FD_CLOEXEC);
  auto s = std::make_shared<Socket>();
  s->type = base;
  s->peer = sv[1];
  s->daemon = daemon;
  std::lock_guard<std::mutex> lock(mutex_);
  if (!sockets_) sockets_ = new std::map<int, std::shared_ptr<Socket>>;
  (*sockets_)[sv[0]] = std::move(s);
  marked_.Mark(sv[0], true);
  return sv[0];
}

std::shared_ptr<NetlinkSockets::Socket> NetlinkSockets::Find(int fd) {
  if (!MayBe(fd)) return nullptr;
  std::lock_guard<std::mutex> lock(mutex_);
  if (!sockets_) return nullptr;
  auto it = sockets_->find(fd);
  return it == sockets_->end() ? nullptr : it->second;
}

void NetlinkSockets::Forget(int fd) {
  std::shared_ptr<Socket> s;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!sockets_) return;
    auto it = sockets_->find(fd);
    if (it == sockets_->end()) return;
    s = std::move(it->second);
    sockets_->erase(it);
    marked_.Mark(fd, false);
  }
  int saved = errno;  // closing our ends leaves errno as close(fd) will set it
  s.reset();
  errno = saved;
}

// netlink_autobind: the process's PID first, then numbers from -4096 down.
uint32_t NetlinkSockets::NextPortId() {
  uint32_t id =
      pid_taken_ ? static_cast<uint32_t>(next_portid_--) : static_cast<uint32_t>(getpid());
  pid_taken_ = true;
  return id;
}

// netlink_bind: port 0 asks for one (netlink_autobind: the PID first, then numbers from
// -4096 down); a port of another of this process's sockets is taken.
std::optional<int> NetlinkSockets::Bind(int fd, const sockaddr* addr, socklen_t len) {
  std::shared_ptr<Socket> s = Find(fd);
  if (!s) return std::nullopt;
  if (!addr || len < sizeof(sockaddr_nl)) return -EINVAL;
  sockaddr_nl a;
  std::memcpy(&a, addr, sizeof a);
  if (a.nl_family != AF_NETLINK) return -EINVAL;
  std::lock_guard<std::mutex> lock(mutex_);
  if (s->portid) return a.nl_pid == 0 || a.nl_pid == s->portid ? 0 : -EINVAL;
  uint32_t want = a.nl_pid;
  if (want == 0) {
    want = NextPortId();
  } else {
    for (const auto& [other_fd, other] : *sockets_) {
      if (other->portid == want) return -EADDRINUSE;
    }
    if (want == static_cast<uint32_t>(getpid())) pid_taken_ = true;
  }
  s->portid = want;
  return 0;
}

std::optional<int> NetlinkSockets::GetSockName(int fd, sockaddr* addr, socklen_t* len) {
  std::shared_ptr<Socket> s = Find(fd);
  if (!s) return std::nullopt;
  if (!addr || !len) return -EFAULT;
  sockaddr_nl a = KernelAddress();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    a.nl_pid = s->portid;
  }
  CopyAddress(a, addr, len);
  return 0;
}

std::optional<int> NetlinkSockets::SetSockOpt(int fd, int level, int name, const void* value,
                                              socklen_t len) {
  std::shared_ptr<Socket> s = Find(fd);
  if (!s) return std::nullopt;
  if (level == SOL_SOCKET) return std::nullopt;  // buffers and the like: the pair's own
  if (level != SOL_NETLINK) return -ENOPROTOOPT;
  if (!value || len < static_cast<socklen_t>(sizeof(int))) return -EINVAL;
  int v;
  std::memcpy(&v, value, sizeof v);
  std::lock_guard<std::mutex> lock(s->mutex);
  switch (name) {
    case NETLINK_CAP_ACK:
      s->cap_ack = v != 0;
      return 0;
    case NETLINK_EXT_ACK:
      s->ext_ack = v != 0;
      return 0;
    case NETLINK_ADD_MEMBERSHIP:
    case NETLINK_DROP_MEMBERSHIP:
    case NETLINK_PKTINFO:
    case NETLINK_BROADCAST_ERROR:
    case NETLINK_NO_ENOBUFS:
    case NETLINK_LISTEN_ALL_NSID:
    case NETLINK_GET_STRICT_CHK:
      return 0;
    default:
      return -ENOPROTOOPT;
  }
}

std::optional<int> NetlinkSockets::GetSockOpt(int fd, int level, int name, void* value,
                                              socklen_t* len) {
  std::shared_ptr<Socket> s = Find(fd);
  if (!s) return std::nullopt;
  int v = 0;
  if (level == SOL_SOCKET) {
    if (name == SO_TYPE) {
      v = s->type;
    } else if (name == SO_PROTOCOL) {
      v = NETLINK_RDMA;
    } else if (name == SO_DOMAIN) {
      v = AF_NETLINK;
    } else {
      return std::nullopt;
    }
  } else if (level == SOL_NETLINK && (name == NETLINK_CAP_ACK || name == NETLINK_EXT_ACK)) {
    std::lock_guard<std::mutex> lock(s->mutex);
    v = name == NETLINK_CAP_ACK ? s->cap_ack : s->ext_ack;
  } else {
    return -ENOPROTOOPT;
  }
  if (!value || !len || *len < static_cast<socklen_t>(sizeof v)) return -EINVAL;
  std::memcpy(value, &v, sizeof v);
  *len = sizeof v;
  return 0;
}

void NetlinkSockets::Pump(Socket& s) {
  while (!s.pending.empty()) {
    const std::vector<uint8_t>& d = s.pending.front();
    ssize_t n = send(s.peer, d.data(), d.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) return;  // full: the next receive makes room
    s.pending.pop_front();
  }
}

// netlink_sendmsg to the kernel: the datagram is answered before the call returns.
std::optional<ssize_t> NetlinkSockets::SendMsg(int fd, const msghdr* msg, int /*flags*/) {
  std::shared_ptr<Socket> s = Find(fd);
  if (!s) return std::nullopt;
  if (!msg) return -EFAULT;
  if (msg->msg_name && msg->msg_namelen) {
    if (msg->msg_namelen < sizeof(sockaddr_nl)) return -EINVAL;
    sockaddr_nl to;
    std::memcpy(&to, msg->msg_name, sizeof to);
    if (to.nl_family != AF_NETLINK) return -EINVAL;
    if (to.nl_pid != 0) return -ECONNREFUSED;  // no other program listens on RDMA netlink
  }
  std::vector<uint8_t> request(sizeof(proto::RdmaNetlinkRequest));
  for (size_t i = 0; i < msg->msg_iovlen; ++i) {
    const auto* b = static_cast<const uint8_t*>(msg->msg_iov[i].iov_base);
    request.insert(request.end(), b, b + msg->msg_iov[i].iov_len);
    if (request.size() - sizeof(proto::RdmaNetlinkRequest) > proto::kMaxNetlinkDatagram) {
      return -EMSGSIZE;
    }
  }
  const ssize_t sent = static_cast<ssize_t>(request.size() - sizeof(proto::RdmaNetlinkRequest));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!s->portid) {  // netlink_autobind
      s->portid = NextPortId();
    }
  }
  std::lock_guard<std::mutex> lock(s->mutex);
  proto::RdmaNetlinkRequest head{};
  head.portid = s->portid;
  head.flags = (s->cap_ack ? proto::kNetlinkCapAck : 0) | (s->ext_ack ? proto::kNetlinkExtAck : 0);
  uint32_t total = 0;
  do {
    std::memcpy(request.data(), &head, sizeof head);
    proto::Message reply;
    int err = proto::Call(s->daemon, proto::Op::kRdmaNetlink, request.data(), request.size(),
                          nullptr, 0, &reply);
    if (err) return -ECONNREFUSED;  // the daemon went away
    if (reply.header.status) return -reply.header.status;
    proto::RdmaNetlinkReply r;
    if (!reply.Copy(&r)) return -EPROTO;
    total = r.total;
    size_t at = sizeof r;
    for (uint32_t i = 0; i < r.count; ++i) {
      uint32_t len;
      if (reply.payload.size() - at < sizeof len) return -EPROTO;
      std::memcpy(&len, reply.payload.data() + at, sizeof len);
      at += sizeof len;
      if (reply.payload.size() - at < len) return -EPROTO;
      s->pending.emplace_back(reply.payload.begin() + static_cast<ptrdiff_t>(at),
                              reply.payload.begin() + static_cast<ptrdiff_t>(at + len));
      at += len;
    }
    if (r.count == 0) break;
    head.first += r.count;
  } while (head.first < total);
  Pump(*s);
  return sent;
}

// What the pair holds, read as the program asked (MSG_PEEK, MSG_TRUNC, MSG_DONTWAIT, its
// descriptor's O_NONBLOCK), from the kernel's address; then the pair is refilled.
std::optional<ssize_t> NetlinkSockets::RecvMsg(int fd, msghdr* msg, int flags) {
  std::shared_ptr<Socket> s = Find(fd);
  if (!s) return std::nullopt;
  if (!msg) return -EFAULT;
  void* name = msg->msg_name;
  socklen_t namelen = msg->msg_namelen;
  msg->msg_name = nullptr;
  msg->msg_namelen = 0;
  // The system call itself: libc's recvmsg would come back to this library's hook.
  ssize_t n = syscall(SYS_recvmsg, fd, msg, flags);
  int err = errno;
  msg->msg_name = name;
  msg->msg_namelen = namelen;
  if (n < 0) return -err;
  if (name) {
    socklen_t len = namelen;
    CopyAddress(KernelAddress(), name, &len);
    msg->msg_namelen = len;
  }
  if (!(flags & MSG_PEEK)) {
    std::lock_guard<std::mutex> lock(s->mutex);
    Pump(*s);
  }
  return n;
}

}  // namespace vrdma::provider
