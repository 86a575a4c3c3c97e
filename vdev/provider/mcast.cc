// Multicast groups of UD QPs (ibv_attach_mcast, ibv_detach_mcast): vrdmad checks the QP and
// the GID and keeps the group's members.
#include <cstring>

#include "vdev/provider/provider.h"

namespace vrdma::provider {

namespace {

int McastRequest(proto::Op op, ibv_qp* qp, const ibv_gid* gid, uint16_t lid) {
  proto::McastRequest req{};
  req.qp = QpOf(qp)->handle;
  req.lid = lid;
  std::memcpy(req.gid, gid->raw, 16);
  proto::Message reply;
  return Rpc(StateOf(qp->context), op, &req, sizeof req, &reply);
}

}  // namespace

int AttachMcast(ibv_qp* qp, const ibv_gid* gid, uint16_t lid) {
  return McastRequest(proto::Op::kAttachMcast, qp, gid, lid);
}

int DetachMcast(ibv_qp* qp, const ibv_gid* gid, uint16_t lid) {
  return McastRequest(proto::Op::kDetachMcast, qp, gid, lid);
}

}  // namespace vrdma::provider
