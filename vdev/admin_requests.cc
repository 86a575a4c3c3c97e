#include "vdev/admin_requests.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "vdev/admin.h"
#include "vdev/log.h"
#include "vdev/nldev/nldev.h"
#include "vdev/server.h"
#include "vdev/session_util.h"

namespace vrdma::vdev {

namespace {

// `text` in a memfd sealed against every change, for an answer longer than a message.
// Returns the descriptor, or -1.
int TextMemfd(const std::string& text) {
  int fd = memfd_create("vrdma-admin-reply", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return -1;
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n <= 0) {
      close(fd);
      return -1;
    }
    done += static_cast<size_t>(n);
  }
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

bool MayAdminister(const Peer& peer, std::optional<gid_t> admin_group) {
  if (peer.uid() == 0) return true;
  return admin_group && peer.InGroup(*admin_group);
}

AdminContext AdminRequests::ContextFor(const Session& client) {
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
  return ctx;
}

void AdminRequests::Handle(Session& client, proto::Message& msg, Reply* reply) {
  if (msg.header.op == static_cast<uint16_t>(proto::Op::kRdmaNetlink)) {
    HandleNetlink(client, msg, reply);
    return;
  }
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
  AdminContext ctx = ContextFor(client);
  req->netns_fd = msg.TakeFd(0);  // -1 when none came
  AdminResult r = RunAdmin(ctx, *req);
  if (r.status) {
    Log(LogLevel::kInfo, "admin_refused",
        absl::StrCat("command=", LogQuote(absl::StrJoin(req->words, " ")), " errno=", r.status));
  }
  reply->status = r.status;
  if (r.text.size() + 1 > proto::kMaxMessage - sizeof(proto::MsgHeader)) {
    int fd = TextMemfd(r.text);
    if (fd >= 0) {
      reply->owned_fds.push_back(fd);
      return;
    }
    reply->status = ENOMEM;
    r.text = "vrdmad: the answer is longer than a message and no memfd could hold it\n";
  }
  reply->payload.assign(r.text.begin(), r.text.end());
  reply->payload.push_back(0);
}

void AdminRequests::HandleNetlink(Session& client, proto::Message& msg, Reply* reply) {
  proto::RdmaNetlinkRequest req;
  if (!msg.Copy(&req) || msg.payload.size() - sizeof req > proto::kMaxNetlinkDatagram) {
    reply->status = EINVAL;
    return;
  }
  AdminContext ctx = ContextFor(client);
  nldev::Requester who;
  who.portid = req.portid;
  who.cap_ack = req.flags & proto::kNetlinkCapAck;
  who.ext_ack = req.flags & proto::kNetlinkExtAck;
  who.peer = &client.peer();
  std::vector<std::vector<uint8_t>> datagrams =
      nldev::Answer(ctx, who, std::span<const uint8_t>(msg.payload).subspan(sizeof req));
  proto::RdmaNetlinkReply head{static_cast<uint32_t>(datagrams.size()), 0};
  std::vector<uint8_t> body;
  constexpr size_t kRoom = proto::kMaxMessage - sizeof(proto::MsgHeader) - sizeof head;
  for (size_t i = req.first; i < datagrams.size(); ++i) {
    const std::vector<uint8_t>& d = datagrams[i];
    if (body.size() + sizeof(uint32_t) + d.size() > kRoom) break;
    session_util::Append(&body, static_cast<uint32_t>(d.size()));
    body.insert(body.end(), d.begin(), d.end());
    ++head.count;
  }
  reply->payload.clear();
  session_util::Append(&reply->payload, head);
  reply->payload.insert(reply->payload.end(), body.begin(), body.end());
}

}  // namespace vrdma::vdev
