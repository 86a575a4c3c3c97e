// Framing of protocol messages on a SOCK_SEQPACKET socket, with fd passing. Shared by the
// daemon and the provider; plain errno results so the provider needs nothing else.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "vdev/protocol/protocol.h"

namespace vrdma::proto {

// A received message. Descriptors not taken are closed with it.
class Message {
 public:
  Message() = default;
  ~Message();
  Message(const Message&) = delete;
  Message& operator=(const Message&) = delete;
  Message(Message&& other) noexcept;
  Message& operator=(Message&& other) noexcept;

  MsgHeader header{};
  std::vector<uint8_t> payload;

  size_t fd_count() const { return fds_.size(); }
  // The i-th descriptor, now owned by the caller; -1 if there is none.
  int TakeFd(size_t i);
  // Copies the payload's leading sizeof(T) bytes into *out; false if it is shorter.
  template <typename T>
  bool Copy(T* out) const {
    if (payload.size() < sizeof(T)) return false;
    std::memcpy(out, payload.data(), sizeof(T));
    return true;
  }
  void CloseFds();

 private:
  friend int ReceiveMessage(int sock, Message* out);
  std::vector<int> fds_;
};

// Sends one message. Returns 0 or an errno.
int SendMessage(int sock, Op op, int32_t status, const void* payload, size_t len,
                const int* fds = nullptr, size_t nfds = 0);
// Receives one message (blocking unless the socket is non-blocking). Returns 0, EAGAIN,
// ECONNRESET when the peer closed, EPROTO for a malformed message, or another errno.
int ReceiveMessage(int sock, Message* out);
// Sends a request and waits for its reply. Returns 0 (the reply's own status is in
// reply->header.status) or an errno of the exchange itself.
int Call(int sock, Op op, const void* req, size_t len, const int* fds, size_t nfds, Message* reply);

// Every device record a daemon lists for the caller (kListDevices, page by page), names
// NUL-terminated. Returns 0, the reply's error status, or an errno of the exchange.
int ListAllDevices(int sock, std::vector<DeviceRecord>* out);

// VRDMA_SOCKET may list several daemons' sockets, separated by ':' (a process using
// vdevs of daemons on several hosts or namespaces); the first is the one admin
// requests go to. Unset: the default path.
std::vector<std::string> SocketPaths();
// Connects to `path`, or to the first daemon. Returns the socket or -errno.
int ConnectToSocket(const std::string& path);
int ConnectToDaemon();
// The first daemon's socket path.
std::string SocketPath();

}  // namespace vrdma::proto
