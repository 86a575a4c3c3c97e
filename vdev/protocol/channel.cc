#include "vdev/protocol/channel.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>

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

const char* SocketPath() {
  const char* env = getenv(kSocketEnv);
  return env && *env ? env : kDefaultSocket;
}

int ConnectToDaemon() {
  const char* path = SocketPath();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof addr.sun_path) return -ENAMETOOLONG;
  std::strcpy(addr.sun_path, path);
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
