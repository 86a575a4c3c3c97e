// The answer to one client request, filled by the request's handler and sent by the
// server: a status (0 or a positive errno), a payload, and descriptors to pass.
#pragma once

#include <cstdint>
#include <vector>

namespace vrdma::vdev {

// A handler's status for "answered later": the server sends nothing yet and reads no
// further request of the connection until RequestHandler::Resume gives the reply.
inline constexpr int kReplyLater = -1;

struct Reply {
  int status = 0;  // or kReplyLater
  std::vector<uint8_t> payload;
  // Sent with SCM_RIGHTS (the receiver gets copies); the handler's objects keep owning them.
  std::vector<int> fds;
};

}  // namespace vrdma::vdev
