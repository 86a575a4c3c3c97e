#include "tests/unit/cm/client/fake_daemon.h"

#include <fcntl.h>
#include <poll.h>
#include <rdma/rdma_user_cm.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "vdev/protocol/channel.h"

namespace vrdma::cm_client::testing {

FakeDaemon::FakeDaemon(const std::string& dir) : path_(dir + "/vrdmad.sock") {
  listener_ = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
  unlink(path_.c_str());
  if (listener_ < 0 || bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listener_, 16) != 0 || pipe2(stop_, O_CLOEXEC) != 0) {
    throw std::runtime_error("fake daemon: " + std::string(strerror(errno)));
  }
  thread_ = std::thread([this] { Run(); });
}

FakeDaemon::~FakeDaemon() {
  char b = 0;
  (void)!write(stop_[1], &b, 1);
  thread_.join();
  for (auto& [conn, token] : conns_) close(conn);
  for (auto& [token, file] : files_) {
    if (file.channel >= 0) close(file.channel);
  }
  close(listener_);
  close(stop_[0]);
  close(stop_[1]);
  unlink(path_.c_str());
}

void FakeDaemon::Run() {
  for (;;) {
    std::vector<pollfd> pfds{{stop_[0], POLLIN, 0}, {listener_, POLLIN, 0}};
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto& [conn, token] : conns_) pfds.push_back({conn, POLLIN, 0});
    }
    if (poll(pfds.data(), pfds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (pfds[0].revents) return;
    if (pfds[1].revents & POLLIN) {
      int conn = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn >= 0) {
        std::lock_guard<std::mutex> lock(mutex_);
        conns_[conn] = 0;
      }
    }
    for (size_t i = 2; i < pfds.size(); ++i) {
      if (pfds[i].revents) Serve(pfds[i].fd);
    }
  }
}

void FakeDaemon::Drop(int conn) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = conns_.find(conn);
  if (it == conns_.end()) return;
  if (it->second) {
    auto f = files_.find(it->second);
    if (f != files_.end()) {
      close(f->second.channel);
      files_.erase(f);
    }
  }
  conns_.erase(it);
  close(conn);
  changed_.notify_all();
}

void FakeDaemon::Serve(int conn) {
  proto::Message msg;
  if (proto::ReceiveMessage(conn, &msg) != 0) {
    Drop(conn);
    return;
  }
  std::unique_lock<std::mutex> lock(mutex_);
  if (msg.header.op == static_cast<uint16_t>(proto::Op::kCmOpen)) {
    int channel = msg.TakeFd(0);
    if (refuse_open_ || channel < 0 || conns_[conn]) {
      if (channel >= 0) close(channel);
      int err = refuse_open_ ? refuse_open_ : EINVAL;
      lock.unlock();
      proto::SendMessage(conn, proto::Op::kCmOpen, err, nullptr, 0);
      return;
    }
    uint64_t token = next_token_++;
    files_[token].channel = channel;
    conns_[conn] = token;
    last_token_ = token;
    changed_.notify_all();
    lock.unlock();
    proto::CmOpenReply reply{token};
    proto::SendMessage(conn, proto::Op::kCmOpen, 0, &reply, sizeof reply);
    return;
  }
  uint64_t token = conns_[conn];
  proto::CmCommand c{};
  if (msg.header.op != static_cast<uint16_t>(proto::Op::kCmCommand) || !token || !msg.Copy(&c) ||
      msg.payload.size() < sizeof c + c.in_len) {
    lock.unlock();
    proto::SendMessage(conn, static_cast<proto::Op>(msg.header.op), EPROTO, nullptr, 0);
    return;
  }
  Command rec{token, c.cmd, c.out_len, c.peer_token, {}, {}};
  rec.in.assign(msg.payload.begin() + sizeof c, msg.payload.begin() + sizeof c + c.in_len);
  rec.extra.assign(msg.payload.begin() + sizeof c + c.in_len, msg.payload.end());
  commands_.push_back(rec);
  changed_.notify_all();

  int status = 0;
  proto::CmCommandReply reply{};
  std::vector<uint8_t> out;
  File& file = files_[token];
  if (auto it = fail_.find(c.cmd); it != fail_.end()) {
    status = it->second;
  } else if (c.cmd == RDMA_USER_CM_CMD_GET_EVENT) {
    if (file.events.empty()) {
      status = EAGAIN;
    } else {
      out = std::move(file.events.front());
      file.events.pop_front();
      if (file.events.empty()) reply.flags |= proto::kCmQueueDrained;
    }
  } else if (c.cmd == RDMA_USER_CM_CMD_MIGRATE_ID) {
    auto peer = files_.find(c.peer_token);
    if (peer == files_.end()) {
      status = ENOENT;
    } else if (peer->first != token) {
      // Every event of the old file is the id's here.
      bool was_empty = file.events.empty();
      bool peer_had = !peer->second.events.empty();
      for (auto& e : peer->second.events) file.events.push_back(std::move(e));
      peer->second.events.clear();
      if (peer_had) reply.flags |= proto::kCmPeerQueueDrained;
      if (was_empty && !file.events.empty()) {
        char b = 1;
        send(file.channel, &b, 1, MSG_DONTWAIT);
      }
      rdma_ucm_migrate_resp resp{7};
      out.assign(reinterpret_cast<uint8_t*>(&resp),
                 reinterpret_cast<uint8_t*>(&resp) + sizeof resp);
    }
  } else if (auto r = responses_.find(c.cmd); r != responses_.end()) {
    out = r->second;
  } else {
    for (uint32_t i = 0; i < c.out_len && i < proto::kCmMaxCommand; ++i) {
      out.push_back(static_cast<uint8_t>(c.cmd + i));
    }
  }
  lock.unlock();
  if (status) {
    proto::SendMessage(conn, proto::Op::kCmCommand, status, nullptr, 0);
    return;
  }
  if (out.size() > c.out_len) out.resize(c.out_len);
  reply.out_len = static_cast<uint32_t>(out.size());
  std::vector<uint8_t> payload(sizeof reply);
  std::memcpy(payload.data(), &reply, sizeof reply);
  payload.insert(payload.end(), out.begin(), out.end());
  proto::SendMessage(conn, proto::Op::kCmCommand, 0, payload.data(), payload.size());
}

std::vector<FakeDaemon::Command> FakeDaemon::commands() {
  std::lock_guard<std::mutex> lock(mutex_);
  return commands_;
}

bool FakeDaemon::WaitForCommands(size_t n, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return commands_.size() >= n; });
}

void FakeDaemon::RefuseOpen(int err) {
  std::lock_guard<std::mutex> lock(mutex_);
  refuse_open_ = err;
}

void FakeDaemon::Fail(uint32_t cmd, int err) {
  std::lock_guard<std::mutex> lock(mutex_);
  fail_[cmd] = err;
}

void FakeDaemon::SetResponse(uint32_t cmd, std::vector<uint8_t> bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  responses_[cmd] = std::move(bytes);
}

void FakeDaemon::QueueEvent(uint64_t file_token, std::vector<uint8_t> event) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = files_.find(file_token);
  if (it == files_.end()) return;
  it->second.events.push_back(std::move(event));
  if (it->second.events.size() == 1) {
    char b = 1;
    send(it->second.channel, &b, 1, MSG_DONTWAIT);
  }
}

uint64_t FakeDaemon::last_token() {
  std::lock_guard<std::mutex> lock(mutex_);
  return last_token_;
}

size_t FakeDaemon::open_files() {
  std::lock_guard<std::mutex> lock(mutex_);
  return files_.size();
}

bool FakeDaemon::WaitForOpenFiles(size_t n, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return files_.size() == n; });
}

}  // namespace vrdma::cm_client::testing
