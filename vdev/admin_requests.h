// The administration requests (proto::Op kAdmin): vrdmactl's and the public C API's
// words, decoded, checked against the requester's rights, run by admin.h's RunAdmin,
// and answered as text or JSON.
#pragma once

#include <sys/types.h>

#include "vdev/plugins.h"

namespace vrdma::vdev {

class Server;

// Root, or CAP_NET_ADMIN in the client's effective set, may add, change and delete
// devices: the privilege iproute2's rdma tool needs for the same.
bool MayAdminister(pid_t pid, uid_t uid);

class AdminRequests : public RequestHandler {
 public:
  explicit AdminRequests(Server* server) : server_(server) {}
  void Handle(Session& client, proto::Message& msg, Reply* reply) override;

 private:
  Server* server_;
};

}  // namespace vrdma::vdev
