// Flow steering rules of raw packet QPs (ibv_create_flow, ibv_destroy_flow): the rule goes
// to vrdmad as the application laid it out (struct ibv_flow_attr and its specs), which
// checks it; the provider only finds and bounds its length.
#include <cerrno>
#include <cstring>
#include <new>
#include <vector>

#include "vdev/provider/provider.h"

namespace vrdma::provider {

ibv_flow* CreateFlow(ibv_qp* ibqp, ibv_flow_attr* attr) {
  if (!attr) return Fail<ibv_flow>(EINVAL);
  // The rule's length is its specs' (each says its size), as libibverbs' command walks
  // them: attr->size is not kept by every application (pyverbs leaves it the header's).
  const auto* bytes = reinterpret_cast<const uint8_t*>(attr);
  size_t len = sizeof(ibv_flow_attr);
  for (uint8_t i = 0; i < attr->num_of_specs; ++i) {
    uint16_t size;
    std::memcpy(&size, bytes + len + sizeof(uint32_t), sizeof size);  // after the type
    if (size < sizeof(uint32_t) + sizeof size || len + size > proto::kMaxFlowAttrSize) {
      return Fail<ibv_flow>(EINVAL);
    }
    len += size;
  }
  proto::CreateFlowRequest req{QpOf(ibqp)->handle, static_cast<uint32_t>(len)};
  std::vector<uint8_t> buf(sizeof req + len);
  std::memcpy(buf.data(), &req, sizeof req);
  std::memcpy(buf.data() + sizeof req, attr, len);
  proto::HandleMsg r;
  if (int err =
          RpcReply(StateOf(ibqp->context), proto::Op::kCreateFlow, buf.data(), buf.size(), &r)) {
    return Fail<ibv_flow>(err);
  }
  auto* flow = new (std::nothrow) ibv_flow{};
  if (!flow) return Fail<ibv_flow>(ENOMEM);
  flow->context = ibqp->context;
  flow->handle = r.handle;
  return flow;
}

int DestroyFlow(ibv_flow* flow) {
  proto::HandleMsg req{flow->handle, 0};
  proto::Message reply;
  int err = Rpc(StateOf(flow->context), proto::Op::kDestroyFlow, &req, sizeof req, &reply);
  if (err && err != EIO) return err;
  delete flow;
  return 0;
}

}  // namespace vrdma::provider
