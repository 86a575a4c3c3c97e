// The IBTA QP state machine (IBTA Vol 1, 10.3.1 and 11.2.4.2 "Modify Queue Pair"):
// which transitions exist, and for each the attributes that must and may be given.
#pragma once

#include <infiniband/verbs.h>

#include "absl/status/status.h"

namespace vrdma::driver {

// ibv_qp_type has no GSI; the engine's GSI QP1 uses this value.
inline constexpr int kQpTypeGsi = 0x1000;

struct QpTransitionRule {
  bool valid = false;
  int required = 0;  // IBV_QP_* attributes that must be in the mask
  int optional = 0;  // IBV_QP_* attributes that may be in the mask
};

// The rule for qp_type (IBV_QPT_RC, IBV_QPT_UC, IBV_QPT_UD or kQpTypeGsi) moving from
// `cur` to `next`. Unknown types and states give an invalid rule.
QpTransitionRule GetQpTransitionRule(int qp_type, ibv_qp_state cur, ibv_qp_state next);

// OK when `attr_mask` is a legal modify of a `qp_type` QP in state `cur` to `next`:
// the transition exists, every required attribute is present and nothing else is.
// A mask without IBV_QP_STATE is a modify within the current state (next == cur).
absl::Status CheckModifyQp(int qp_type, ibv_qp_state cur, ibv_qp_state next, int attr_mask);

const char* QpStateName(ibv_qp_state state);

}  // namespace vrdma::driver
