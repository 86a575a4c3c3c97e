// The answer to one client request, filled by the request's handler and sent by the
// server: a status (0 or a positive errno), a payload, and descriptors to pass.
#pragma once

#include <cstdint>
#include <vector>

namespace vrdma::vdev {

struct Reply {
  int status = 0;
  std::vector<uint8_t> payload;
  // Sent with SCM_RIGHTS (the receiver gets copies); the handler's objects keep owning them.
  std::vector<int> fds;
};

}  // namespace vrdma::vdev
