#include "vdev/admin_requests.h"

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "vdev/admin.h"
#include "vdev/log.h"
#include "vdev/server.h"

namespace vrdma::vdev {

bool MayAdminister(pid_t pid, uid_t uid) {
  if (uid == 0) return true;
  FILE* f = std::fopen(absl::StrCat("/proc/", pid, "/status").c_str(), "re");
  if (!f) return false;
  char line[256];
  unsigned long long caps = 0;
  while (std::fgets(line, sizeof line, f)) {
    if (std::sscanf(line, "CapEff: %llx", &caps) == 1) break;
  }
  std::fclose(f);
  constexpr int kCapNetAdmin = 12;  // linux/capability.h
  return caps & (1ull << kCapNetAdmin);
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
  ctx.may_change = MayAdminister(client.pid(), client.uid());
  ctx.sessions = &server_->sessions();
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
