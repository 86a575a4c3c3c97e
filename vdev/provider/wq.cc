// Receive-side scaling: receive work queues (ibv_create_wq, ibv_modify_wq,
// ibv_post_wq_recv, ibv_destroy_wq) and their indirection tables
// (ibv_create_rwq_ind_table). A work queue is, on both sides, an SRQ of a type of its own
// completing on its CQ; an RSS QP (objects.cc, CreateQpEx) names a table.
#include <cerrno>
#include <cstring>
#include <new>
#include <vector>

#include "vdev/provider/provider.h"

namespace vrdma::provider {

namespace {

struct VWq {
  ibv_wq wq;
  ibv_srq* srq;  // its queue (NewSrq with `wq`)
};

VWq* WqOf(ibv_wq* wq) { return reinterpret_cast<VWq*>(wq); }

int PostWqRecv(ibv_wq* wq, ibv_recv_wr* wr, ibv_recv_wr** bad) {
  return PostSrqRecv(WqOf(wq)->srq, wr, bad);
}

}  // namespace

ibv_wq* CreateWq(ibv_context* ctx, ibv_wq_init_attr* attr) {
  if (attr->wq_type != IBV_WQT_RQ || !attr->pd || !attr->cq) return Fail<ibv_wq>(EINVAL);
  // Create flags (CVLAN stripping, scatter FCS, ...) are not offered.
  if ((attr->comp_mask & IBV_WQ_INIT_ATTR_FLAGS) && attr->create_flags) {
    return Fail<ibv_wq>(EOPNOTSUPP);
  }
  if (attr->comp_mask & ~static_cast<uint32_t>(IBV_WQ_INIT_ATTR_FLAGS)) {
    return Fail<ibv_wq>(EOPNOTSUPP);
  }
  auto* w = new (std::nothrow) VWq{};
  if (!w) return Fail<ibv_wq>(ENOMEM);
  ibv_srq_attr sa{attr->max_wr, attr->max_sge, 0};
  w->srq = NewSrq(attr->pd, &sa, nullptr, attr->cq, /*wq=*/true);
  if (!w->srq) {
    int err = errno;
    delete w;
    return Fail<ibv_wq>(err);
  }
  ibv_wq& q = w->wq;
  q.context = ctx;
  q.wq_context = attr->wq_context;
  q.pd = attr->pd;
  q.cq = attr->cq;
  q.wq_num = w->srq->handle;
  q.handle = w->srq->handle;
  q.state = IBV_WQS_RESET;
  q.wq_type = IBV_WQT_RQ;
  q.post_recv = PostWqRecv;
  attr->max_wr = sa.max_wr;
  attr->max_sge = sa.max_sge;
  return &q;
}

int ModifyWq(ibv_wq* wq, ibv_wq_attr* attr) {
  if (attr->attr_mask & ~static_cast<uint32_t>(IBV_WQ_ATTR_STATE | IBV_WQ_ATTR_CURR_STATE)) {
    return EOPNOTSUPP;  // flags (CVLAN stripping, ...)
  }
  if ((attr->attr_mask & IBV_WQ_ATTR_CURR_STATE) && attr->curr_wq_state != wq->state) {
    return EINVAL;
  }
  if (!(attr->attr_mask & IBV_WQ_ATTR_STATE)) return 0;
  proto::ModifyWqRequest req{wq->handle, static_cast<uint32_t>(attr->wq_state)};
  proto::Message reply;
  if (int err = Rpc(StateOf(wq->context), proto::Op::kModifyWq, &req, sizeof req, &reply)) {
    return err;
  }
  wq->state = attr->wq_state;
  return 0;
}

int DestroyWq(ibv_wq* wq) {
  VWq* w = WqOf(wq);
  if (int err = DestroySrq(w->srq)) return err;  // EBUSY while a table names it
  delete w;
  return 0;
}

ibv_rwq_ind_table* CreateRwqIndTable(ibv_context* ctx, ibv_rwq_ind_table_init_attr* attr) {
  if (attr->comp_mask || attr->log_ind_tbl_size > proto::kMaxLogIndTableSize || !attr->ind_tbl) {
    return Fail<ibv_rwq_ind_table>(EINVAL);
  }
  const size_t n = size_t{1} << attr->log_ind_tbl_size;
  proto::CreateIndTableRequest req{attr->log_ind_tbl_size, 0};
  std::vector<uint8_t> buf(sizeof req + n * sizeof(uint32_t));
  std::memcpy(buf.data(), &req, sizeof req);
  for (size_t i = 0; i < n; ++i) {
    if (!attr->ind_tbl[i]) return Fail<ibv_rwq_ind_table>(EINVAL);
    uint32_t h = attr->ind_tbl[i]->handle;
    std::memcpy(buf.data() + sizeof req + i * sizeof h, &h, sizeof h);
  }
  proto::HandleMsg r;
  if (int err = RpcReply(StateOf(ctx), proto::Op::kCreateIndTable, buf.data(), buf.size(), &r)) {
    return Fail<ibv_rwq_ind_table>(err);
  }
  auto* t = new (std::nothrow) ibv_rwq_ind_table{};
  if (!t) return Fail<ibv_rwq_ind_table>(ENOMEM);
  t->context = ctx;
  t->ind_tbl_handle = static_cast<int>(r.handle);
  t->ind_tbl_num = static_cast<int>(r.handle);
  return t;
}

int DestroyRwqIndTable(ibv_rwq_ind_table* table) {
  proto::HandleMsg req{static_cast<uint32_t>(table->ind_tbl_handle), 0};
  proto::Message reply;
  int err = Rpc(StateOf(table->context), proto::Op::kDestroyIndTable, &req, sizeof req, &reply);
  if (err && err != EIO) return err;  // EBUSY: a QP uses it
  delete table;
  return 0;
}

}  // namespace vrdma::provider
