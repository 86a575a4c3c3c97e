// Administration commands in the style of iproute2's `rdma` tool, run by the daemon for
// vrdmactl and the public C API: `pdev show`, `dev add|del|set|show` (and `link
// add|del|show`), `res show`, `stat show`. Text for people, or JSON (-j, indented with -p).
// A refused command changes nothing. The grammar is vdev/protocol/admin_call.h's.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "vdev/protocol/channel.h"
#include "vdev/plugins.h"
#include "vdev/registry.h"
#include "vdev/session.h"

namespace vrdma::vdev {

struct AdminResult {
  int status = 0;  // 0, or the errno vrdmactl exits with
  std::string text;
};

struct AdminContext {
  Registry* registry = nullptr;
  // The requester may change devices (root or the admin group: MayAdminister);
  // anyone may look.
  bool may_change = false;
  const std::vector<std::unique_ptr<Session>>* sessions = nullptr;
  // Listings of layers above vdev/ (`res show cm_id`); may be null.
  const std::vector<const ObjectReporter*>* reporters = nullptr;
  const std::vector<const CounterReporter*>* counter_reporters = nullptr;  // stat show
  // What the requester may see; unset: everything (the administrator). Tenants see the
  // vdevs of their network namespace, only their own clients' processes and objects, and
  // pdevs only from the daemon's namespace (docs/security.md).
  std::function<bool(const Vdev&)> may_see_vdev;
  std::function<bool(const Session&)> may_see_session;
  bool may_see_pdevs = true;
  // Called before a vdev is deleted: its clients' contexts are closed.
  std::function<void(Vdev*)> before_delete;
  // Called after a vdev is created or its GIDs change (for logs).
  std::function<void(std::string_view event, Vdev*)> notify;
};

// One kAdmin request as the daemon received it.
struct AdminRequest {
  std::vector<std::string> words;
  bool json = false;
  bool pretty = false;
  // The descriptor that came with the request (`dev add ... netns PATH`'s namespace), or
  // -1. RunAdmin takes it: it is closed or kept by the vdev.
  int netns_fd = -1;
};

// Decodes a kAdmin message: proto::AdminRequest (flags, word count), then exactly that many
// NUL-terminated words filling the payload. At most kMaxAdminWords words; a short, unterminated
// or oversized request, unknown flags or trailing bytes are InvalidArgument.
inline constexpr uint32_t kMaxAdminWords = 64;
absl::StatusOr<AdminRequest> DecodeAdminRequest(const proto::Message& msg);

AdminResult RunAdmin(const AdminContext& ctx, const AdminRequest& request);
AdminResult RunAdmin(const AdminContext& ctx, std::span<const std::string> words, bool json);

// Compact JSON (as the commands write it) indented four spaces a level, as iproute2's -p.
std::string PrettyJson(std::string_view compact);

}  // namespace vrdma::vdev
