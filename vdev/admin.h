// Administration commands in the style of iproute2's `rdma` tool, run by the daemon for
// vrdmactl and the public C API: `pdev show`, `dev add|del|set|show`, `res show`,
// `stat show`. Text for people, or JSON (-j). A refused command changes nothing.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vdev/registry.h"
#include "vdev/session.h"

namespace vrdma {

struct AdminResult {
  int status = 0;  // 0, or the errno vrdmactl exits with
  std::string text;
};

struct AdminContext {
  Registry* registry = nullptr;
  // The requester may change devices (root or CAP_NET_ADMIN, as iproute2's rdma needs);
  // anyone may look.
  bool may_change = false;
  const std::vector<std::unique_ptr<Session>>* sessions = nullptr;
  // Called before a vdev is deleted: its clients' contexts are closed.
  std::function<void(Vdev*)> before_delete;
  // Called after a vdev is created or its GIDs change (for logs).
  std::function<void(std::string_view event, Vdev*)> notify;
};

AdminResult RunAdmin(const AdminContext& ctx, std::span<const std::string> words, bool json);

}  // namespace vrdma
