// vrdmad's event loop: the control socket (client and admin requests), the interface
// watch, and the engine passes of every pdev, on one thread.
//
// One thread owns everything, so no lock is taken anywhere. Each pass moves the WQEs
// clients posted into the engines, runs the engines, and delivers their events. When
// there is nothing to do the loop backs off: spins, then yields, then sleeps in epoll
// until a doorbell, a request or the next engine timer (DESIGN.md, "Engine").
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "vdev/registry.h"
#include "vdev/session.h"

namespace vrdma {

class NetlinkWatch;

struct ServerOptions {
  std::string socket_path;
};

class Server {
 public:
  static absl::StatusOr<std::unique_ptr<Server>> Create(const ServerOptions& options,
                                                        std::unique_ptr<Registry> registry);
  ~Server();

  // Runs until Stop(); clients then get IBV_EVENT_DEVICE_FATAL and are disconnected.
  void Run();
  // Async-signal-safe.
  void Stop();
  Registry& registry() { return *registry_; }

 private:
  Server() = default;
  void Accept();
  void OnClientReadable(int fd);
  void CloseSession(int fd);
  void OnNetlink();
  void ServiceControl(int timeout_ms);
  int EnginePass();
  // One pass of every pdev's engine (and its async events); no client queue.
  int PollDevices();
  void Shutdown();

  ServerOptions options_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<NetlinkWatch> netlink_;
  std::vector<std::unique_ptr<Session>> sessions_;
  int epoll_fd_ = -1;
  int listen_fd_ = -1;
  int stop_fd_ = -1;
  // A port receives from a wire but cannot wake the loop: sleep in short ticks.
  bool tick_ports_ = false;
  std::atomic<bool> stopping_{false};
};

}  // namespace vrdma
