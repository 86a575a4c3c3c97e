// vrdmad's event loop: the control socket (client connections, requests routed by
// operation to the handlers wired in), the interface watch, and the pollers (the pdevs'
// engines, and whatever the layers above add), on one thread.
//
// One thread owns everything, so no lock is taken anywhere. Each pass moves the WQEs
// clients posted into the engines, runs the pollers, and delivers their events. When
// there is nothing to do the loop backs off: spins, then yields, then sleeps in epoll
// until a doorbell, a request, a poller's wake-up or the next engine timer (DESIGN.md,
// "Engine").
//
// Nothing a client asks makes the loop wait: a request that needs something from outside
// (a neighbour the kernel resolves) is answered later, while that client alone waits for
// its reply; and one pass moves at most kPumpBudget WQEs of each context, the first
// context of a pass taken in turn.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "vdev/plugins.h"
#include "vdev/registry.h"
#include "vdev/session.h"

namespace vrdma::vdev {

class NetlinkWatch;

struct ServerOptions {
  std::string socket_path;
  // Client connections of users other than root, in all (0: from the descriptor limit)
  // and per user (0: a quarter of that). Root always gets in: the administrator's way in
  // while tenants hold every connection they may (docs/security.md).
  uint32_t max_connections = 0;
  uint32_t max_connections_per_user = 0;
  // The daemon's mappings and descriptors a user's objects may hold (daemon_budget.h;
  // 0: a quarter of what the system leaves for all clients).
  uint64_t max_mappings_per_user = 0;
  uint64_t max_descriptors_per_user = 0;
};

class Server {
 public:
  // The most WQEs one client context moves into the engine in one pass.
  static constexpr uint32_t kPumpBudget = 256;

  static absl::StatusOr<std::unique_ptr<Server>> Create(const ServerOptions& options,
                                                        std::unique_ptr<Registry> registry);
  ~Server();

  // Requests with operations in [first_op, last_op] go to `handler`. Refuses a range
  // that overlaps one already wired.
  absl::Status AddHandler(uint16_t first_op, uint16_t last_op,
                          std::unique_ptr<RequestHandler> handler);
  // Runs `poller` on every pass, after the clients' queues are drained.
  void AddPoller(std::unique_ptr<Poller> poller);
  // Object listings of a layer above for `res show TYPE` (the reporter must outlive the
  // server's requests: a poller the server owns).
  void AddReporter(const ObjectReporter* reporter) { reporters_.push_back(reporter); }
  const std::vector<const ObjectReporter*>& reporters() const { return reporters_; }
  void AddCounterReporter(const CounterReporter* r) { counter_reporters_.push_back(r); }
  const std::vector<const CounterReporter*>& counter_reporters() const {
    return counter_reporters_;
  }

  // Runs until Stop(); clients then get IBV_EVENT_DEVICE_FATAL and are disconnected.
  void Run();
  // Async-signal-safe.
  void Stop();
  Registry& registry() { return *registry_; }
  // Every client connection, in connection order.
  const std::vector<std::unique_ptr<Session>>& sessions() const { return sessions_; }
  // Closes every context open on `vdev` (it is about to be deleted): each gets
  // IBV_EVENT_DEVICE_FATAL and its objects are freed.
  void DetachVdev(const Vdev* vdev);

 private:
  struct Route {
    uint16_t first_op;
    uint16_t last_op;
    std::unique_ptr<RequestHandler> handler;
  };

  Server() = default;
  void Accept();
  // 0, or the errno a new connection of `peer` is refused with (and why, in *why).
  int AdmissionErrno(const Peer& peer, std::string* why) const;
  // Answers the refused connection's first request with `err`, then closes it.
  void Refuse(int fd, int err, std::string why);
  void OnRefusedReadable(int fd);
  void ExpireRefused(bool all);
  void OnClientReadable(int fd, uint32_t events);
  // Sends the replies of requests answered later that are ready; returns how many.
  int ResumeWaiting(uint64_t now_ns);
  void CloseSession(int fd);
  // The interface changes `watch` reports, for the vdevs whose netdev is in `netns`.
  void OnNetlink(NetlinkWatch& watch, const NamespaceId& netns);
  // One rtnetlink watch per other network namespace a vdev's netdev is in (a
  // container's), made when the first such vdev is added and dropped with the last one
  // (a watch's socket keeps its namespace alive).
  void WatchNamespaces();
  void ServiceControl(int timeout_ms);
  int EnginePass();
  // One pass of every poller; no client queue.
  int RunPollers();
  void Shutdown();

  ServerOptions options_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<NetlinkWatch> netlink_;
  struct NetnsWatch {
    std::shared_ptr<Netns> netns;
    std::unique_ptr<NetlinkWatch> watch;
  };
  std::map<uint64_t, NetnsWatch> netns_watches_;  // by namespace cookie
  uint64_t watched_generation_ = ~uint64_t{0};
  std::vector<std::unique_ptr<Session>> sessions_;
  std::vector<Route> routes_;
  // Connections whose request a handler answers later (kReplyLater): nothing more is read
  // from them until it is sent. CloseSession drops a session's entry before freeing it.
  struct Waiting {
    Session* session;
    uint16_t op;
    RequestHandler* handler;
  };
  std::vector<Waiting> waiting_;
  std::vector<std::unique_ptr<Poller>> pollers_;
  std::vector<const ObjectReporter*> reporters_;
  std::vector<const CounterReporter*> counter_reporters_;
  struct Refused {
    int fd;
    int err;
    std::string why;
    uint64_t deadline_ns;
  };
  std::vector<Refused> refused_;
  std::unordered_map<uid_t, uint32_t> connections_per_user_;  // users other than root
  uint32_t user_connections_ = 0;
  uint64_t refused_count_ = 0;
  // Kept open to be closed when accept() finds no descriptor left, so that even then the
  // connection is taken and closed rather than left to retry forever.
  int spare_fd_ = -1;
  int epoll_fd_ = -1;
  int listen_fd_ = -1;
  int stop_fd_ = -1;
  // A poller's work can arrive without waking the loop: sleep in short ticks.
  bool tick_pollers_ = false;
  size_t pump_first_ = 0;  // the pass's first context to pump, taken in turn
  std::atomic<bool> stopping_{false};
};

}  // namespace vrdma::vdev
