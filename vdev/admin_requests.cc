#include "vdev/admin_requests.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "vdev/admin.h"
#include "vdev/log.h"
#include "vdev/server.h"

namespace vrdma::vdev {

bool MayAdminister(const Peer& peer, std::optional<gid_t> admin_group) {
  if (peer.uid() == 0) return true;
  return admin_group && peer.InGroup(*admin_group);
}

void AdminRequests::Handle(Session& client, proto::Message& msg, Reply* reply) {
  absl::StatusOr<AdminRequest> req = DecodeAdminRequest(msg);
  if (!req.ok()) {
    std::string text(req.status().message());
    Log(LogLevel::kInfo, "admin_refused", "reason=" + LogQuote(text));
    reply->status = EINVAL;
    reply->payload.assign(text.begin(), text.end());
    reply->payload.push_back('\n');
    reply->payload.push_back(0);
    return;
  }
  AdminContext ctx;
  ctx.registry = &server_->registry();
  ctx.may_change = MayAdminister(client.peer(), admin_group_);
  ctx.sessions = &server_->sessions();
  ctx.reporters = &server_->reporters();
  ctx.counter_reporters = &server_->counter_reporters();
  if (!ctx.may_change) {
    // A tenant sees what it could open or holds: the vdevs of its network namespace, its
    // own processes' objects, pdevs from the daemon's namespace (access.h).
    const Peer& peer = client.peer();
    const Registry& registry = server_->registry();
    NetnsMode mode = registry.netns_mode();
    ctx.may_see_vdev = [&peer, mode](const Vdev& v) { return VisibleTo(v.netns, peer, mode); };
    ctx.may_see_session = [uid = peer.uid()](const Session& s) { return s.uid() == uid; };
    ctx.may_see_pdevs = VisibleTo(registry.netns(), peer, mode);
  }
  ctx.before_delete = [this](Vdev* v) { server_->DetachVdev(v); };
  ctx.notify = [](std::string_view event, Vdev* v) {
    Log(LogLevel::kInfo, event,
        absl::StrCat("dev=", v->name, " pdev=", v->pdev->name, " netdev=", v->netdev));
  };
  AdminResult r = RunAdmin(ctx, *req);
  if (r.status) {
    Log(LogLevel::kInfo, "admin_refused",
        absl::StrCat("command=", LogQuote(absl::StrJoin(req->words, " ")), " errno=", r.status));
  }
  reply->status = r.status;
  reply->payload.assign(r.text.begin(), r.text.end());
  reply->payload.push_back(0);
}

}  // namespace vrdma::vdev
