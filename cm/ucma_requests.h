// The RDMA-CM uAPI (rdma/rdma_user_cm.h) as vrdmad answers it: the requests kCmOpen and
// kCmCommand (vdev/protocol/protocol.h) of a client's CM file, decoded as the kernel's
// ucma.c decodes the commands librdmacm writes to /dev/infiniband/rdma_cm (copy, then
// check), and handed to the connection manager.
#pragma once

#include "cm/rdma_cm.h"
#include "vdev/plugins.h"

namespace vrdma::cm {

class UcmaRequests : public vdev::RequestHandler {
 public:
  explicit UcmaRequests(RdmaCm* cm) : cm_(cm) {}
  void Handle(vdev::Session& client, proto::Message& msg, vdev::Reply* reply) override;
  void OnClose(vdev::Session& client) override { cm_->CloseFile(client); }

 private:
  void Open(vdev::Session& client, proto::Message& msg, vdev::Reply* reply);
  void Command(vdev::Session& client, const proto::Message& msg, vdev::Reply* reply);

  RdmaCm* cm_;
};

}  // namespace vrdma::cm
