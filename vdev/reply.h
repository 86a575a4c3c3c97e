// The answer to one client request, filled by the request's handler and sent by the
// server: a status (0 or a positive errno), a payload, and descriptors to pass.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <vector>

namespace vrdma::vdev {

// A handler's status for "answered later": the server sends nothing yet and reads no
// further request of the connection until RequestHandler::Resume gives the reply.
inline constexpr int kReplyLater = -1;

struct Reply {
  Reply() = default;
  Reply(const Reply&) = delete;
  Reply& operator=(const Reply&) = delete;
  ~Reply() {
    for (int fd : owned_fds) close(fd);
  }

  int status = 0;  // or kReplyLater
  std::vector<uint8_t> payload;
  // Sent with SCM_RIGHTS (the receiver gets copies); the handler's objects keep owning them.
  std::vector<int> fds;
  // Descriptors made for this answer alone (an admin text too long for one message):
  // sent after `fds`, closed with the reply.
  std::vector<int> owned_fds;

  std::vector<int> AllFds() const {
    std::vector<int> all = fds;
    all.insert(all.end(), owned_fds.begin(), owned_fds.end());
    return all;
  }
};

}  // namespace vrdma::vdev
