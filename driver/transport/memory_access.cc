// Gather and scatter through SGE lists (local keys) and remote key checks
// (IBTA 10.6.3: a key is valid only in its PD, with the access the operation needs).
//
// Every copy to or from client memory is followed by LostPage: a page that vanished
// under the copy (driver/res/fault_guard.h) poisons its MR, and the access fails as one
// through an invalid key would (IBTA 10.6.3): a Local Protection Error for the local side,
// a Remote Access Error NAK for the remote side (IBTA 9.7.5.2).
#include <cstring>

#include "driver/transport/device.h"

namespace vrdma::driver {

namespace {

// Walks `len` bytes of an SGE list starting `offset` bytes in, calling
// chunk(sge, sge_offset, n, done) for each piece. Returns false if the list is too short.
template <typename F>
bool WalkSges(const Sge* sges, uint32_t nsge, uint32_t offset, uint32_t len, F&& chunk) {
  uint32_t done = 0;
  for (uint32_t i = 0; i < nsge && done < len; ++i) {
    uint32_t sl = sges[i].length;
    if (offset >= sl) {
      offset -= sl;
      continue;
    }
    uint32_t n = sl - offset;
    if (n > len - done) n = len - done;
    if (!chunk(sges[i], offset, n, done)) return false;
    done += n;
    offset = 0;
  }
  return done == len;
}

}  // namespace

RoceDevice::Access RoceDevice::GatherSges(const QueuePair& qp, const Sge* sges, uint32_t nsge,
                                          uint32_t offset, uint8_t* dst, uint32_t len) {
  bool prot = false;
  bool ok = WalkSges(sges, nsge, offset, len,
                     [&](const Sge& sge, uint32_t off, uint32_t n, uint32_t done) {
                       const MemoryRegion* mr = FindMr(sge.lkey);
                       uint8_t* src = (mr && mr->pd == qp.pd && !mr->poisoned)
                                          ? TranslateMr(*mr, sge.addr + off, n)
                                          : nullptr;
                       if (!src) {
                         prot = true;
                         return false;
                       }
                       std::memcpy(dst + done, src, n);
                       if (LostPage(*mr)) {
                         prot = true;
                         return false;
                       }
                       return true;
                     });
  if (prot) return Access::kLocalProt;
  return ok ? Access::kOk : Access::kLength;
}

RoceDevice::Access RoceDevice::ScatterSges(const QueuePair& qp, const Sge* sges, uint32_t nsge,
                                           uint32_t offset, const uint8_t* src, uint32_t len) {
  bool prot = false;
  bool ok = WalkSges(
      sges, nsge, offset, len, [&](const Sge& sge, uint32_t off, uint32_t n, uint32_t done) {
        const MemoryRegion* mr = FindMr(sge.lkey);
        uint8_t* dst =
            (mr && mr->pd == qp.pd && !mr->poisoned && (mr->access & IBV_ACCESS_LOCAL_WRITE))
                ? TranslateMr(*mr, sge.addr + off, n)
                : nullptr;
        if (!dst) {
          prot = true;
          return false;
        }
        std::memcpy(dst, src + done, n);
        if (LostPage(*mr)) {
          prot = true;
          return false;
        }
        return true;
      });
  if (prot) return Access::kLocalProt;
  return ok ? Access::kOk : Access::kLength;
}

uint8_t* RoceDevice::ResolveRkey(const QueuePair& qp, uint32_t rkey, uint64_t va, uint64_t len,
                                 int access, const MemoryRegion** mr_out) {
  // The QP must grant the remote access (IBTA 10.2.4.1), and then the MR (10.6.3.2) or
  // the window onto one (10.6.7).
  if ((qp.access_flags & access) != access) return nullptr;
  const MemoryRegion* mr;
  if (IsWindowKey(rkey)) [[unlikely]] {
    mr = ResolveWindow(qp, rkey, &va, len, access);
    if (!mr) return nullptr;
  } else {
    mr = FindMr(rkey);
    if (!mr || mr->invalidated || mr->poisoned || mr->pd != qp.pd) return nullptr;
    if ((mr->access & access) != access) return nullptr;
  }
  if (mr_out) *mr_out = mr;
  return TranslateMr(*mr, va, len);
}

void RoceDevice::SyncFaults() {
  // Read first: a fault during the scan moves it again and brings the next caller here.
  faults_seen_ = fault_guard::Generation();
  fault_guard::ForEachFaulted([&](uintptr_t begin, uintptr_t end) {
    mrs_.ForEach([&](uint32_t, MemoryRegion& mr) {
      const uintptr_t host = reinterpret_cast<uintptr_t>(mr.host);
      if (!mr.poisoned && mr.length && host < end && host + mr.length > begin) {
        mr.poisoned = true;
        counters_.mr_poisoned++;
      }
    });
  });
}

}  // namespace vrdma::driver
