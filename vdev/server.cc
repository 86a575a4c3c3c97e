#include "vdev/server.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
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
#include "vdev/client_fd.h"
#include "vdev/log.h"
#include "vdev/monotonic.h"
#include "vdev/netdev/netlink_watch.h"

namespace vrdma::vdev {

namespace {

// epoll tags: small integers for the fixed descriptors, socket fds for clients (tagged
// with a high bit for their doorbells).
constexpr uint64_t kTagListen = 1ull << 40;
constexpr uint64_t kTagStop = 2ull << 40;
constexpr uint64_t kTagNetlink = 3ull << 40;
constexpr uint64_t kTagPollerWake = 4ull << 40;
constexpr uint64_t kTagNetnsWatch = 6ull << 40;  // | the watch's descriptor
constexpr uint64_t kTagDoorbell = 1ull << 32;

// Backoff of an idle engine (passes with no work): spin, then yield the CPU, then sleep.
constexpr int kSpinPasses = 2000;
constexpr int kYieldPasses = 200;
// While it spins, the engine still yields every kSpinYieldEvery idle passes: a client
// polling on the same core (its own provider yields too) is usually what the engine
// waits for, and 2000 passes without a yield kept it off the core for ~100-200 us per
// round trip. Alone on its core, a yield returns at once.
constexpr int kSpinYieldEvery = 16;
// Sleep bound while an engine has timers armed or packets queued (retransmission,
// RNR and ACK timers run at this granularity when nothing else wakes the loop).
constexpr int kBusySleepMs = 1;
constexpr int kIdleSleepMs = 1000;

uint64_t NowNs() { return MonotonicNs(); }

// The socket's directory must be the daemon's: owned by it and writable by no one else
// (or sticky, as /tmp), so no other user can swap the socket file for their own. The
// socket is bound through the directory's descriptor (not its path, which a symlink could
// redirect after the check) and made with mode 0666 by the umask at bind(), never chmod'ed
// through a path.
absl::StatusOr<int> Listen(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  if (name.empty()) return absl::InvalidArgumentError("socket path names a directory: " + path);
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::ErrnoToStatus(errno, "creating the socket directory " + dir);
  }
  int dir_fd = open(dir.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  if (dir_fd < 0) return absl::ErrnoToStatus(errno, "opening the socket directory " + dir);
  struct stat st;
  if (fstat(dir_fd, &st) != 0 || st.st_uid != geteuid() ||
      ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX))) {
    close(dir_fd);
    return absl::PermissionDeniedError(absl::StrCat("socket directory ", dir,
                                                    " must be owned by uid ", geteuid(),
                                                    " and writable by no one else (or sticky)"));
  }
  std::string via_fd = absl::StrCat("/proc/self/fd/", dir_fd, "/", name);
  if (via_fd.size() >= sizeof addr.sun_path || path.size() >= sizeof addr.sun_path) {
    close(dir_fd);
    return absl::InvalidArgumentError("socket path too long: " + path);
  }
  std::strcpy(addr.sun_path, via_fd.c_str());
  auto fail = [&](int err, const std::string& what) {
    close(dir_fd);
    return absl::ErrnoToStatus(err, what);
  };
  int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0) return fail(errno, "socket");
  // A socket file nobody listens on is left from a daemon that died: replace it.
  int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    close(probe);
    close(s);
    close(dir_fd);
    return absl::AlreadyExistsError("another vrdmad is listening on " + path);
  }
  close(probe);
  unlinkat(dir_fd, name.c_str(), 0);
  // Access is checked per request on the peer's connect-time identity (peer.h); the
  // socket itself is open to all users.
  mode_t old_mask = umask(0111);
  int rc = bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  int err = errno;
  umask(old_mask);
  if (rc != 0 || listen(s, 64) != 0) {
    if (rc == 0) err = errno;
    close(s);
    return fail(err, "binding " + path);
  }
  close(dir_fd);
  return s;
}

// Raises the descriptor limit as far as the daemon may (every connection and object of a
// client holds descriptors here); returns the soft limit in force.
uint64_t RaiseFdLimit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return 1024;
  // As far as the kernel lets any process go (fs.nr_open), at most 2^20.
  rlim_t ceiling = 1 << 20;
  if (FILE* f = std::fopen("/proc/sys/fs/nr_open", "re")) {
    unsigned long long nr_open = 0;
    if (std::fscanf(f, "%llu", &nr_open) == 1 && nr_open > 0) {
      ceiling = std::min<rlim_t>(ceiling, nr_open);
    }
    std::fclose(f);
  }
  rlimit want = lim;
  want.rlim_cur = want.rlim_max = std::max<rlim_t>(lim.rlim_max, ceiling);
  if (setrlimit(RLIMIT_NOFILE, &want) != 0) {  // without CAP_SYS_RESOURCE: up to the hard one
    want = lim;
    want.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &want) != 0) want = lim;
  }
  return want.rlim_cur;
}

// Descriptors kept for the daemon's own work (netlink, memfds of new rings, the EAL …) and
// the administrator, and a budget per client connection with its device open (its socket,
// pidfd, doorbell, async and context descriptors). By default connections get half of the
// rest, and the objects that keep a descriptor (daemon_budget.h) the other half.
constexpr uint64_t kReservedFds = 512;
constexpr uint64_t kFdsPerConnection = 16;
constexpr uint64_t kRefuseTimeoutNs = 1000000000ull;
constexpr size_t kMaxRefusing = 64;
constexpr uint64_t kTagRefused = 5ull << 40;

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Create(const ServerOptions& options,
                                                       std::unique_ptr<Registry> registry) {
  std::unique_ptr<Server> s(new Server());
  s->options_ = options;
  s->registry_ = std::move(registry);
  uint64_t fd_limit = RaiseFdLimit();
  if (s->options_.max_connections == 0) {
    uint64_t budget = fd_limit > 2 * kReservedFds
                          ? (fd_limit - kReservedFds) / 2 / kFdsPerConnection
                          : fd_limit / (4 * kFdsPerConnection);
    s->options_.max_connections = static_cast<uint32_t>(std::clamp<uint64_t>(budget, 8, 65536));
  }
  if (s->options_.max_connections_per_user == 0) {
    s->options_.max_connections_per_user = std::max<uint32_t>(s->options_.max_connections / 4, 1);
  }
  const uint64_t for_connections =
      kReservedFds + uint64_t{s->options_.max_connections} * kFdsPerConnection;
  DaemonBudget::Limits budget =
      DaemonBudget::FromSystem(fd_limit > for_connections ? fd_limit - for_connections : 0);
  using enum DaemonResource;
  if (s->options_.max_mappings_per_user) {
    budget.per_user[static_cast<size_t>(kMappings)] = s->options_.max_mappings_per_user;
  }
  if (s->options_.max_descriptors_per_user) {
    budget.per_user[static_cast<size_t>(kDescriptors)] = s->options_.max_descriptors_per_user;
  }
  s->registry_->daemon_budget().SetLimits(budget);
  Log(LogLevel::kInfo, "limits",
      absl::StrCat("fd_limit=", fd_limit, " max_connections=", s->options_.max_connections,
                   " max_connections_per_user=", s->options_.max_connections_per_user,
                   " client_mappings=", budget.total[static_cast<size_t>(kMappings)],
                   " per_user=", budget.per_user[static_cast<size_t>(kMappings)],
                   " client_descriptors=", budget.total[static_cast<size_t>(kDescriptors)],
                   " per_user=", budget.per_user[static_cast<size_t>(kDescriptors)]));
  s->spare_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
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
  waiting_.clear();
  for (auto& s : sessions_) {
    for (Route& r : routes_) r.handler->OnClose(*s);
  }
  sessions_.clear();
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    unlink(options_.socket_path.c_str());
  }
  ExpireRefused(true);
  if (spare_fd_ >= 0) close(spare_fd_);
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
    if (fd < 0) {
      if ((errno == EMFILE || errno == ENFILE) && spare_fd_ >= 0) {
        // No descriptor left: take the connection with the spare one and close it, so the
        // client gets an answer (a closed connection) and the listener does not spin.
        close(spare_fd_);
        fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) close(fd);
        spare_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (refused_count_++ % 1000 == 0) {
          Log(LogLevel::kWarn, "connection_refused",
              absl::StrCat("reason=\"no descriptor left\" refused=", refused_count_));
        }
        continue;
      }
      return;
    }
    absl::StatusOr<Peer> peer = Peer::FromSocket(fd);
    if (!peer.ok()) {  // gone before it could be identified
      Log(LogLevel::kDebug, "connection_dropped", "reason=" + LogQuote(peer.status().ToString()));
      close(fd);
      continue;
    }
    std::string why;
    if (int err = AdmissionErrno(*peer, &why)) {
      if (refused_count_++ % 1000 == 0) {
        Log(LogLevel::kWarn, "connection_refused",
            absl::StrCat("pid=", peer->pid(), " uid=", peer->uid(), " reason=", LogQuote(why),
                         " refused=", refused_count_));
      }
      Refuse(fd, err, std::move(why));
      continue;
    }
    if (peer->uid() != 0) {
      connections_per_user_[peer->uid()]++;
      user_connections_++;
    }
    Log(LogLevel::kDebug, "client_connect",
        absl::StrCat("pid=", peer->pid(), " uid=", peer->uid(), " comm=", LogQuote(peer->comm())));
    auto session = std::make_unique<Session>(fd, registry_.get(), *std::move(peer));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = static_cast<uint64_t>(fd);
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
    sessions_.push_back(std::move(session));
  }
}

int Server::AdmissionErrno(const Peer& peer, std::string* why) const {
  if (peer.uid() == 0) return 0;
  auto it = connections_per_user_.find(peer.uid());
  if (it != connections_per_user_.end() && it->second >= options_.max_connections_per_user) {
    *why = absl::StrCat("too many client connections of uid ", peer.uid(), " (",
                        options_.max_connections_per_user, ")");
    return EUSERS;
  }
  if (user_connections_ >= options_.max_connections) {
    *why = absl::StrCat("too many client connections (", options_.max_connections, ")");
    return EMFILE;
  }
  return 0;
}

void Server::Refuse(int fd, int err, std::string why) {
  if (refused_.size() >= kMaxRefusing) {  // a flood: no answer, just the closed connection
    close(fd);
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kTagRefused | static_cast<uint64_t>(fd);
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  refused_.push_back(Refused{fd, err, std::move(why), NowNs() + kRefuseTimeoutNs});
}

void Server::OnRefusedReadable(int fd) {
  auto it =
      std::find_if(refused_.begin(), refused_.end(), [fd](const Refused& r) { return r.fd == fd; });
  if (it == refused_.end()) return;
  proto::Message msg;
  if (proto::ReceiveMessage(fd, &msg) == 0) {
    std::string text = "vrdmad: " + it->why + "\n";
    (void)proto::SendMessage(fd, static_cast<proto::Op>(msg.header.op), it->err, text.c_str(),
                             text.size() + 1, nullptr, 0);
  }
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  close(fd);
  refused_.erase(it);
}

void Server::ExpireRefused(bool all) {
  if (refused_.empty()) return;
  uint64_t now = NowNs();
  std::erase_if(refused_, [&](const Refused& r) {
    if (!all && r.deadline_ns > now) return false;
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, r.fd, nullptr);
    close(r.fd);
    return true;
  });
}

void Server::CloseSession(int fd) {
  if (fd < 0) return;
  auto it = std::find_if(sessions_.begin(), sessions_.end(),
                         [fd](const auto& s) { return s->sock() == fd; });
  if (it == sessions_.end()) return;
  Session& s = **it;
  Session* joined = s.shared();
  // A reply it waits for is no longer wanted: its handler hears OnClose, never Resume.
  std::erase_if(waiting_, [&s](const Waiting& w) { return w.session == &s; });
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  if (s.doorbell_fd() >= 0 && !s.importers()) {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, s.doorbell_fd(), nullptr);
  }
  if (s.vdev()) {
    Log(LogLevel::kInfo, "context_close",
        absl::StrCat("dev=", s.vdev()->name, " pid=", s.pid(), " comm=", LogQuote(s.comm())));
  }
  for (Route& r : routes_) r.handler->OnClose(s);
  if (s.uid() != 0) {
    auto u = connections_per_user_.find(s.uid());
    if (u != connections_per_user_.end() && --u->second == 0) connections_per_user_.erase(u);
    user_connections_--;
  }
  if (s.importers()) {
    // Contexts that joined this one still use its objects and its doorbell: they stay,
    // pumped as before, until the last of those contexts closes.
    s.CloseConnection();
    return;
  }
  sessions_.erase(it);  // frees everything the client left behind
  if (joined) {
    joined->DropImporter();
    if (!joined->importers() && joined->sock() < 0) {
      if (joined->doorbell_fd() >= 0) {
        epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, joined->doorbell_fd(), nullptr);
      }
      std::erase_if(sessions_, [joined](const auto& p) { return p.get() == joined; });
    }
  }
}

void Server::OnClientReadable(int fd, uint32_t events) {
  auto it = std::find_if(sessions_.begin(), sessions_.end(),
                         [fd](const auto& s) { return s->sock() == fd; });
  if (it == sessions_.end()) return;
  Session& s = **it;
  if (std::any_of(waiting_.begin(), waiting_.end(),
                  [&s](const Waiting& w) { return w.session == &s; })) {
    // Waiting for its reply: nothing is read, only its going away is heard.
    if (events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) CloseSession(fd);
    return;
  }
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
    if (handler && reply.status == kReplyLater) {
      // Answered by ResumeWaiting; until then the connection is only watched for hang-up.
      waiting_.push_back(Waiting{&s, msg.header.op, handler});
      epoll_event ev{};
      ev.events = EPOLLRDHUP;
      ev.data.u64 = static_cast<uint64_t>(fd);
      epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
      return;
    }
    const std::vector<int> fds = reply.AllFds();
    if (proto::SendMessage(fd, static_cast<proto::Op>(msg.header.op), reply.status,
                           reply.payload.data(), reply.payload.size(), fds.data(), fds.size())) {
      CloseSession(fd);
      return;
    }
    if (!had_vdev && s.vdev()) {
      if (s.doorbell_fd() >= 0) {  // a context that joined another rings the other's
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = kTagDoorbell | static_cast<uint64_t>(s.doorbell_fd());
        epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, s.doorbell_fd(), &ev);
      }
      Log(LogLevel::kInfo, s.shared() ? "context_import" : "context_open",
          absl::StrCat("dev=", s.vdev()->name, " pid=", s.pid(), " comm=", LogQuote(s.comm())));
    }
  }
}

void Server::OnNetlink(NetlinkWatch& watch, const NamespaceId& netns) {
  NetlinkWatch::Changes changes = watch.Drain();
  std::vector<Vdev*> gone;
  for (const auto& [name, v] : registry_->vdevs()) {
    if (v->netns != netns) continue;  // an ifindex is a namespace's own
    bool affected = changes.overflow ||
                    std::find(changes.changed.begin(), changes.changed.end(), v->ifindex) !=
                        changes.changed.end() ||
                    std::find(changes.removed.begin(), changes.removed.end(), v->ifindex) !=
                        changes.removed.end();
    if (!affected) continue;
    std::vector<driver::GidEntry> before = v->gids;
    bool was_up = v->link_up;
    absl::Status st = registry_->RefreshGids(*v);
    if (absl::IsNotFound(st)) {
      gone.push_back(v.get());
      continue;
    }
    if (st.ok() && was_up != v->link_up) {
      // The port follows its interface, with the events a port's state change raises
      // (IBTA 11.6.3.3: port error when it leaves Active, port active when it returns).
      Log(LogLevel::kInfo, "port_state",
          absl::StrCat("dev=", v->name, " netdev=", v->netdev,
                       " state=", v->link_up ? "active" : "down"));
      ibv_event_type type = v->link_up ? IBV_EVENT_PORT_ACTIVE : IBV_EVENT_PORT_ERR;
      for (auto& s : sessions_) {
        if (s->vdev() == v.get()) s->DeliverEvent(driver::AsyncEvent{type, 1});
      }
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

void Server::WatchNamespaces() {
  if (watched_generation_ == registry_->generation()) return;
  watched_generation_ = registry_->generation();
  std::map<uint64_t, std::shared_ptr<Netns>> wanted;
  for (const auto& [name, v] : registry_->vdevs()) {
    if (v->netns_handle) wanted.emplace(v->netns.cookie, v->netns_handle);
  }
  for (auto it = netns_watches_.begin(); it != netns_watches_.end();) {
    if (wanted.count(it->first)) {
      ++it;
      continue;
    }
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->second.watch->fd(), nullptr);
    it = netns_watches_.erase(it);
  }
  for (const auto& [cookie, ns] : wanted) {
    if (netns_watches_.count(cookie)) continue;
    absl::StatusOr<std::unique_ptr<NetlinkWatch>> watch = NetlinkWatch::Open(ns.get());
    if (!watch.ok()) {
      Log(LogLevel::kWarn, "netlink_unavailable",
          absl::StrCat("netns=", ns->inode(), " reason=", LogQuote(watch.status().ToString())));
      continue;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kTagNetnsWatch | static_cast<uint64_t>((*watch)->fd());
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, (*watch)->fd(), &ev);
    netns_watches_.emplace(cookie, NetnsWatch{ns, std::move(*watch)});
  }
}

void Server::ServiceControl(int timeout_ms) {
  WatchNamespaces();
  ExpireRefused(false);
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
      OnNetlink(*netlink_, registry_->netns());
    } else if ((tag & ~0xffffffffull) == kTagNetnsWatch) {
      for (auto& [cookie, w] : netns_watches_) {
        if (w.watch->fd() == static_cast<int>(tag & 0xffffffff)) {
          OnNetlink(*w.watch, NamespaceId{cookie});
          break;
        }
      }
    } else if ((tag & ~0xffffffffull) == kTagRefused) {
      OnRefusedReadable(static_cast<int>(tag & 0xffffffff));
    } else if (tag == kTagPollerWake) {
      // A poller has work (a frame arrived on a port); the pass after this runs it.
    } else if (tag & kTagDoorbell) {
      // The eventfd is shared with the client: a read that cannot block (client_fd.h).
      DrainEventfd(static_cast<int>(tag & 0xffffffff));
    } else {
      OnClientReadable(static_cast<int>(tag), events[i].events);
    }
  }
}

int Server::EnginePass() {
  // Each context moves at most kPumpBudget WQEs a pass (the rest wait for the next one),
  // and the context that goes first moves on every pass: no client's rings hold up the
  // engine or the others.
  int work = 0;
  size_t n = sessions_.size();
  if (n) {
    size_t first = pump_first_++ % n;
    for (size_t i = 0; i < n; ++i) {
      Session& s = *sessions_[(first + i) % n];
      if (s.NeedsPump()) work += static_cast<int>(s.Pump(kPumpBudget));
    }
  }
  if (!waiting_.empty()) work += ResumeWaiting(NowNs());
  return work + RunPollers();
}

int Server::ResumeWaiting(uint64_t now_ns) {
  int answered = 0;
  for (size_t i = 0; i < waiting_.size();) {
    Waiting w = waiting_[i];
    Reply reply;
    if (!w.handler->Resume(*w.session, now_ns, &reply)) {
      ++i;
      continue;
    }
    waiting_.erase(waiting_.begin() + static_cast<ptrdiff_t>(i));
    ++answered;
    int fd = w.session->sock();
    const std::vector<int> fds = reply.AllFds();
    if (proto::SendMessage(fd, static_cast<proto::Op>(w.op), reply.status, reply.payload.data(),
                           reply.payload.size(), fds.data(), fds.size())) {
      CloseSession(fd);  // erases no other entry: i stays the next one's
      continue;
    }
    // Its next request (already queued, perhaps) is read again.
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = static_cast<uint64_t>(fd);
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
  }
  return answered;
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
      if (idle % kSpinYieldEvery == 0) sched_yield();
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
    // A request waiting for its answer is looked at every tick.
    bool engine_busy = tick_pollers_ || !waiting_.empty();
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
  waiting_.clear();
  for (auto& s : sessions_) {
    s->Detach();
    for (Route& r : routes_) r.handler->OnClose(*s);
  }
  sessions_.clear();
}

}  // namespace vrdma::vdev
