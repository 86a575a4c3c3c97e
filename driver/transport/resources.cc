// RoceDevice resources other than QPs: the verbs that create, change and destroy PDs, MRs,
// CQs (and poll, arm and redirect them), SRQs and AHs.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "driver/transport/device.h"
#include "driver/transport/errors.h"

namespace vrdma::driver {

absl::StatusOr<uint32_t> RoceDevice::AllocPd(uint32_t owner) {
  uint32_t h;
  ProtectionDomain* pd = pds_.Allocate(&h);
  if (!pd) return absl::ResourceExhaustedError("PD table full");
  pd->owner = owner;
  return h;
}

absl::Status RoceDevice::DeallocPd(uint32_t pd) {
  if (!pds_.Get(pd)) return NotFound("PD", pd);
  bool busy = false;
  mrs_.ForEach([&](uint32_t, const MemoryRegion& mr) { busy |= mr.pd == pd; });
  qps_.ForEach(
      [&](uint32_t, const QueuePair& qp) { busy |= qp.type != kQpTypeGsi && qp.init.pd == pd; });
  srqs_.ForEach([&](uint32_t, const SharedReceiveQueue& s) { busy |= s.pd == pd; });
  mws_.ForEach([&](uint32_t, const MemoryWindow& w) { busy |= w.pd == pd; });
  if (busy) return absl::FailedPreconditionError("PD still has MRs, MWs, QPs or SRQs");
  pds_.Free(pd);
  return absl::OkStatus();
}

namespace {

// The access flags of a registration, checked as the kernel's ib_check_mr_access does.
// IBV_ACCESS_ON_DEMAND asks for what every registration here is: nothing is pinned, and
// the engine's accesses fault the pages in as they come.
absl::Status CheckMrAccess(int access) {
  // Remote write or atomic access requires local write (IBTA 10.6.3.1 / ibv_reg_mr(3)).
  if ((access & (IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC)) &&
      !(access & IBV_ACCESS_LOCAL_WRITE)) {
    return absl::InvalidArgumentError("remote write/atomic access needs local write");
  }
  // Known flags: up to IBV_ACCESS_HUGETLB (a hint), the two IBTA 1.5 flush flags, and
  // the optional range (libibverbs clears it for a device that does not claim it).
  constexpr int kFlushGlobal = 1 << 8, kFlushPersistent = 1 << 9;
  constexpr int kKnown =
      ((IBV_ACCESS_HUGETLB << 1) - 1) | kFlushGlobal | kFlushPersistent | IBV_ACCESS_OPTIONAL_RANGE;
  if (access & ~kKnown) {
    return absl::InvalidArgumentError(
        absl::StrFormat("unknown access flags 0x%x", access & ~kKnown));
  }
  if (access & (kFlushGlobal | kFlushPersistent)) {
    return absl::UnimplementedError("flush access (IBTA 1.5) is not offered");
  }
  return absl::OkStatus();
}

absl::Status CheckMrRange(uint64_t iova, const void* host, uint64_t length, uint64_t max) {
  if (length > max) return absl::InvalidArgumentError("MR too large");
  if (iova + length < iova) return absl::InvalidArgumentError("MR range wraps");
  if (host == nullptr && length != 0) return absl::InvalidArgumentError("MR has no memory");
  return absl::OkStatus();
}

// An MR with memory windows bound to it stays as it is (IBTA 10.6.7.2.6: "memory windows
// still bound"); EBUSY at the verbs edge.
absl::Status WindowsBound(const MemoryRegion& mr) {
  return absl::FailedPreconditionError(
      absl::StrCat(mr.windows, " memory window(s) still bound to the MR"));
}

}  // namespace

absl::StatusOr<MrKeys> RoceDevice::RegMr(uint32_t pd, uint64_t iova, void* host, uint64_t length,
                                         int access, uint32_t owner) {
  if (!pds_.Get(pd)) return NotFound("PD", pd);
  if (absl::Status st = CheckMrRange(iova, host, length, cfg_.limits.max_mr_size); !st.ok()) {
    return st;
  }
  if (absl::Status st = CheckMrAccess(access); !st.ok()) return st;
  uint32_t h;
  MemoryRegion* mr = mrs_.Allocate(&h);
  if (!mr) return absl::ResourceExhaustedError("MR table full");
  mr->pd = pd;
  mr->iova = iova;
  mr->length = length;
  mr->host = static_cast<uint8_t*>(host);
  mr->access = access;
  mr->owner = owner;
  mr->invalidated = false;
  mr->poisoned = false;
  mr->tx_share = nullptr;
  mr->lkey = mr->rkey = MakeKey(h, mrs_.Generation(h));
  return MrKeys{mr->lkey, mr->rkey};
}

const MemoryRegion* RoceDevice::FindMr(uint32_t key) const {
  uint32_t h = KeyIndex(key);
  const MemoryRegion* mr = mrs_.Get(h);
  if (!mr || mr->lkey != key) return nullptr;
  return mr;
}

absl::Status RoceDevice::SetMrTxShare(uint32_t lkey, rte_mbuf_ext_shared_info* share) {
  MemoryRegion* mr = mrs_.Get(KeyIndex(lkey));
  if (!mr || mr->lkey != lkey) return NotFound("MR with key", lkey);
  mr->tx_share = share;
  return absl::OkStatus();
}

absl::Status RoceDevice::ReregMr(uint32_t lkey, const MrChange& change) {
  MemoryRegion* mr = mrs_.Get(KeyIndex(lkey));
  if (!mr || mr->lkey != lkey) return NotFound("MR with key", lkey);
  if (mr->windows) return WindowsBound(*mr);
  if (change.pd && !pds_.Get(*change.pd)) return NotFound("PD", *change.pd);
  if (change.access) {
    if (absl::Status st = CheckMrAccess(*change.access); !st.ok()) return st;
  }
  if (change.translation) {
    if (absl::Status st =
            CheckMrRange(change.iova, change.host, change.length, cfg_.limits.max_mr_size);
        !st.ok()) {
      return st;
    }
  }
  if (change.pd) mr->pd = *change.pd;
  if (change.access) mr->access = *change.access;
  if (change.translation) {
    // New pages: what the old ones lost or shared for zero-copy is theirs.
    mr->iova = change.iova;
    mr->host = static_cast<uint8_t*>(change.host);
    mr->length = change.length;
    mr->poisoned = false;
    mr->tx_share = nullptr;
  }
  return absl::OkStatus();
}

absl::Status RoceDevice::DeregMr(uint32_t lkey) {
  const MemoryRegion* mr = FindMr(lkey);
  if (!mr) return NotFound("MR with key", lkey);
  if (mr->windows) return WindowsBound(*mr);
  mrs_.Free(KeyIndex(lkey));
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> RoceDevice::CreateCq(uint32_t depth, uint32_t owner) {
  if (depth < 1 || depth > cfg_.limits.max_cqe) {
    return absl::InvalidArgumentError(
        absl::StrCat("CQ depth ", depth, " outside 1..", cfg_.limits.max_cqe));
  }
  uint32_t h;
  CompletionQueue* cq = cqs_.Allocate(&h);
  if (!cq) return absl::ResourceExhaustedError("CQ table full");
  cq->Init(depth);
  cq->owner = owner;
  return h;
}

absl::Status RoceDevice::DestroyCq(uint32_t cqn) {
  CompletionQueue* cq = cqs_.Get(cqn);
  if (!cq) return NotFound("CQ", cqn);
  if (cq->use_count) return absl::FailedPreconditionError("CQ still used by QPs or SRQs");
  cqs_.Free(cqn);
  return absl::OkStatus();
}

absl::Status RoceDevice::ResizeCq(uint32_t cqn, uint32_t depth) {
  CompletionQueue* cq = cqs_.Get(cqn);
  if (!cq) return NotFound("CQ", cqn);
  if (depth < 1 || depth > cfg_.limits.max_cqe) return absl::InvalidArgumentError("bad depth");
  if (!cq->Resize(depth)) {
    return absl::FailedPreconditionError("CQ holds more completions than the new depth");
  }
  return absl::OkStatus();
}

absl::StatusOr<int> RoceDevice::PollCq(uint32_t cqn, ibv_wc* wc, int n) {
  CompletionQueue* cq = cqs_.Get(cqn);
  if (!cq) return NotFound("CQ", cqn);
  return cq->Poll(wc, n);
}

absl::StatusOr<int> RoceDevice::PollCq(uint32_t cqn, ibv_wc* wc, RecvInfo* info, int n) {
  CompletionQueue* cq = cqs_.Get(cqn);
  if (!cq) return NotFound("CQ", cqn);
  return cq->Poll(wc, info, n);
}

absl::Status RoceDevice::ArmCq(uint32_t cqn, bool solicited_only) {
  CompletionQueue* cq = cqs_.Get(cqn);
  if (!cq) return NotFound("CQ", cqn);
  cq->Arm(solicited_only);
  return absl::OkStatus();
}

absl::Status RoceDevice::AttachCqSink(uint32_t cqn, CompletionSink* sink, uint64_t cookie) {
  CompletionQueue* cq = cqs_.Get(cqn);
  if (!cq) return NotFound("CQ", cqn);
  cq->SetSink(sink, cookie);
  return absl::OkStatus();
}

bool RoceDevice::TakeCqEvent(uint32_t cqn) {
  CompletionQueue* cq = cqs_.Get(cqn);
  return cq && cq->TakeEvent();
}

absl::StatusOr<uint32_t> RoceDevice::CreateSrq(uint32_t pd, uint32_t max_wr, uint32_t max_sge,
                                               uint32_t limit, uint32_t owner) {
  if (!pds_.Get(pd)) return NotFound("PD", pd);
  if (max_wr < 1 || max_wr > cfg_.limits.max_srq_wr || max_sge > cfg_.limits.max_srq_sge ||
      limit > max_wr) {
    return absl::InvalidArgumentError("SRQ size, SGE count or limit out of range");
  }
  uint32_t h;
  SharedReceiveQueue* srq = srqs_.Allocate(&h);
  if (!srq) return absl::ResourceExhaustedError("SRQ table full");
  srq->pd = pd;
  srq->max_sge = max_sge;
  srq->limit = limit;
  srq->owner = owner;
  srq->wqes.Init(max_wr);
  return h;
}

absl::StatusOr<uint32_t> RoceDevice::AllocXrcd(uint32_t owner) {
  uint32_t h;
  XrcDomain* d = xrcds_.Allocate(&h);
  if (!d) return absl::ResourceExhaustedError("XRC domain table full");
  d->owner = owner;
  return h;
}

absl::Status RoceDevice::DeallocXrcd(uint32_t xrcd) {
  XrcDomain* d = xrcds_.Get(xrcd);
  if (!d) return NotFound("XRC domain", xrcd);
  if (d->use_count) return absl::FailedPreconditionError("XRC domain still has SRQs or QPs");
  xrcds_.Free(xrcd);
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> RoceDevice::CreateXrcSrq(uint32_t xrcd, uint32_t pd, uint32_t cqn,
                                                  uint32_t max_wr, uint32_t max_sge, uint32_t limit,
                                                  uint32_t owner) {
  XrcDomain* d = xrcds_.Get(xrcd);
  if (!d) return NotFound("XRC domain", xrcd);
  CompletionQueue* cq = cqs_.Get(cqn);
  if (!cq) return NotFound("CQ", cqn);
  absl::StatusOr<uint32_t> h = CreateSrq(pd, max_wr, max_sge, limit, owner);
  if (!h.ok()) return h;
  SharedReceiveQueue* srq = srqs_.Get(*h);
  srq->xrc = true;
  srq->xrcd = xrcd;
  srq->cq = cqn;
  d->use_count++;
  cq->use_count++;
  return h;
}

absl::Status RoceDevice::ModifySrq(uint32_t srq_h, uint32_t /*max_wr*/, uint32_t limit, int mask) {
  SharedReceiveQueue* srq = srqs_.Get(srq_h);
  if (!srq) return NotFound("SRQ", srq_h);
  if (mask & IBV_SRQ_MAX_WR) {
    // Resizing is not supported by this device (IBV_DEVICE_SRQ_RESIZE is not reported).
    return absl::InvalidArgumentError("SRQ resize not supported");
  }
  if (mask & IBV_SRQ_LIMIT) {
    if (limit > srq->wqes.depth()) return absl::InvalidArgumentError("SRQ limit above size");
    srq->limit = limit;
  }
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> RoceDevice::SrqLimit(uint32_t srq_h) const {
  const SharedReceiveQueue* srq = srqs_.Get(srq_h);
  if (!srq) return NotFound("SRQ", srq_h);
  return srq->limit;
}

absl::Status RoceDevice::DestroySrq(uint32_t srq_h) {
  SharedReceiveQueue* srq = srqs_.Get(srq_h);
  if (!srq) return NotFound("SRQ", srq_h);
  if (srq->use_count) return absl::FailedPreconditionError("SRQ still attached to QPs");
  if (srq->tables) return absl::FailedPreconditionError("WQ still in an indirection table");
  if (srq->wq) {
    if (CompletionQueue* cq = cqs_.Get(srq->cq)) cq->use_count--;
  }
  if (srq->xrc) {
    if (XrcDomain* d = xrcds_.Get(srq->xrcd)) d->use_count--;
    if (CompletionQueue* cq = cqs_.Get(srq->cq)) cq->use_count--;
    // A message in progress on an XRC receive QP that named this SRQ ends here: its
    // next packets name no SRQ of the domain and are refused (AdoptXrcSrq).
    qps_.ForEach([&](uint32_t, QueuePair& qp) {
      if (qp.type == IBV_QPT_XRC_RECV && qp.resp.xrc_srq == srq_h) qp.resp.xrc_srq = 0;
    });
  }
  srqs_.Free(srq_h);
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> RoceDevice::CreateAh(uint32_t pd, const AddressVector& av,
                                              uint32_t owner) {
  (void)owner;
  if (!pds_.Get(pd)) return NotFound("PD", pd);
  if (!GetGid(av.sgid_index)) {
    return absl::InvalidArgumentError(absl::StrCat("no GID at index ", av.sgid_index));
  }
  uint32_t h;
  AddressHandle* ah = ahs_.Allocate(&h);
  if (!ah) return absl::ResourceExhaustedError("AH table full");
  ah->av = av;
  return h;
}

absl::Status RoceDevice::DestroyAh(uint32_t ah) {
  if (!ahs_.Get(ah)) return NotFound("AH", ah);
  ahs_.Free(ah);
  return absl::OkStatus();
}

}  // namespace vrdma::driver
