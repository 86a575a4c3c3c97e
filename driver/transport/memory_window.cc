// Memory windows (IBTA 10.6.7): allocation, the Bind Memory Window and Local Invalidate
// operations of a send queue, remote invalidation, and remote access through a window.
//
// Rule numbers are the IBTA's, as Linux rdma_rxe cites them for the same checks.
#include "absl/strings/str_cat.h"
#include "driver/transport/device.h"
#include "driver/transport/errors.h"

namespace vrdma::driver {

namespace {

constexpr int kWindowAccess = IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE |
                              IBV_ACCESS_REMOTE_ATOMIC | IBV_ACCESS_ZERO_BASED;

}  // namespace

absl::StatusOr<RoceDevice::MwKeys> RoceDevice::AllocMw(uint32_t pd, ibv_mw_type type,
                                                       uint32_t owner) {
  if (!pds_.Get(pd)) return NotFound("PD", pd);
  if (type != IBV_MW_TYPE_1 && type != IBV_MW_TYPE_2) {
    return absl::InvalidArgumentError(absl::StrCat("memory window type ", type, ": 1 or 2"));
  }
  uint32_t h;
  MemoryWindow* mw = mws_.Allocate(&h);
  if (!mw) return absl::ResourceExhaustedError("memory window table full");
  mw->pd = pd;
  mw->type = type;
  mw->owner = owner;
  mw->rkey = MakeKey(h, mws_.Generation(h));
  return MwKeys{h, mw->rkey};
}

void RoceDevice::Unbind(MemoryWindow& mw) {
  if (mw.bound && mw.length) {
    MemoryRegion* mr = mrs_.Get(KeyIndex(mw.mr_lkey));
    if (mr && mr->lkey == mw.mr_lkey && mr->windows) mr->windows--;
  }
  mw.bound = false;
  mw.mr_lkey = 0;
  mw.qpn = 0;
  mw.addr = mw.length = 0;
  mw.access = 0;
}

absl::Status RoceDevice::DeallocMw(uint32_t handle) {
  MemoryWindow* mw = mws_.Get(handle);
  if (!mw) return NotFound("memory window", handle);
  Unbind(*mw);
  mws_.Free(handle);
  return absl::OkStatus();
}

void RoceDevice::FreeWindowsOf(uint32_t qpn) {
  mws_.ForEach([&](uint32_t, MemoryWindow& mw) {
    if (mw.type == IBV_MW_TYPE_2 && mw.bound && mw.qpn == qpn) Unbind(mw);
  });
}

ibv_wc_status RoceDevice::BindMw(QueuePair& qp, const SendWr& wr) {
  const MwBind& b = wr.bind;
  MemoryWindow* mw = mws_.Get(b.mw);
  // The window and the QP must share a PD (C10-72); a window of another PD, like one
  // that does not exist, is not this consumer's to bind.
  if (!mw || mw->pd != qp.pd) return IBV_WC_MW_BIND_ERR;
  // The new key keeps the window's index; the consumer chooses its low byte.
  if (KeyIndex(wr.rkey) != b.mw) return IBV_WC_MW_BIND_ERR;
  // LOCAL_WRITE means nothing to a window (remote access only) and is ignored, as rxe
  // and mlx5 do; anything else unknown is an error.
  const int access = b.access & ~IBV_ACCESS_LOCAL_WRITE;
  if (access & ~kWindowAccess) return IBV_WC_MW_BIND_ERR;
  if (mw->type == IBV_MW_TYPE_1) {
    if (access & IBV_ACCESS_ZERO_BASED) return IBV_WC_MW_BIND_ERR;  // o10-36.2.2
  } else {
    if (mw->bound) return IBV_WC_MW_BIND_ERR;  // only a free window binds (o10-37.2.30)
    if (!b.length) return IBV_WC_MW_BIND_ERR;  // no unbinding by bind (o10-37.2.40)
  }
  MemoryRegion* mr = nullptr;
  if (b.length) {
    mr = mrs_.Get(KeyIndex(b.mr_lkey));
    if (!mr || mr->lkey != b.mr_lkey || mr->pd != qp.pd || mr->invalidated || mr->poisoned) {
      return IBV_WC_MW_BIND_ERR;
    }
    if (mr->access & IBV_ACCESS_ZERO_BASED) return IBV_WC_MW_BIND_ERR;
    if (!(mr->access & IBV_ACCESS_MW_BIND)) return IBV_WC_MW_BIND_ERR;  // C10-73
    // A window that may be written needs an MR the device may write (C10-74).
    if ((access & (IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC)) &&
        !(mr->access & IBV_ACCESS_LOCAL_WRITE)) {
      return IBV_WC_MW_BIND_ERR;
    }
    // The window lies inside the MR (C10-75).
    if (b.addr < mr->iova || b.addr - mr->iova > mr->length ||
        b.length > mr->length - (b.addr - mr->iova)) {
      return IBV_WC_MW_BIND_ERR;
    }
  }
  Unbind(*mw);
  mw->rkey = wr.rkey;
  mw->bound = b.length != 0;
  if (mr) {
    mw->mr_lkey = mr->lkey;
    mw->addr = b.addr;
    mw->length = b.length;
    mw->access = access;
    mr->windows++;
  }
  if (mw->type == IBV_MW_TYPE_2) mw->qpn = qp.qpn;
  return IBV_WC_SUCCESS;
}

bool RoceDevice::InvalidateKey(const QueuePair& qp, uint32_t rkey, bool remote) {
  if (IsWindowKey(rkey)) {
    // Only a bound type 2 window of the QP's PD is invalidated (o10-37.2.26); from the
    // remote side, only through the QP it is bound to.
    MemoryWindow* mw = mws_.Get(KeyIndex(rkey));
    if (!mw || mw->rkey != rkey || mw->pd != qp.pd || mw->type != IBV_MW_TYPE_2 || !mw->bound ||
        (remote && mw->qpn != qp.qpn)) {
      return false;
    }
    Unbind(*mw);
    return true;
  }
  MemoryRegion* mr = mrs_.Get(KeyIndex(rkey));
  if (!mr || mr->rkey != rkey || mr->pd != qp.pd) return false;
  mr->invalidated = true;
  return true;
}

const MemoryRegion* RoceDevice::ResolveWindow(const QueuePair& qp, uint32_t rkey, uint64_t* va,
                                              uint64_t len, int access) const {
  const MemoryWindow* mw = mws_.Get(KeyIndex(rkey));
  if (!mw || mw->rkey != rkey || !mw->bound || mw->pd != qp.pd) return nullptr;
  if (mw->type == IBV_MW_TYPE_2 && mw->qpn != qp.qpn) return nullptr;  // type 2B: its QP only
  if ((mw->access & access) != access) return nullptr;
  // The window's own bounds: offsets from 0 for a zero-based window, else addresses.
  const uint64_t base = (mw->access & IBV_ACCESS_ZERO_BASED) ? 0 : mw->addr;
  if (*va < base) return nullptr;
  const uint64_t off = *va - base;
  if (off > mw->length || len > mw->length - off) return nullptr;
  const MemoryRegion* mr = FindMr(mw->mr_lkey);
  if (!mr || mr->invalidated || mr->poisoned) return nullptr;
  *va = mw->addr + off;
  return mr;
}

}  // namespace vrdma::driver
