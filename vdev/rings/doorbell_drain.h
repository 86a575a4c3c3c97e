// The WQE pump of one client context: when its doorbell rings (or WQEs were left last
// time), the send, receive and shared receive rings of the context are drained into the
// engine. Each slot is copied, then checked (wqe_parse.h), then posted; a WQE that fails a
// check completes in error in its place (IBTA 10.8.3.1) and never reaches the wire.
//
// A drain takes at most a budget of WQEs, so one context's rings cannot hold a pass of
// the engine (and every other context) for as long as they are deep. What is left waits
// for the next drain (pending()), which starts at the ring after the one the budget ran
// out in: the rings of a context take turns, SRQs with QPs.
//
// One drain per context, run on the engine thread: no lock, no allocation per WQE.
#pragma once

#include <cstdint>
#include <functional>
#include <unordered_map>
#include <unordered_set>

#include "driver/device.h"
#include "vdev/rings/wqe_parse.h"
#include "vdev/rings/wqe_rings.h"

namespace vrdma::vdev {

// A QP's two rings as the daemon sees them.
struct QpRings {
  uint32_t qpn = 0;
  int type = IBV_QPT_RC;
  uint64_t user_handle = 0;
  RingView sq, rq;
  SendQueueLimits send_limits;
  uint32_t max_recv_sge = 0;
  bool broken = false;  // the client corrupted a ring index: the QP is in error
};

struct SrqRing {
  uint32_t handle = 0;
  uint64_t user_handle = 0;
  RingView ring;
  uint32_t max_sge = 0;
  bool broken = false;
};

// What a drain did, for the vdev's counters.
struct DrainCounters {
  uint64_t send_wqes = 0;
  uint64_t recv_wqes = 0;
  uint64_t rejected_wqes = 0;
};

class DoorbellDrain {
 public:
  // `owned_ahs` holds the context's AH handles (keys): a UD WQE must name one of them.
  // `on_broken` raises the async event of a ring the client broke (its user handle and
  // IBV_EVENT_QP_FATAL or IBV_EVENT_SRQ_ERR).
  DoorbellDrain(driver::RoceDevice* device, DrainCounters* counters,
                const std::unordered_map<uint32_t, uint32_t>* owned_ahs,
                std::function<void(uint64_t, uint32_t)> on_broken);

  void AddQp(const QpRings& qp) { qps_[qp.qpn] = qp; }
  void RemoveQp(uint32_t qpn) { qps_.erase(qpn); }
  void AddSrq(const SrqRing& srq) { srqs_[srq.handle] = srq; }
  void RemoveSrq(uint32_t handle) { srqs_.erase(handle); }
  const SrqRing* FindSrq(uint32_t handle) const;
  void Clear();

  // Moves what the client posted into the engine, at most `budget` WQEs (checked and
  // rejected ones included). Returns how many WQEs moved; leaves pending() set when WQEs
  // wait in a ring (a queue of the engine was full, or the budget ran out).
  uint32_t Drain(uint32_t budget = UINT32_MAX);
  bool pending() const { return pending_; }
  void set_pending() { pending_ = true; }

 private:
  // Each drains its ring(s) within budget_; false when the budget ran out.
  bool DrainQp(QpRings& qp);
  bool DrainSrq(SrqRing& srq);
  // Drains the QPs (or SRQs) of `rings` in [from, to) in turn; false, with the ring the
  // next drain starts at noted, when the budget ran out.
  template <typename Map>
  bool DrainRange(Map& rings, typename Map::iterator from, typename Map::iterator to, bool srqs);

  driver::RoceDevice* device_;
  DrainCounters* counters_;
  const std::unordered_map<uint32_t, uint32_t>* owned_ahs_;
  std::function<void(uint64_t, uint32_t)> on_broken_;
  std::unordered_map<uint32_t, QpRings> qps_;
  std::unordered_map<uint32_t, SrqRing> srqs_;
  bool pending_ = false;
  uint32_t budget_ = 0;
  // Where the next drain starts: a QP's number or an SRQ's handle.
  bool resume_srq_ = false;
  uint32_t resume_key_ = 0;
};

}  // namespace vrdma::vdev
