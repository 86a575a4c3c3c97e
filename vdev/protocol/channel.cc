#include "vdev/protocol/channel.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace vrdma::proto {

Message::~Message() { CloseFds(); }

Message::Message(Message&& other) noexcept
    : header(other.header), payload(std::move(other.payload)), fds_(std::move(other.fds_)) {
  other.fds_.clear();
}

Message& Message::operator=(Message&& other) noexcept {
  if (this != &other) {
    CloseFds();
    header = other.header;
    payload = std::move(other.payload);
    fds_ = std::move(other.fds_);
    other.fds_.clear();
  }
  return *this;
}

int Message::TakeFd(size_t i) {
  if (i >= fds_.size()) return -1;
  int fd = fds_[i];
  fds_[i] = -1;
  return fd;
}

void Message::CloseFds() {
  for (int fd : fds_) {
    if (fd >= 0) close(fd);
  }
  fds_.clear();
}

int SendMessage(int sock, Op op, int32_t status, const void* payload, size_t len, const int* fds,
                size_t nfds) {
  if (len > kMaxMessage - sizeof(MsgHeader) || nfds > kMaxFds) return EMSGSIZE;
  MsgHeader h{kMagic, kVersion, static_cast<uint16_t>(op), static_cast<uint32_t>(len), status};
  iovec iov[2] = {{&h, sizeof h}, {const_cast<void*>(payload), len}};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = len ? 2 : 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  if (nfds) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    std::memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  for (;;) {
    ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n >= 0) return static_cast<size_t>(n) == sizeof h + len ? 0 : EMSGSIZE;
    if (errno != EINTR) return errno;
  }
}

int ReceiveMessage(int sock, Message* out) {
  out->CloseFds();
  out->payload.resize(kMaxMessage);
  MsgHeader h{};
  iovec iov[2] = {{&h, sizeof h}, {out->payload.data(), out->payload.size()}};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = 2;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno;
  if (n == 0) return ECONNRESET;
  // Take every descriptor first so none leaks, whatever else is wrong with the message.
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      out->fds_.push_back(fd);
    }
  }
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) return EPROTO;
  if (static_cast<size_t>(n) < sizeof h || h.magic != kMagic || h.version != kVersion ||
      h.payload_len != static_cast<size_t>(n) - sizeof h) {
    return EPROTO;
  }
  out->header = h;
  out->payload.resize(h.payload_len);
  return 0;
}

int Call(int sock, Op op, const void* req, size_t len, const int* fds, size_t nfds,
         Message* reply) {
  int err = SendMessage(sock, op, 0, req, len, fds, nfds);
  if (err) return err;
  err = ReceiveMessage(sock, reply);
  if (err) return err;
  if (reply->header.op != static_cast<uint16_t>(op)) return EPROTO;
  return 0;
}

int ListAllDevices(int sock, std::vector<DeviceRecord>* out) {
  out->clear();
  ListDevicesRequest req{0, 0};
  for (;;) {
    Message reply;
    int err = Call(sock, Op::kListDevices, &req, sizeof req, nullptr, 0, &reply);
    if (err) return err;
    if (reply.header.status) return reply.header.status;
    ListDevicesReply head{};
    if (!reply.Copy(&head) || head.first != req.first) return EPROTO;
    const size_t n = (reply.payload.size() - sizeof head) / sizeof(DeviceRecord);
    for (size_t i = 0; i < n && out->size() < head.count; ++i) {
      DeviceRecord rec;
      std::memcpy(&rec, reply.payload.data() + sizeof head + i * sizeof rec, sizeof rec);
      rec.name[kNameLen - 1] = rec.pdev[kNameLen - 1] = rec.netdev[kNameLen - 1] = 0;
      out->push_back(rec);
    }
    // Done when all are here, or when a page came empty (the list shrank meanwhile).
    if (out->size() >= head.count || n == 0) return 0;
    req.first = static_cast<uint32_t>(out->size());
  }
}

std::vector<std::string> SocketPaths() {
  const char* env = getenv(kSocketEnv);
  std::vector<std::string> out;
  if (!env || !*env) return {kDefaultSocket};
  std::string all(env);
  size_t start = 0;
  while (start <= all.size()) {
    size_t end = all.find(':', start);
    if (end == std::string::npos) end = all.size();
    if (end > start) out.push_back(all.substr(start, end - start));
    start = end + 1;
  }
  if (out.empty()) out.push_back(kDefaultSocket);
  return out;
}

std::string SocketPath() { return SocketPaths().front(); }

int ConnectToDaemon() { return ConnectToSocket(SocketPath()); }

int ConnectToSocket(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return -ENAMETOOLONG;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (s < 0) return -errno;
  if (connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    close(s);
    return -err;
  }
  return s;
}

}  // namespace vrdma::proto
