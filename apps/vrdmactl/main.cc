// vrdmactl: administration of vrdmad in the style of iproute2's `rdma` tool.
//
//   vrdmactl [-j] [-s SOCKET] pdev show [PDEV]
//   vrdmactl [-j] [-s SOCKET] dev show [DEV]
//   vrdmactl [-j] [-s SOCKET] dev add DEV pdev PDEV netdev IFACE
//   vrdmactl [-j] [-s SOCKET] dev del DEV
//   vrdmactl [-j] [-s SOCKET] dev set DEV {qp|cq|mr|pd|srq|ah|mr_bytes} N ...
//   vrdmactl [-j] [-s SOCKET] res show [DEV]
//   vrdmactl [-j] [-s SOCKET] stat show [DEV]
//   vrdmactl pci bind BDF [--force] | pci unbind BDF | pci show BDF   (local, no daemon)
#include <stdlib.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "vdev/protocol/admin_call.h"
#include "vdev/protocol/channel.h"
#include "vfio/pci_bind.h"

namespace {

// `pci` works on this host's sysfs directly, as dpdk-devbind does: it needs no daemon
// (vrdmad opens a bound NIC with --pdev NAME,pci=BDF).
int Pci(const std::vector<std::string>& w) {
  bool force = w.size() == 4 && w[3] == "--force";
  absl::Status st;
  if (w.size() >= 3 && w[1] == "bind" && (w.size() == 3 || force)) {
    st = vrdma::vfio::PciBindVfio(w[2], force);
    if (st.ok()) std::printf("%s: bound to vfio-pci\n", w[2].c_str());
  } else if (w.size() == 3 && w[1] == "unbind") {
    st = vrdma::vfio::PciUnbindVfio(w[2]);
    if (st.ok()) std::printf("%s: unbound from vfio-pci, given back to its driver\n", w[2].c_str());
  } else if (w.size() == 3 && w[1] == "show") {
    absl::StatusOr<std::string> drv = vrdma::vfio::PciDriverOf(w[2]);
    st = drv.status();
    if (st.ok()) std::printf("%s: driver %s\n", w[2].c_str(), drv->empty() ? "(none)" : drv->c_str());
  } else {
    std::fprintf(stderr, "usage: vrdmactl pci bind BDF [--force] | pci unbind BDF | pci show BDF\n");
    return 2;
  }
  if (!st.ok()) {
    std::fprintf(stderr, "vrdmactl: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace

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
          "  res show [DEV]\n  stat show [DEV]\n"
          "  pci bind BDF [--force]\n  pci unbind BDF\n  pci show BDF\n");
      return 0;
    } else {
      words.push_back(a);
    }
  }
  if (!words.empty() && words[0] == "pci") return Pci(words);
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
