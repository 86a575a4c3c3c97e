// ibv_create_flow's rule, as libibverbs lays it out (struct ibv_flow_attr followed by its
// specs), checked and translated into the engine's FlowRule. The bytes are the client's:
// every size and count is checked against what was received before anything is read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "driver/device.h"  // driver::FlowRule

namespace vrdma::vdev {

// 0 and *out filled, or the errno ibv_create_flow gives (EINVAL: malformed; EOPNOTSUPP:
// a spec type, flag or rule type not offered) with *why saying what.
int ParseFlowAttr(const uint8_t* bytes, size_t len, driver::FlowRule* out, std::string* why);

}  // namespace vrdma::vdev
