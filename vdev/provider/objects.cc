// Control verbs: PD, MR, AH, CQ, SRQ and QP creation, modification and destruction,
// each a request to vrdmad.
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

#include "vdev/provider/mr_share.h"
#include "vdev/provider/provider.h"

namespace vrdma::provider {

namespace {

using proto::Op;

uint32_t HandleOf(ibv_pd* pd) { return reinterpret_cast<VPd*>(pd)->handle; }
VSrq* SrqOf(ibv_srq* srq) { return reinterpret_cast<VSrq*>(srq); }

// ---- PD -----------------------------------------------------------------------------------

ibv_pd* AllocPd(ibv_context* ctx) {
  proto::HandleMsg r;
  if (int err = RpcReply(StateOf(ctx), Op::kAllocPd, nullptr, 0, &r)) return Fail<ibv_pd>(err);
  auto* pd = new (std::nothrow) VPd{};
  if (!pd) return Fail<ibv_pd>(ENOMEM);
  pd->handle = r.handle;
  pd->pd.handle = r.handle;
  return &pd->pd;
}

int DeallocPd(ibv_pd* pd) {
  if (std::optional<int> done = DeallocParentDomain(pd)) return *done;
  proto::HandleMsg req{HandleOf(pd), 0};
  proto::Message reply;
  int err = Rpc(StateOf(pd->context), Op::kDeallocPd, &req, sizeof req, &reply);
  // EIO: the device is gone and the PD with it; freeing succeeds, as with the others.
  if (err && err != EIO) return err;
  delete reinterpret_cast<VPd*>(pd);
  return 0;
}

// ---- MR -----------------------------------------------------------------------------------

// A registration request followed by the segments of its pages (proto::MrSegment).
template <typename Request>
std::vector<uint8_t> WithSegments(const Request& req, const SharedPages& pages) {
  std::vector<uint8_t> buf(sizeof req + pages.segments.size() * sizeof(proto::MrSegment));
  std::memcpy(buf.data(), &req, sizeof req);
  std::memcpy(buf.data() + sizeof req, pages.segments.data(),
              pages.segments.size() * sizeof(proto::MrSegment));
  return buf;
}

ibv_mr* RegMr(ibv_pd* pd, void* addr, size_t length, uint64_t iova, int access) {
  // NULL and SIZE_MAX ask for an implicit on-demand MR (the whole address space): not
  // offered (odp_caps has no IBV_ODP_SUPPORT_IMPLICIT), EINVAL as on mlx5 without it.
  if (length == 0 || !addr) return Fail<ibv_mr>(EINVAL);
  SharedPages pages;
  if (int err = ShareRange(reinterpret_cast<uintptr_t>(addr), length, &pages)) {
    return Fail<ibv_mr>(err);
  }
  proto::RegMrRequest req{};
  req.pd = HandleOf(pd);
  req.access = static_cast<uint32_t>(access);
  req.addr = reinterpret_cast<uintptr_t>(addr);
  req.length = length;
  req.iova = iova;
  req.page_base = pages.page_base;
  req.page_length = pages.page_length;
  req.nsegments = static_cast<uint32_t>(pages.segments.size());
  std::vector<uint8_t> buf = WithSegments(req, pages);
  proto::RegMrReply r;
  int err = RpcReply(StateOf(pd->context), Op::kRegMr, buf.data(), buf.size(), &r, pages.fds.data(),
                     pages.fds.size());
  if (err) {
    ReleasePages(pages.inodes);
    return Fail<ibv_mr>(err);
  }
  auto* mr = new (std::nothrow) VMr{};
  if (!mr) return Fail<ibv_mr>(ENOMEM);
  mr->handle = r.handle;
  mr->memfd_inodes = std::move(pages.inodes);
  mr->vmr.mr_type = IBV_MR_TYPE_MR;
  mr->vmr.access = access;
  mr->vmr.ibv_mr.handle = r.handle;
  mr->vmr.ibv_mr.lkey = r.lkey;
  mr->vmr.ibv_mr.rkey = r.rkey;
  return &mr->vmr.ibv_mr;
}

int DeregMr(verbs_mr* vmr) {
  VMr* mr = reinterpret_cast<VMr*>(vmr);
  proto::HandleMsg req{mr->handle, 0};
  proto::Message reply;
  int err = Rpc(StateOf(vmr->ibv_mr.context), Op::kDeregMr, &req, sizeof req, &reply);
  if (err && err != EIO) return err;
  ReleasePages(mr->memfd_inodes);
  delete mr;
  return 0;
}

// ibv_rereg_mr(3): 0, or an IBV_REREG_MR_ERR_* code with errno set. The daemon checks
// everything before it changes the MR: a refusal leaves the MR as it was.
int ReregMr(verbs_mr* vmr, int flags, ibv_pd* pd, void* addr, size_t length, int access) {
  VMr* mr = reinterpret_cast<VMr*>(vmr);
  SharedPages pages;
  if (flags & IBV_REREG_MR_CHANGE_TRANSLATION) {
    if (int err = ShareRange(reinterpret_cast<uintptr_t>(addr), length, &pages)) {
      errno = err;
      return IBV_REREG_MR_ERR_INPUT;
    }
  }
  if ((flags & IBV_REREG_MR_CHANGE_PD) && !pd) {
    ReleasePages(pages.inodes);
    errno = EINVAL;
    return IBV_REREG_MR_ERR_INPUT;
  }
  proto::ReregMrRequest req{};
  req.handle = mr->handle;
  req.flags = static_cast<uint32_t>(flags);
  req.pd = (flags & IBV_REREG_MR_CHANGE_PD) ? HandleOf(pd) : 0;
  req.access = static_cast<uint32_t>(access);
  req.addr = reinterpret_cast<uintptr_t>(addr);
  req.length = length;
  req.page_base = pages.page_base;
  req.page_length = pages.page_length;
  req.nsegments = static_cast<uint32_t>(pages.segments.size());
  std::vector<uint8_t> buf = WithSegments(req, pages);
  proto::RegMrReply r;
  int err = RpcReply(StateOf(vmr->ibv_mr.context), Op::kReregMr, buf.data(), buf.size(), &r,
                     pages.fds.data(), pages.fds.size());
  if (err) {
    ReleasePages(pages.inodes);
    errno = err;
    return IBV_REREG_MR_ERR_CMD;
  }
  if (flags & IBV_REREG_MR_CHANGE_TRANSLATION) {
    ReleasePages(mr->memfd_inodes);  // the old pages are the process's own again
    mr->memfd_inodes = std::move(pages.inodes);
  }
  if (flags & IBV_REREG_MR_CHANGE_ACCESS) vmr->access = access;
  vmr->ibv_mr.lkey = r.lkey;
  vmr->ibv_mr.rkey = r.rkey;
  return 0;
}

// ---- AH -----------------------------------------------------------------------------------

ibv_ah* CreateAh(ibv_pd* pd, ibv_ah_attr* attr) {
  proto::CreateAhRequest req{};
  req.pd = HandleOf(pd);
  req.attr = *attr;
  proto::HandleMsg r;
  if (int err = RpcReply(StateOf(pd->context), Op::kCreateAh, &req, sizeof req, &r)) {
    return Fail<ibv_ah>(err);
  }
  auto* ah = static_cast<VAh*>(calloc(1, sizeof(VAh)));
  if (!ah) return nullptr;
  ah->handle = r.handle;
  ah->ah.handle = r.handle;
  return &ah->ah;
}

int DestroyAh(ibv_ah* ah) {
  VAh* a = reinterpret_cast<VAh*>(ah);
  proto::HandleMsg req{a->handle, 0};
  proto::Message reply;
  int err = Rpc(StateOf(ah->context), Op::kDestroyAh, &req, sizeof req, &reply);
  if (err && err != EIO) return err;
  free(a);
  return 0;
}

// ---- CQ -----------------------------------------------------------------------------------

VCq* NewCq(ibv_context* ctx, int cqe, ibv_comp_channel* channel, uint32_t flags = 0) {
  ContextState& st = StateOf(ctx);
  if (cqe < 1) return Fail<VCq>(EINVAL);
  int wfd = -1;
  if (channel) {
    std::lock_guard<std::mutex> lock(st.channel_mutex);
    auto it = st.channel_write_fds.find(channel->fd);
    if (channel->context != ctx || it == st.channel_write_fds.end()) return Fail<VCq>(EINVAL);
    wfd = it->second;
    if (wfd < 0) return Fail<VCq>(EIO);  // the daemon is gone
  }
  auto* cq = static_cast<VCq*>(calloc(1, sizeof(VCq)));
  if (!cq) return nullptr;
  // The daemon echoes user_handle in completion events: libibverbs reads it as the
  // struct ibv_cq *, which is where our VCq starts.
  proto::CreateCqRequest req{static_cast<uint32_t>(cqe), channel ? 1u : 0u,
                             reinterpret_cast<uintptr_t>(cq), flags, 0};
  proto::CreateCqReply r;
  proto::Message reply;
  int err = RpcReply(st, Op::kCreateCq, &req, sizeof req, &r, channel ? &wfd : nullptr,
                     channel ? 1 : 0, &reply);
  void* map = nullptr;
  if (!err)
    map = reply.fd_count() == 1 ? MapShared(reply.TakeFd(0), r.shm_size, r.shm_offset) : nullptr;
  if (!map) {
    free(cq);
    return Fail<VCq>(err ? err : EPROTO);
  }
  pthread_spin_init(&cq->lock, PTHREAD_PROCESS_PRIVATE);
  cq->handle = r.handle;
  cq->device_fatal = FatalFlagOf(ctx);
  cq->header = static_cast<proto::CqShmHeader*>(map);
  cq->cqes = reinterpret_cast<proto::Cqe*>(static_cast<uint8_t*>(map) + sizeof(proto::CqShmHeader));
  cq->map_size = r.shm_size;
  cq->depth = r.depth;
  cq->consumed = 0;
  cq->vcq.cq.handle = r.handle;
  cq->vcq.cq.cqe = static_cast<int>(r.depth);
  cq->vcq.cq.context = ctx;
  return cq;
}

// ibv_create_cq(3): comp_vector is in [0, num_comp_vectors).
bool ValidCompVector(ibv_context* ctx, long comp_vector) {
  return comp_vector >= 0 && comp_vector < ctx->num_comp_vectors;
}

ibv_cq* CreateCq(ibv_context* ctx, int cqe, ibv_comp_channel* channel, int comp_vector) {
  if (!ValidCompVector(ctx, comp_vector)) return Fail<ibv_cq>(EINVAL);
  VCq* cq = NewCq(ctx, cqe, channel);
  if (!cq) return nullptr;
  cq->vcq.cq_ex.read_opcode = nullptr;
  return &cq->vcq.cq;
}

ibv_cq_ex* CreateCqEx(ibv_context* ctx, ibv_cq_init_attr_ex* attr) {
  // Every field a software device can fill, and the completion time on the device clock
  // (proto::kCqTimestamps). No wallclock timestamps, VLAN, flow tag or tag matching.
  constexpr uint64_t kSupportedWc =
      IBV_WC_EX_WITH_BYTE_LEN | IBV_WC_EX_WITH_IMM | IBV_WC_EX_WITH_QP_NUM | IBV_WC_EX_WITH_SRC_QP |
      IBV_WC_EX_WITH_SLID | IBV_WC_EX_WITH_SL | IBV_WC_EX_WITH_DLID_PATH_BITS |
      IBV_WC_EX_WITH_COMPLETION_TIMESTAMP;
  if (attr->wc_flags & ~kSupportedWc) return Fail<ibv_cq_ex>(EOPNOTSUPP);
  if (attr->comp_mask &
      ~static_cast<uint32_t>(IBV_CQ_INIT_ATTR_MASK_FLAGS | IBV_CQ_INIT_ATTR_MASK_PD)) {
    return Fail<ibv_cq_ex>(EOPNOTSUPP);
  }
  // A CQ in a parent domain (mlx5: a parent domain, never a plain PD; EINVAL otherwise).
  if ((attr->comp_mask & IBV_CQ_INIT_ATTR_MASK_PD) &&
      (!attr->parent_domain || !reinterpret_cast<VPd*>(attr->parent_domain)->protection ||
       attr->parent_domain->context != ctx)) {
    return Fail<ibv_cq_ex>(EINVAL);
  }
  if (!ValidCompVector(ctx, attr->comp_vector)) return Fail<ibv_cq_ex>(EINVAL);
  uint32_t flags = attr->wc_flags & IBV_WC_EX_WITH_COMPLETION_TIMESTAMP ? proto::kCqTimestamps : 0;
  VCq* cq = NewCq(ctx, static_cast<int>(attr->cqe), attr->channel, flags);
  if (!cq) return nullptr;
  InstallCqExOps(cq, attr->wc_flags);
  return &cq->vcq.cq_ex;
}

int DestroyCq(ibv_cq* ibcq) {
  VCq* cq = CqOf(ibcq);
  proto::HandleMsg req{cq->handle, 0};
  proto::Message reply;
  int err = Rpc(StateOf(ibcq->context), Op::kDestroyCq, &req, sizeof req, &reply);
  if (err && err != EIO) return err;
  munmap(cq->header, cq->map_size);
  pthread_spin_destroy(&cq->lock);
  free(cq);
  return 0;
}

int ResizeCq(ibv_cq* ibcq, int cqe) {
  VCq* cq = CqOf(ibcq);
  if (cqe < 1) return EINVAL;
  pthread_spin_lock(&cq->lock);
  // The daemon moves what we have not polled yet; our consumer index must be current.
  proto::ResizeCqRequest req{cq->handle, static_cast<uint32_t>(cqe)};
  proto::CreateCqReply r;
  proto::Message reply;
  int err =
      RpcReply(StateOf(ibcq->context), Op::kResizeCq, &req, sizeof req, &r, nullptr, 0, &reply);
  void* map = nullptr;
  if (!err)
    map = reply.fd_count() == 1 ? MapShared(reply.TakeFd(0), r.shm_size, r.shm_offset) : nullptr;
  if (map) {
    munmap(cq->header, cq->map_size);
    cq->header = static_cast<proto::CqShmHeader*>(map);
    cq->cqes =
        reinterpret_cast<proto::Cqe*>(static_cast<uint8_t*>(map) + sizeof(proto::CqShmHeader));
    cq->map_size = r.shm_size;
    cq->depth = r.depth;
    cq->consumed = 0;
    ibcq->cqe = static_cast<int>(r.depth);
  } else if (!err) {
    err = EPROTO;
  }
  pthread_spin_unlock(&cq->lock);
  return err;
}

// ---- SRQ ----------------------------------------------------------------------------------

uint32_t HandleOf(ibv_xrcd* xrcd) { return reinterpret_cast<verbs_xrcd*>(xrcd)->handle; }

}  // namespace

// A basic SRQ, or an XRC SRQ of `xrcd` completing on `cq` (ibv_create_srq_ex(3)), or with
// `wq` the SRQ a receive work queue is, completing on `cq` (wq.cc).
ibv_srq* NewSrq(ibv_pd* pd, ibv_srq_attr* attr, ibv_xrcd* xrcd, ibv_cq* cq, bool wq) {
  auto* srq = static_cast<VSrq*>(calloc(1, sizeof(VSrq)));
  if (!srq) return nullptr;
  proto::CreateSrqRequest req{};
  req.pd = HandleOf(pd);
  req.max_wr = attr->max_wr;
  req.max_sge = attr->max_sge;
  req.srq_limit = attr->srq_limit;
  req.user_handle = reinterpret_cast<uintptr_t>(srq);
  req.srq_type = wq     ? proto::kSrqTypeWq
                 : xrcd ? static_cast<uint32_t>(IBV_SRQT_XRC)
                        : static_cast<uint32_t>(IBV_SRQT_BASIC);
  req.xrcd = xrcd ? HandleOf(xrcd) : 0;
  req.cq = cq ? CqOf(cq)->handle : 0;
  proto::CreateSrqReply r;
  proto::Message reply;
  int err =
      RpcReply(StateOf(pd->context), Op::kCreateSrq, &req, sizeof req, &r, nullptr, 0, &reply);
  void* map = nullptr;
  if (!err)
    map = reply.fd_count() == 1 ? MapShared(reply.TakeFd(0), r.shm_size, r.shm_offset) : nullptr;
  if (!map) {
    free(srq);
    return Fail<ibv_srq>(err ? err : EPROTO);
  }
  pthread_spin_init(&srq->lock, PTHREAD_PROCESS_PRIVATE);
  srq->handle = r.handle;
  srq->device_fatal = FatalFlagOf(pd->context);
  srq->map = map;
  srq->map_size = r.shm_size;
  auto* h = static_cast<proto::RingShmHeader*>(map);
  srq->ring =
      SendRing{h, static_cast<uint8_t*>(map) + sizeof(proto::RingShmHeader), r.depth, r.stride, 0};
  srq->max_sge = r.max_sge;
  ibv_srq& s = srq->vsrq.srq;
  s.handle = r.handle;
  s.context = pd->context;
  s.pd = pd;
  s.events_completed = 0;
  pthread_mutex_init(&s.mutex, nullptr);
  pthread_cond_init(&s.cond, nullptr);
  srq->vsrq.srq_type = xrcd ? IBV_SRQT_XRC : IBV_SRQT_BASIC;
  if (xrcd) {
    srq->vsrq.xrcd = reinterpret_cast<verbs_xrcd*>(xrcd);
    srq->vsrq.cq = cq;
    srq->vsrq.srq_num = r.srq_num;
  }
  attr->max_wr = r.depth;
  attr->max_sge = r.max_sge;
  return &s;
}

namespace {

ibv_srq* CreateSrq(ibv_pd* pd, ibv_srq_init_attr* attr) {
  return NewSrq(pd, &attr->attr, nullptr, nullptr, false);
}

ibv_srq* CreateSrqEx(ibv_context* ctx, ibv_srq_init_attr_ex* attr) {
  constexpr uint32_t kKnown =
      IBV_SRQ_INIT_ATTR_TYPE | IBV_SRQ_INIT_ATTR_PD | IBV_SRQ_INIT_ATTR_XRCD | IBV_SRQ_INIT_ATTR_CQ;
  if (attr->comp_mask & ~kKnown) return Fail<ibv_srq>(EOPNOTSUPP);  // tag matching
  if (!(attr->comp_mask & IBV_SRQ_INIT_ATTR_PD) || !attr->pd || attr->pd->context != ctx) {
    return Fail<ibv_srq>(EINVAL);
  }
  ibv_srq_type type = (attr->comp_mask & IBV_SRQ_INIT_ATTR_TYPE) ? attr->srq_type : IBV_SRQT_BASIC;
  ibv_srq* srq = nullptr;
  if (type == IBV_SRQT_BASIC) {
    srq = NewSrq(attr->pd, &attr->attr, nullptr, nullptr, false);
  } else if (type == IBV_SRQT_XRC) {
    // An XRC SRQ needs its domain and its CQ (ibv_create_srq_ex(3)).
    if (!(attr->comp_mask & IBV_SRQ_INIT_ATTR_XRCD) || !attr->xrcd ||
        !(attr->comp_mask & IBV_SRQ_INIT_ATTR_CQ) || !attr->cq) {
      return Fail<ibv_srq>(EINVAL);
    }
    srq = NewSrq(attr->pd, &attr->attr, attr->xrcd, attr->cq, false);
  } else {
    return Fail<ibv_srq>(EOPNOTSUPP);
  }
  if (srq) srq->srq_context = attr->srq_context;
  return srq;
}

int GetSrqNum(ibv_srq* ibsrq, uint32_t* srq_num) {
  VSrq* srq = SrqOf(ibsrq);
  if (srq->vsrq.srq_type != IBV_SRQT_XRC) return EINVAL;
  *srq_num = srq->vsrq.srq_num;
  return 0;
}

// ---- XRC domains --------------------------------------------------------------------------

ibv_xrcd* OpenXrcd(ibv_context* ctx, ibv_xrcd_init_attr* attr) {
  // As ibv_cmd_open_xrcd: the file descriptor (-1: none) and the open flags are both given.
  if (attr->comp_mask & ~static_cast<uint32_t>(IBV_XRCD_INIT_ATTR_FD | IBV_XRCD_INIT_ATTR_OFLAGS))
    return Fail<ibv_xrcd>(EOPNOTSUPP);
  if (!(attr->comp_mask & IBV_XRCD_INIT_ATTR_FD) || !(attr->comp_mask & IBV_XRCD_INIT_ATTR_OFLAGS))
    return Fail<ibv_xrcd>(EINVAL);
  auto* x = static_cast<verbs_xrcd*>(calloc(1, sizeof(verbs_xrcd)));
  if (!x) return nullptr;
  proto::OpenXrcdRequest req{static_cast<uint32_t>(attr->oflags), attr->fd >= 0 ? 1u : 0u};
  proto::OpenXrcdReply r;
  proto::Message reply;
  int err = RpcReply(StateOf(ctx), Op::kOpenXrcd, &req, sizeof req, &r,
                     attr->fd >= 0 ? &attr->fd : nullptr, attr->fd >= 0 ? 1 : 0, &reply);
  if (err) {
    free(x);
    return Fail<ibv_xrcd>(err);
  }
  x->xrcd.context = ctx;
  x->comp_mask = VERBS_XRCD_HANDLE;
  x->handle = r.handle;
  return &x->xrcd;
}

int CloseXrcd(ibv_xrcd* xrcd) {
  proto::HandleMsg req{HandleOf(xrcd), 0};
  proto::Message reply;
  int err = Rpc(StateOf(xrcd->context), Op::kCloseXrcd, &req, sizeof req, &reply);
  if (err && err != EIO) return err;
  free(reinterpret_cast<verbs_xrcd*>(xrcd));
  return 0;
}

int ModifySrq(ibv_srq* ibsrq, ibv_srq_attr* attr, int mask) {
  proto::ModifySrqRequest req{SrqOf(ibsrq)->handle, static_cast<uint32_t>(mask), attr->max_wr,
                              attr->srq_limit};
  proto::Message reply;
  return Rpc(StateOf(ibsrq->context), Op::kModifySrq, &req, sizeof req, &reply);
}

int QuerySrq(ibv_srq* ibsrq, ibv_srq_attr* attr) {
  proto::HandleMsg req{SrqOf(ibsrq)->handle, 0};
  proto::QuerySrqReply r;
  if (int err = RpcReply(StateOf(ibsrq->context), Op::kQuerySrq, &req, sizeof req, &r)) return err;
  attr->max_wr = r.max_wr;
  attr->max_sge = r.max_sge;
  attr->srq_limit = r.srq_limit;
  return 0;
}

}  // namespace

int DestroySrq(ibv_srq* ibsrq) {
  VSrq* srq = SrqOf(ibsrq);
  proto::HandleMsg req{srq->handle, 0};
  proto::Message reply;
  int err = Rpc(StateOf(ibsrq->context), Op::kDestroySrq, &req, sizeof req, &reply);
  if (err && err != EIO) return err;
  munmap(srq->map, srq->map_size);
  pthread_spin_destroy(&srq->lock);
  pthread_mutex_destroy(&ibsrq->mutex);
  pthread_cond_destroy(&ibsrq->cond);
  free(srq);
  return 0;
}

namespace {

// ---- QP -----------------------------------------------------------------------------------

// The request that makes (kCreateQp) or opens (kOpenQp) a QP, and the answer on this side:
// the QP's rings mapped into `qp`. False when refused: `qp` freed, errno set.
bool QpRequest(ibv_context* ctx, Op op, const void* req, size_t len, VQp* qp,
               proto::CreateQpReply* r) {
  proto::Message reply;
  int err = RpcReply(StateOf(ctx), op, req, len, r, nullptr, 0, &reply);
  void* map = nullptr;
  if (!err)
    map = reply.fd_count() == 1 ? MapShared(reply.TakeFd(0), r->shm_size, r->shm_offset) : nullptr;
  if (!map) {
    free(qp);
    errno = err ? err : EPROTO;
    return false;
  }
  auto* h = static_cast<proto::QpShmHeader*>(map);
  auto* base = static_cast<uint8_t*>(map);
  qp->handle = r->handle;
  qp->device_fatal = FatalFlagOf(ctx);
  qp->map = map;
  qp->map_size = r->shm_size;
  qp->sq = SendRing{&h->sq, base + r->sq_offset, r->sq_depth, r->sq_stride, 0};
  qp->rq = SendRing{&h->rq, base + r->rq_offset, r->rq_depth, r->rq_stride, 0};
  pthread_spin_init(&qp->sq_lock, PTHREAD_PROCESS_PRIVATE);
  pthread_spin_init(&qp->rq_lock, PTHREAD_PROCESS_PRIVATE);
  return true;
}

ibv_qp* CreateQpEx(ibv_context* ctx, ibv_qp_init_attr_ex* attr) {
  constexpr uint32_t kSupported = IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS |
                                  IBV_QP_INIT_ATTR_CREATE_FLAGS | IBV_QP_INIT_ATTR_XRCD |
                                  IBV_QP_INIT_ATTR_IND_TABLE | IBV_QP_INIT_ATTR_RX_HASH;
  if (attr->comp_mask & ~kSupported) return Fail<ibv_qp>(EOPNOTSUPP);
  if ((attr->comp_mask & IBV_QP_INIT_ATTR_CREATE_FLAGS) && attr->create_flags) {
    return Fail<ibv_qp>(EOPNOTSUPP);
  }
  if (attr->qp_type != IBV_QPT_RC && attr->qp_type != IBV_QPT_UC && attr->qp_type != IBV_QPT_UD &&
      attr->qp_type != IBV_QPT_XRC_SEND && attr->qp_type != IBV_QPT_XRC_RECV &&
      attr->qp_type != IBV_QPT_RAW_PACKET) {
    return Fail<ibv_qp>(EOPNOTSUPP);
  }
  const bool raw = attr->qp_type == IBV_QPT_RAW_PACKET;
  // An XRC receive QP is made in a domain, with no PD, CQs or queues; every other QP in a
  // PD (an XRC send QP has a send CQ only).
  const bool xrc_recv = attr->qp_type == IBV_QPT_XRC_RECV;
  const bool xrc_send = attr->qp_type == IBV_QPT_XRC_SEND;
  if (xrc_recv) {
    if (!(attr->comp_mask & IBV_QP_INIT_ATTR_XRCD) || !attr->xrcd) return Fail<ibv_qp>(EINVAL);
  } else if (!(attr->comp_mask & IBV_QP_INIT_ATTR_PD) || !attr->pd) {
    return Fail<ibv_qp>(EOPNOTSUPP);
  }
  // The ibv_wr_* operations the QP will use (ibv_create_qp_ex(3)): refused at creation when
  // its transport has no such operation (memory windows on UD) or the vdev does not offer
  // it (TSO), as mlx5 refuses them.
  if (attr->comp_mask & IBV_QP_INIT_ATTR_SEND_OPS_FLAGS) {
    uint64_t offered = IBV_QP_EX_WITH_SEND | (raw ? 0 : IBV_QP_EX_WITH_SEND_WITH_IMM);
    if (attr->qp_type != IBV_QPT_UD && !raw) {
      offered |= IBV_QP_EX_WITH_RDMA_WRITE | IBV_QP_EX_WITH_RDMA_WRITE_WITH_IMM;
    }
    if (attr->qp_type != IBV_QPT_UD && !raw) {
      offered |= IBV_QP_EX_WITH_BIND_MW | IBV_QP_EX_WITH_LOCAL_INV;
    }
    if (attr->qp_type == IBV_QPT_RC || xrc_send) {
      offered |= IBV_QP_EX_WITH_RDMA_READ | IBV_QP_EX_WITH_ATOMIC_CMP_AND_SWP |
                 IBV_QP_EX_WITH_ATOMIC_FETCH_AND_ADD | IBV_QP_EX_WITH_SEND_WITH_INV;
    }
    if (attr->qp_type == IBV_QPT_RC) offered |= IBV_QP_EX_WITH_ATOMIC_WRITE;
    if (xrc_recv) offered = 0;
    if (attr->send_ops_flags & ~offered) return Fail<ibv_qp>(EOPNOTSUPP);
  }
  // A receive-side scaling QP (a raw packet QP with an indirection table and a hash) has
  // no queues or CQs: its table's work queues receive (wq.cc).
  constexpr uint32_t kRss = IBV_QP_INIT_ATTR_IND_TABLE | IBV_QP_INIT_ATTR_RX_HASH;
  const bool rss = (attr->comp_mask & kRss) != 0;
  if (rss && ((attr->comp_mask & kRss) != kRss || !raw || !attr->rwq_ind_tbl)) {
    return Fail<ibv_qp>(EINVAL);
  }
  if (rss) {
    attr->send_cq = attr->recv_cq = nullptr;
    attr->srq = nullptr;
    attr->cap = ibv_qp_cap{};
  }
  if (!xrc_recv && !rss && (!attr->send_cq || (!xrc_send && !attr->recv_cq))) {
    return Fail<ibv_qp>(EINVAL);
  }
  if (xrc_recv) {
    attr->pd = nullptr;
    attr->send_cq = attr->recv_cq = nullptr;
    attr->srq = nullptr;
    attr->cap = ibv_qp_cap{};
  }
  if (xrc_send) {
    attr->recv_cq = nullptr;
    attr->srq = nullptr;
    attr->cap.max_recv_wr = attr->cap.max_recv_sge = 0;
  }
  auto* qp = static_cast<VQp*>(calloc(1, sizeof(VQp)));
  if (!qp) return nullptr;
  proto::CreateQpRequest req{};
  req.pd = attr->pd ? HandleOf(attr->pd) : 0;
  req.qp_type = attr->qp_type;
  req.send_cq = attr->send_cq ? CqOf(attr->send_cq)->handle : 0;
  req.recv_cq = attr->recv_cq ? CqOf(attr->recv_cq)->handle : 0;
  req.xrcd = xrc_recv ? HandleOf(attr->xrcd) : 0;
  req.has_srq = attr->srq != nullptr;
  req.srq = attr->srq ? SrqOf(attr->srq)->handle : 0;
  req.max_send_wr = attr->cap.max_send_wr;
  req.max_recv_wr = attr->cap.max_recv_wr;
  req.max_send_sge = attr->cap.max_send_sge;
  req.max_recv_sge = attr->cap.max_recv_sge;
  req.max_inline_data = attr->cap.max_inline_data;
  req.sq_sig_all = attr->sq_sig_all;
  req.user_handle = reinterpret_cast<uintptr_t>(qp);
  std::vector<uint8_t> buf(sizeof req);
  if (rss) {
    const ibv_rx_hash_conf& c = attr->rx_hash_conf;
    proto::RxHashRequest h{};
    h.ind_table = attr->rwq_ind_tbl->ind_tbl_handle;
    h.function = c.rx_hash_function;
    h.key_len = c.rx_hash_key_len;
    h.fields = c.rx_hash_fields_mask;
    if (c.rx_hash_key_len > sizeof h.key || (c.rx_hash_key_len && !c.rx_hash_key)) {
      free(qp);
      return Fail<ibv_qp>(EINVAL);
    }
    if (c.rx_hash_key_len) std::memcpy(h.key, c.rx_hash_key, c.rx_hash_key_len);
    req.rx_hash = 1;
    buf.resize(sizeof req + sizeof h);
    std::memcpy(buf.data() + sizeof req, &h, sizeof h);
  }
  std::memcpy(buf.data(), &req, sizeof req);
  proto::CreateQpReply r;
  if (!QpRequest(ctx, Op::kCreateQp, buf.data(), buf.size(), qp, &r)) return nullptr;
  qp->max_send_sge = r.max_send_sge;
  qp->max_recv_sge = r.max_recv_sge;
  qp->max_inline = r.max_inline_data;
  qp->sq_sig_all = attr->sq_sig_all;
  qp->single_threaded = attr->pd && SingleThreaded(attr->pd);
  ibv_qp& q = qp->vqp.qp;
  q.context = ctx;
  q.qp_context = attr->qp_context;
  q.pd = attr->pd;
  q.send_cq = attr->send_cq;
  q.recv_cq = attr->recv_cq;
  q.srq = attr->srq;
  q.handle = r.handle;
  q.qp_num = r.qpn;
  q.state = IBV_QPS_RESET;
  q.qp_type = attr->qp_type;
  q.events_completed = 0;
  pthread_mutex_init(&q.mutex, nullptr);
  pthread_cond_init(&q.cond, nullptr);
  qp->vqp.comp_mask = VERBS_QP_EX;
  if (xrc_recv) {
    qp->vqp.xrcd = reinterpret_cast<verbs_xrcd*>(attr->xrcd);
    qp->vqp.comp_mask |= VERBS_QP_XRCD;
  }
  InstallWrOps(qp, (attr->comp_mask & IBV_QP_INIT_ATTR_SEND_OPS_FLAGS) ? attr->send_ops_flags : 0);
  attr->cap.max_send_wr = r.sq_depth;
  attr->cap.max_recv_wr = r.rq_depth;
  attr->cap.max_send_sge = r.max_send_sge;
  attr->cap.max_recv_sge = r.max_recv_sge;
  attr->cap.max_inline_data = r.max_inline_data;
  return &q;
}

// ibv_open_qp(3): an XRC receive QP another context of the vdev made, in a domain this
// context opened. The handle shares the QP: modify and query reach it; destroy closes this
// handle, and the QP goes with the last one.
ibv_qp* OpenQp(ibv_context* ctx, ibv_qp_open_attr* attr) {
  constexpr uint32_t kNeeded = IBV_QP_OPEN_ATTR_NUM | IBV_QP_OPEN_ATTR_XRCD | IBV_QP_OPEN_ATTR_TYPE;
  if ((attr->comp_mask & kNeeded) != kNeeded || !attr->xrcd) return Fail<ibv_qp>(EINVAL);
  if (attr->comp_mask & ~(kNeeded | IBV_QP_OPEN_ATTR_CONTEXT)) return Fail<ibv_qp>(EOPNOTSUPP);
  if (attr->qp_type != IBV_QPT_XRC_RECV) return Fail<ibv_qp>(EOPNOTSUPP);
  auto* qp = static_cast<VQp*>(calloc(1, sizeof(VQp)));
  if (!qp) return nullptr;
  proto::OpenQpRequest req{HandleOf(attr->xrcd), attr->qp_num, IBV_QPT_XRC_RECV, 0,
                           reinterpret_cast<uintptr_t>(qp)};
  proto::CreateQpReply r;
  if (!QpRequest(ctx, Op::kOpenQp, &req, sizeof req, qp, &r)) return nullptr;
  ibv_qp& q = qp->vqp.qp;
  q.context = ctx;
  q.qp_context = (attr->comp_mask & IBV_QP_OPEN_ATTR_CONTEXT) ? attr->qp_context : nullptr;
  q.handle = r.handle;
  q.qp_num = r.qpn;
  q.state = IBV_QPS_UNKNOWN;  // ibv_query_qp tells
  q.qp_type = IBV_QPT_XRC_RECV;
  pthread_mutex_init(&q.mutex, nullptr);
  pthread_cond_init(&q.cond, nullptr);
  qp->vqp.comp_mask = VERBS_QP_EX | VERBS_QP_XRCD;
  qp->vqp.xrcd = reinterpret_cast<verbs_xrcd*>(attr->xrcd);
  InstallWrOps(qp, 0);
  return &q;
}

ibv_qp* CreateQp(ibv_pd* pd, ibv_qp_init_attr* attr) {
  ibv_qp_init_attr_ex ex{};
  ex.qp_context = attr->qp_context;
  ex.send_cq = attr->send_cq;
  ex.recv_cq = attr->recv_cq;
  ex.srq = attr->srq;
  ex.cap = attr->cap;
  ex.qp_type = attr->qp_type;
  ex.sq_sig_all = attr->sq_sig_all;
  ex.comp_mask = IBV_QP_INIT_ATTR_PD;
  ex.pd = pd;
  ibv_qp* qp = CreateQpEx(pd->context, &ex);
  if (qp) attr->cap = ex.cap;
  return qp;
}

int ModifyQp(ibv_qp* ibqp, ibv_qp_attr* attr, int mask) {
  proto::ModifyQpRequest req{};
  req.handle = QpOf(ibqp)->handle;
  req.mask = mask;
  req.attr = *attr;
  proto::Message reply;
  if (int err = Rpc(StateOf(ibqp->context), Op::kModifyQp, &req, sizeof req, &reply)) return err;
  if ((mask & IBV_QP_STATE) && attr->qp_state == IBV_QPS_RESET) {
    // The daemon has reset the QP: it completes nothing more, and what it completed
    // before (the flushes of its error state) goes from its CQs.
    if (ibqp->send_cq) CleanCq(ibqp->send_cq, ibqp->qp_num);
    if (ibqp->recv_cq && ibqp->recv_cq != ibqp->send_cq) CleanCq(ibqp->recv_cq, ibqp->qp_num);
  }
  return 0;
}

int QueryQp(ibv_qp* ibqp, ibv_qp_attr* attr, int mask, ibv_qp_init_attr* init) {
  proto::QueryQpRequest req{QpOf(ibqp)->handle, mask};
  proto::QueryQpReply r;
  if (int err = RpcReply(StateOf(ibqp->context), Op::kQueryQp, &req, sizeof req, &r)) return err;
  *attr = r.attr;
  attr->cap = r.cap;
  ibqp->state = r.attr.qp_state;
  if (init) {
    *init = ibv_qp_init_attr{};
    init->qp_context = ibqp->qp_context;
    init->send_cq = ibqp->send_cq;
    init->recv_cq = ibqp->recv_cq;
    init->srq = ibqp->srq;
    init->cap = r.cap;
    init->qp_type = ibqp->qp_type;
    init->sq_sig_all = static_cast<int>(r.sq_sig_all);
  }
  return 0;
}

// Whether the application has acknowledged `reported` async events of `qp`.
bool EventsAcknowledged(VQp* qp, uint32_t reported) {
  ibv_qp& q = qp->vqp.qp;
  pthread_mutex_lock(&q.mutex);
  bool done = q.events_completed >= reported;
  pthread_mutex_unlock(&q.mutex);
  return done;
}

// ibv_destroy_qp(3): an async event of the QP read but not yet acknowledged still points
// at it (ibv_ack_async_event locks its mutex), so its memory stays until the daemon's
// events_reported are acknowledged, as a kernel provider waits for them in
// ibv_cmd_destroy_qp; without blocking here: it is freed by a later destroy of the same
// context once acknowledged, or with the context.
int DestroyQp(ibv_qp* ibqp) {
  VQp* qp = QpOf(ibqp);
  ContextState& st = StateOf(ibqp->context);
  proto::HandleMsg req{qp->handle, 0};
  proto::Message reply;
  int err = Rpc(st, Op::kDestroyQp, &req, sizeof req, &reply);
  if (err && err != EIO) return err;
  proto::DestroyQpReply r{};
  uint32_t reported = !err && reply.Copy(&r) ? r.events_reported : 0;
  munmap(qp->map, qp->map_size);
  qp->map = nullptr;
  pthread_spin_destroy(&qp->sq_lock);
  pthread_spin_destroy(&qp->rq_lock);
  std::lock_guard<std::mutex> lock(st.destroyed_qps_mutex);
  std::erase_if(st.destroyed_qps, [](const std::pair<VQp*, uint32_t>& d) {
    if (!EventsAcknowledged(d.first, d.second)) return false;
    free(d.first);
    return true;
  });
  if (EventsAcknowledged(qp, reported)) {
    free(qp);
  } else {
    st.destroyed_qps.emplace_back(qp, reported);
  }
  return 0;
}

}  // namespace

// device.cc
void FreeContextOp(ibv_context* ctx);
int QueryDeviceExOp(ibv_context*, const ibv_query_device_ex_input*, ibv_device_attr_ex*, size_t);
int QueryPortOp(ibv_context* ctx, uint8_t port, ibv_port_attr* attr);
int QueryRtValuesOp(ibv_context* ctx, ibv_values_ex* values);
void AsyncEventOp(ibv_context*, ibv_async_event*);
void CqEventOp(ibv_cq*);

const verbs_context_ops kContextOps = [] {
  verbs_context_ops ops{};
  ops.alloc_pd = AllocPd;
  ops.dealloc_pd = DeallocPd;
  ops.reg_mr = RegMr;
  ops.dereg_mr = DeregMr;
  ops.rereg_mr = ReregMr;
  ops.advise_mr = AdviseMr;
  ops.alloc_td = AllocTd;
  ops.dealloc_td = DeallocTd;
  ops.alloc_parent_domain = AllocParentDomain;
  ops.alloc_dm = AllocDm;
  ops.free_dm = FreeDm;
  ops.reg_dm_mr = RegDmMr;
  ops.import_dm = ImportDm;
  ops.unimport_dm = UnimportDm;
  ops.import_pd = ImportPd;
  ops.unimport_pd = UnimportPd;
  ops.import_mr = ImportMr;
  ops.unimport_mr = UnimportMr;
  ops.create_flow = CreateFlow;
  ops.destroy_flow = DestroyFlow;
  ops.attach_mcast = AttachMcast;
  ops.detach_mcast = DetachMcast;
  ops.create_wq = CreateWq;
  ops.modify_wq = ModifyWq;
  ops.destroy_wq = DestroyWq;
  ops.create_rwq_ind_table = CreateRwqIndTable;
  ops.destroy_rwq_ind_table = DestroyRwqIndTable;
  ops.alloc_mw = AllocMw;
  ops.dealloc_mw = DeallocMw;
  ops.bind_mw = BindMw;
  ops.create_ah = CreateAh;
  ops.destroy_ah = DestroyAh;
  ops.create_cq = CreateCq;
  ops.create_cq_ex = CreateCqEx;
  ops.destroy_cq = DestroyCq;
  ops.resize_cq = ResizeCq;
  ops.poll_cq = PollCq;
  ops.req_notify_cq = ReqNotifyCq;
  ops.cq_event = CqEventOp;
  ops.create_srq = CreateSrq;
  ops.modify_srq = ModifySrq;
  ops.query_srq = QuerySrq;
  ops.destroy_srq = DestroySrq;
  ops.post_srq_recv = PostSrqRecv;
  ops.create_srq_ex = CreateSrqEx;
  ops.get_srq_num = GetSrqNum;
  ops.open_xrcd = OpenXrcd;
  ops.open_qp = OpenQp;
  ops.close_xrcd = CloseXrcd;
  ops.create_qp = CreateQp;
  ops.create_qp_ex = CreateQpEx;
  ops.modify_qp = ModifyQp;
  ops.query_qp = QueryQp;
  ops.destroy_qp = DestroyQp;
  ops.post_send = PostSend;
  ops.post_recv = PostRecv;
  ops.query_device_ex = QueryDeviceExOp;
  ops.query_port = QueryPortOp;
  ops.query_rt_values = QueryRtValuesOp;
  ops.async_event = AsyncEventOp;
  ops.free_context = FreeContextOp;
  return ops;
}();

}  // namespace vrdma::provider
