// Memory windows (IBTA 10.6.7): remote access to part of an MR, granted and revoked by
// the consumer with work requests instead of registrations.
//
// Type 1 windows belong to a PD; ibv_bind_mw binds them (a BIND_MW WQE the provider
// posts) and a bind of length 0 unbinds them. Type 2 windows (2B: bound to one QP) are
// bound with a BIND_MW work request, only while free, and are freed by a Local
// Invalidate on that QP or a SEND with Invalidate arriving on it.
#pragma once

#include <infiniband/verbs.h>

#include <cstdint>

#include "driver/res/memory_region.h"

namespace vrdma::driver {

// Window handles start here, so a key names a window or an MR by its index alone (bit 31
// of a window's rkey is set; MR keys stay far below).
inline constexpr uint32_t kMwHandleBase = 1u << 23;
inline bool IsWindowKey(uint32_t key) { return KeyIndex(key) >= kMwHandleBase; }

struct MemoryWindow {
  uint32_t pd = 0;
  ibv_mw_type type = IBV_MW_TYPE_1;
  // The key remote requests name it by: its handle, and a key byte the consumer picks at
  // each bind (ibv_inc_rkey), so stale keys of an earlier binding fail (IBTA 10.6.7.2).
  uint32_t rkey = 0;
  bool bound = false;    // type 2: valid (else free); type 1: bound to an MR
  uint32_t mr_lkey = 0;  // the MR it opens onto
  uint32_t qpn = 0;      // type 2: the QP it is bound to, the only one it serves
  uint64_t addr = 0;     // the window: [addr, addr + length) of the MR's addresses
  uint64_t length = 0;
  int access = 0;  // IBV_ACCESS_REMOTE_READ|WRITE|ATOMIC, IBV_ACCESS_ZERO_BASED
  uint32_t owner = 0;
};

}  // namespace vrdma::driver
