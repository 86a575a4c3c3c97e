#include "vdev/server.h"

#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "vdev/log.h"
#include "vdev/netdev/netlink_watch.h"

namespace vrdma::vdev {

namespace {

// epoll tags: small integers for the fixed descriptors, socket fds for clients (tagged
// with a high bit for their doorbells).
constexpr uint64_t kTagListen = 1ull << 40;
constexpr uint64_t kTagStop = 2ull << 40;
constexpr uint64_t kTagNetlink = 3ull << 40;
constexpr uint64_t kTagPollerWake = 4ull << 40;
constexpr uint64_t kTagDoorbell = 1ull << 32;

// Backoff of an idle engine (passes with no work): spin, then yield the CPU, then sleep.
constexpr int kSpinPasses = 2000;
constexpr int kYieldPasses = 200;
// Sleep bound while an engine has timers armed or packets queued (retransmission,
// RNR and ACK timers run at this granularity when nothing else wakes the loop).
constexpr int kBusySleepMs = 1;
constexpr int kIdleSleepMs = 1000;

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

absl::StatusOr<int> Listen(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return absl::InvalidArgumentError("socket path too long: " + path);
  }
  std::strcpy(addr.sun_path, path.c_str());
  std::string dir = path.substr(0, path.rfind('/'));
  if (!dir.empty() && dir != path) mkdir(dir.c_str(), 0755);
  int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0) return absl::ErrnoToStatus(errno, "socket");
  // A socket file nobody listens on is left from a daemon that died: replace it.
  int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    close(probe);
    close(s);
    return absl::AlreadyExistsError("another vrdmad is listening on " + path);
  }
  close(probe);
  unlink(path.c_str());
  if (bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(s, 64) != 0) {
    int err = errno;
    close(s);
    return absl::ErrnoToStatus(err, "binding " + path);
  }
  // Access is checked per request (SO_PEERCRED); the socket itself is open to all users.
  chmod(path.c_str(), 0666);
  return s;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Create(const ServerOptions& options,
                                                       std::unique_ptr<Registry> registry) {
  std::unique_ptr<Server> s(new Server());
  s->options_ = options;
  s->registry_ = std::move(registry);
  // A request that waits for the kernel to resolve a neighbour (an AH, a connected QP)
  // leaves the devices running: their frames, timers and the exception path's
  // solicitation. The clients' queues are pumped again once the request is answered.
  Server* self = s.get();
  s->registry_->SetResolveWait([self] {
    if (self->RunPollers() == 0) std::this_thread::sleep_for(std::chrono::microseconds(500));
  });
  auto fd = Listen(options.socket_path);
  if (!fd.ok()) return fd.status();
  s->listen_fd_ = *fd;
  s->epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  s->stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->epoll_fd_ < 0 || s->stop_fd_ < 0) return absl::ErrnoToStatus(errno, "epoll/eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kTagListen;
  epoll_ctl(s->epoll_fd_, EPOLL_CTL_ADD, s->listen_fd_, &ev);
  ev.data.u64 = kTagStop;
  epoll_ctl(s->epoll_fd_, EPOLL_CTL_ADD, s->stop_fd_, &ev);
  auto nl = NetlinkWatch::Open();
  if (nl.ok()) {
    s->netlink_ = std::move(*nl);
    ev.data.u64 = kTagNetlink;
    epoll_ctl(s->epoll_fd_, EPOLL_CTL_ADD, s->netlink_->fd(), &ev);
  } else {
    Log(LogLevel::kWarn, "netlink_unavailable", "reason=" + LogQuote(nl.status().ToString()));
  }
  return s;
}

absl::Status Server::AddHandler(uint16_t first_op, uint16_t last_op,
                                std::unique_ptr<RequestHandler> handler) {
  if (first_op > last_op || !handler) return absl::InvalidArgumentError("empty route");
  for (const Route& r : routes_) {
    if (first_op <= r.last_op && r.first_op <= last_op) {
      return absl::AlreadyExistsError(absl::StrCat("operations ", first_op, "-", last_op,
                                                   " overlap ", r.first_op, "-", r.last_op));
    }
  }
  routes_.push_back(Route{first_op, last_op, std::move(handler)});
  return absl::OkStatus();
}

void Server::AddPoller(std::unique_ptr<Poller> poller) {
  std::vector<int> fds;
  poller->WakeFds(&fds);
  for (int fd : fds) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kTagPollerWake;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  }
  tick_pollers_ |= poller->NeedsTick();
  pollers_.push_back(std::move(poller));
}

void Server::DetachVdev(const Vdev* vdev) {
  for (auto& s : sessions_) {
    if (s->vdev() == vdev) s->Detach();
  }
}

Server::~Server() {
  for (auto& s : sessions_) {
    for (Route& r : routes_) r.handler->OnClose(*s);
  }
  sessions_.clear();
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    unlink(options_.socket_path.c_str());
  }
  if (stop_fd_ >= 0) close(stop_fd_);
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

void Server::Stop() {
  stopping_.store(true, std::memory_order_relaxed);
  uint64_t one = 1;
  ssize_t n = write(stop_fd_, &one, sizeof one);
  (void)n;
}

void Server::Accept() {
  for (;;) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    ucred cred{};
    socklen_t len = sizeof cred;
    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len);
    auto session = std::make_unique<Session>(fd, registry_.get(), cred.pid, cred.uid);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = static_cast<uint64_t>(fd);
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
    Log(LogLevel::kDebug, "client_connect", absl::StrCat("pid=", cred.pid, " uid=", cred.uid));
    sessions_.push_back(std::move(session));
  }
}

void Server::CloseSession(int fd) {
  auto it = std::find_if(sessions_.begin(), sessions_.end(),
                         [fd](const auto& s) { return s->sock() == fd; });
  if (it == sessions_.end()) return;
  Session& s = **it;
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  if (s.doorbell_fd() >= 0) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, s.doorbell_fd(), nullptr);
  if (s.vdev()) {
    Log(LogLevel::kInfo, "context_close",
        absl::StrCat("dev=", s.vdev()->name, " pid=", s.pid(), " comm=", LogQuote(s.comm())));
  }
  for (Route& r : routes_) r.handler->OnClose(s);
  sessions_.erase(it);  // frees everything the client left behind
}

void Server::OnClientReadable(int fd) {
  auto it = std::find_if(sessions_.begin(), sessions_.end(),
                         [fd](const auto& s) { return s->sock() == fd; });
  if (it == sessions_.end()) return;
  Session& s = **it;
  for (int i = 0; i < 16; ++i) {
    proto::Message msg;
    int err = proto::ReceiveMessage(fd, &msg);
    if (err == EAGAIN || err == EWOULDBLOCK) return;
    if (err) {
      if (err != ECONNRESET) {
        Log(LogLevel::kWarn, "client_protocol_error",
            absl::StrCat("pid=", s.pid(), " errno=", err));
      }
      CloseSession(fd);
      return;
    }
    bool had_vdev = s.vdev() != nullptr;
    Reply reply;
    RequestHandler* handler = nullptr;
    for (Route& r : routes_) {
      if (msg.header.op >= r.first_op && msg.header.op <= r.last_op) handler = r.handler.get();
    }
    if (handler) {
      handler->Handle(s, msg, &reply);
    } else {
      reply.status = EOPNOTSUPP;  // no layer wired in answers this operation
    }
    if (proto::SendMessage(fd, static_cast<proto::Op>(msg.header.op), reply.status,
                           reply.payload.data(), reply.payload.size(), reply.fds.data(),
                           reply.fds.size())) {
      CloseSession(fd);
      return;
    }
    if (!had_vdev && s.vdev()) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = kTagDoorbell | static_cast<uint64_t>(s.doorbell_fd());
      epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, s.doorbell_fd(), &ev);
      Log(LogLevel::kInfo, "context_open",
          absl::StrCat("dev=", s.vdev()->name, " pid=", s.pid(), " comm=", LogQuote(s.comm())));
    }
  }
}

void Server::OnNetlink() {
  NetlinkWatch::Changes changes = netlink_->Drain();
  std::vector<Vdev*> gone;
  for (const auto& [name, v] : registry_->vdevs()) {
    bool affected = changes.overflow ||
                    std::find(changes.changed.begin(), changes.changed.end(), v->ifindex) !=
                        changes.changed.end() ||
                    std::find(changes.removed.begin(), changes.removed.end(), v->ifindex) !=
                        changes.removed.end();
    if (!affected) continue;
    std::vector<driver::GidEntry> before = v->gids;
    absl::Status st = registry_->RefreshGids(*v);
    if (absl::IsNotFound(st)) {
      gone.push_back(v.get());
      continue;
    }
    if (st.ok() && before == v->gids) {
      continue;  // a change of the interface that leaves its GIDs as they were
    }
    Log(LogLevel::kInfo, "gid_table_update",
        absl::StrCat("dev=", v->name, " netdev=", v->netdev, " gids=", v->gids.size()));
    for (auto& s : sessions_) {
      if (s->vdev() == v.get()) s->DeliverEvent(driver::AsyncEvent{IBV_EVENT_GID_CHANGE, 1});
    }
  }
  // A vdev whose interface left (deleted, or moved to another namespace) goes with it.
  for (Vdev* v : gone) {
    Log(LogLevel::kInfo, "vdev_del", absl::StrCat("dev=", v->name, " reason=netdev_gone"));
    DetachVdev(v);
    std::string name = v->name;
    (void)registry_->DelVdev(name);
  }
}

void Server::ServiceControl(int timeout_ms) {
  epoll_event events[32];
  int n = epoll_wait(epoll_fd_, events, 32, timeout_ms);
  for (int i = 0; i < n; ++i) {
    uint64_t tag = events[i].data.u64;
    if (tag == kTagListen) {
      Accept();
    } else if (tag == kTagStop) {
      uint64_t v;
      ssize_t r = read(stop_fd_, &v, sizeof v);
      (void)r;
    } else if (tag == kTagNetlink) {
      OnNetlink();
    } else if (tag == kTagPollerWake) {
      // A poller has work (a frame arrived on a port); the pass after this runs it.
    } else if (tag & kTagDoorbell) {
      uint64_t v;
      ssize_t r = read(static_cast<int>(tag & 0xffffffff), &v, sizeof v);
      (void)r;
    } else {
      OnClientReadable(static_cast<int>(tag));
    }
  }
}

int Server::EnginePass() {
  int work = 0;
  for (auto& s : sessions_) {
    if (s->NeedsPump()) work += static_cast<int>(s->Pump());
  }
  return work + RunPollers();
}

int Server::RunPollers() {
  int work = 0;
  uint64_t now = NowNs();
  for (auto& p : pollers_) work += p->Poll(now);
  return work;
}

void Server::Run() {
  Log(LogLevel::kInfo, "start", "socket=" + LogQuote(options_.socket_path));
  int idle = 0;
  uint32_t passes = 0;
  while (!stopping_.load(std::memory_order_relaxed)) {
    int work = EnginePass();
    if (work) {
      idle = 0;
      // Requests are served between engine passes, without a system call on every pass.
      if ((++passes & 255) == 0) ServiceControl(0);
      continue;
    }
    ++idle;
    if (idle < kSpinPasses) {
      if ((idle & 63) == 0) ServiceControl(0);
      continue;
    }
    if (idle < kSpinPasses + kYieldPasses) {
      ServiceControl(0);
      sched_yield();
      continue;
    }
    // Sleep: tell clients to ring the eventfd and ports to signal arriving frames, then
    // look once more before blocking.
    for (auto& s : sessions_) s->SetEngineSleeping(true);
    for (auto& p : pollers_) p->ArmWake(true);
    bool pending = EnginePass() != 0;
    for (auto& s : sessions_) pending |= s->NeedsPump();
    bool engine_busy = tick_pollers_;
    for (auto& p : pollers_) engine_busy |= p->HasPendingWork();
    if (!pending) ServiceControl(engine_busy ? kBusySleepMs : kIdleSleepMs);
    for (auto& p : pollers_) p->ArmWake(false);
    for (auto& s : sessions_) s->SetEngineSleeping(false);
    idle = engine_busy ? kSpinPasses + kYieldPasses : 0;
    if (pending) idle = 0;
  }
  Shutdown();
}

void Server::Shutdown() {
  Log(LogLevel::kInfo, "stop", absl::StrCat("contexts=", sessions_.size()));
  for (auto& s : sessions_) {
    s->Detach();
    for (Route& r : routes_) r.handler->OnClose(*s);
  }
  sessions_.clear();
}

}  // namespace vrdma::vdev
