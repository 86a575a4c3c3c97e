// The administration requests (proto::Op kAdmin): vrdmactl's and the public C API's
// words, decoded, checked against the requester's rights, run by admin.h's RunAdmin,
// and answered as text or JSON; and RDMA netlink (proto::Op kRdmaNetlink), answered with
// the same rights of seeing (vdev/nldev/nldev.h).
#pragma once

#include <sys/types.h>

#include <optional>

#include "vdev/admin.h"
#include "vdev/peer.h"
#include "vdev/plugins.h"

namespace vrdma::vdev {

class Server;

// Who may add, change and delete devices: root of the initial user namespace, or a member
// of the configured admin group, by the credentials the kernel recorded at connect()
// (SO_PEERCRED, SO_PEERGROUPS, in the daemon's user namespace). Never capabilities read
// later from /proc: those of a user namespace are not capabilities over the machine, and
// a process can exec a setuid program after connecting (docs/security.md).
bool MayAdminister(const Peer& peer, std::optional<gid_t> admin_group);

class AdminRequests : public RequestHandler {
 public:
  AdminRequests(Server* server, std::optional<gid_t> admin_group)
      : server_(server), admin_group_(admin_group) {}
  void Handle(Session& client, proto::Message& msg, Reply* reply) override;

 private:
  // What the client may see and do (admin.h).
  AdminContext ContextFor(const Session& client);
  // proto::Op::kRdmaNetlink: one netlink datagram answered (vdev/nldev/nldev.h).
  void HandleNetlink(Session& client, proto::Message& msg, Reply* reply);
  Server* server_;
  std::optional<gid_t> admin_group_;
};

}  // namespace vrdma::vdev
