// XRC domain (IBTA annex A14): groups XRC SRQs and XRC receive QPs; a request to an XRC
// receive QP may name only an SRQ of the same domain.
#pragma once

#include <cstdint>

namespace vrdma::driver {

struct XrcDomain {
  uint32_t owner = 0;
  uint32_t use_count = 0;  // XRC SRQs and XRC receive QPs in it
};

}  // namespace vrdma::driver
