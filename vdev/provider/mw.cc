// Memory windows: ibv_alloc_mw and ibv_dealloc_mw are requests to vrdmad; ibv_bind_mw
// (type 1) posts a BIND_MW work request on the QP, as rxe and mlx5 do, and gives the window
// the rkey it answers to once that request has run. Type 2 windows are bound with
// IBV_WR_BIND_MW / ibv_wr_bind_mw directly (datapath.cc, wr_api.cc).
#include <cerrno>
#include <new>

#include "vdev/provider/provider.h"

namespace vrdma::provider {

ibv_mw* AllocMw(ibv_pd* pd, ibv_mw_type type) {
  if (type != IBV_MW_TYPE_1 && type != IBV_MW_TYPE_2) return Fail<ibv_mw>(EINVAL);
  ContextState& st = StateOf(pd->context);
  proto::AllocMwRequest req{reinterpret_cast<VPd*>(pd)->handle, static_cast<uint32_t>(type)};
  proto::AllocMwReply r;
  if (int err = RpcReply(st, proto::Op::kAllocMw, &req, sizeof req, &r)) return Fail<ibv_mw>(err);
  auto* mw = new (std::nothrow) ibv_mw{};
  if (!mw) {
    proto::HandleMsg undo{r.handle, 0};
    proto::Message ignored;
    (void)Rpc(st, proto::Op::kDeallocMw, &undo, sizeof undo, &ignored);
    return Fail<ibv_mw>(ENOMEM);
  }
  mw->context = pd->context;
  mw->pd = pd;
  mw->rkey = r.rkey;
  mw->handle = r.handle;
  mw->type = type;
  return mw;
}

int DeallocMw(ibv_mw* mw) {
  proto::HandleMsg req{mw->handle, 0};
  proto::Message reply;
  int err = Rpc(StateOf(mw->context), proto::Op::kDeallocMw, &req, sizeof req, &reply);
  // EIO: the device is gone and the window with it.
  if (err && err != EIO) return err;
  delete mw;
  return 0;
}

int BindMw(ibv_qp* qp, ibv_mw* mw, ibv_mw_bind* bind) {
  // libibverbs has checked the type (1), the MR's PD and that an unbind names no range.
  // A type 1 window is addressed by virtual address, never zero-based (IBTA o10-36.2.2).
  if (bind->bind_info.mw_access_flags & IBV_ACCESS_ZERO_BASED) return EINVAL;
  ibv_send_wr wr{};
  wr.wr_id = bind->wr_id;
  wr.opcode = IBV_WR_BIND_MW;
  wr.send_flags = bind->send_flags;
  wr.bind_mw.mw = mw;
  wr.bind_mw.rkey = ibv_inc_rkey(mw->rkey);
  wr.bind_mw.bind_info = bind->bind_info;
  ibv_send_wr* bad = nullptr;
  if (int err = PostSend(qp, &wr, &bad)) return err;
  // The key the window answers to once the bind has run. A bind that fails
  // (IBV_WC_MW_BIND_ERR) leaves the window its old key, which the consumer restores, as on
  // rxe and mlx5.
  mw->rkey = wr.bind_mw.rkey;
  return 0;
}

}  // namespace vrdma::provider
