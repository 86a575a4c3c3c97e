// One administration request to the daemon (vrdmactl and the public C API): the
// command's words out, the daemon's status and text back.
#pragma once

#include <string>
#include <vector>

namespace vrdma::proto {

struct AdminReply {
  int status = 0;    // 0, or the errno the daemon refused the command with
  std::string text;  // what to print, or the daemon's message on failure
};

// Connects to the daemon (VRDMA_SOCKET or the default path), runs `words` and fills
// `out`. Returns 0, or the errno of reaching the daemon (then `out` is untouched).
int CallAdmin(const std::vector<std::string>& words, bool json, AdminReply* out,
              const std::string& socket_path = "");

}  // namespace vrdma::proto
