// vrdmactl: administration of vrdmad in the style of iproute2's `rdma` tool.
//
//   vrdmactl [-j] [-s SOCKET] pdev show [PDEV]
//   vrdmactl [-j] [-s SOCKET] dev show [DEV]
//   vrdmactl [-j] [-s SOCKET] dev add DEV pdev PDEV netdev IFACE
//   vrdmactl [-j] [-s SOCKET] dev del DEV
//   vrdmactl [-j] [-s SOCKET] dev set DEV {qp|cq|mr|pd|srq|ah|mr_bytes} N ...
//   vrdmactl [-j] [-s SOCKET] res show [DEV]
//   vrdmactl [-j] [-s SOCKET] stat show [DEV]
#include <stdlib.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "vdev/protocol/admin_call.h"
#include "vdev/protocol/channel.h"

int main(int argc, char** argv) {
  bool json = false;
  std::vector<std::string> words;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (words.empty() && (a == "-j" || a == "--json")) {
      json = true;
    } else if (words.empty() && (a == "-s" || a == "--socket") && i + 1 < argc) {
      setenv(vrdma::proto::kSocketEnv, argv[++i], 1);
    } else if (words.empty() && (a == "-h" || a == "--help" || a == "help")) {
      std::printf(
          "usage: vrdmactl [-j] [-s SOCKET] OBJECT COMMAND [ARGS]\n"
          "  pdev show [PDEV]\n  dev show [DEV]\n  dev add DEV pdev PDEV netdev IFACE\n"
          "  dev del DEV\n  dev set DEV {qp|cq|mr|pd|srq|ah|mr_bytes} N ...\n"
          "  res show [DEV]\n  stat show [DEV]\n");
      return 0;
    } else {
      words.push_back(a);
    }
  }
  vrdma::proto::AdminReply reply;
  if (int err = vrdma::proto::CallAdmin(words, json, &reply)) {
    std::fprintf(stderr, "vrdmactl: cannot reach vrdmad at %s: %s\n", vrdma::proto::SocketPath().c_str(),
                 std::strerror(err));
    return 1;
  }
  const std::string& text = reply.text;
  if (reply.status) {
    std::fprintf(stderr, "vrdmactl: %s", text.c_str());
    if (text.empty() || text.back() != '\n') std::fputc('\n', stderr);
    return 1;
  }
  std::fputs(text.c_str(), stdout);
  return 0;
}
