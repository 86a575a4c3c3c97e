// vrdmactl: administration of vrdmad in the style of iproute2's `rdma` tool.
//
//   vrdmactl [-j [-p]] [-s SOCKET] [-d DEV] pdev show [PDEV]
//   vrdmactl ... dev show [DEV] | dev add DEV [pdev PDEV] netdev IFACE [netns PATH] | dev del DEV
//   vrdmactl ... dev set DEV {qp|cq|mr|pd|srq|ah|mr_bytes|ring_bytes} N ...   (N: 16, 4K, 1G, ...)
//   vrdmactl ... link show [DEV] | link add DEV type vrdma netdev IFACE [pdev PDEV] | link del DEV
//   vrdmactl ... res show [DEV] | res show {qp|cq|mr|pd|srq|ah} [dev DEV]
//   vrdmactl ... stat show [DEV]
//   vrdmactl pci bind BDF [--force] | pci unbind BDF | pci show BDF   (local, no daemon)
//
// A command is parsed and checked here before the daemon is reached (the daemon checks it
// again). Exit status: 0; 1 when a value is refused or the daemon refuses the command or
// cannot be reached; 2 for a command line that is not a command (the usage is printed).
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "vdev/protocol/admin_call.h"
#include "vdev/protocol/channel.h"
#include "vfio/pci_bind.h"

namespace {

int UsageError(const std::string& error) {
  if (!error.empty()) std::fprintf(stderr, "vrdmactl: %s\n", error.c_str());
  std::fprintf(stderr, "%s\n", vrdma::proto::AdminUsage().c_str());
  return 2;
}

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
    if (st.ok())
      std::printf("%s: driver %s\n", w[2].c_str(), drv->empty() ? "(none)" : drv->c_str());
  } else if (w.size() == 2 && (w[1] == "help" || w[1] == "-h" || w[1] == "--help")) {
    std::printf("usage: vrdmactl pci bind BDF [--force] | pci unbind BDF | pci show BDF\n");
    return 0;
  } else {
    std::fprintf(stderr,
                 "usage: vrdmactl pci bind BDF [--force] | pci unbind BDF | pci show BDF\n");
    return 2;
  }
  if (!st.ok()) {
    std::fprintf(stderr, "vrdmactl: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  return 0;
}

// -d DEV: the device a show command is about when it names none itself.
bool ApplyDevice(const std::string& device, vrdma::proto::AdminCommand* cmd, std::string* error) {
  if (device.empty()) return true;
  bool show = cmd->op == vrdma::proto::AdminOp::kDevShow ||
              cmd->op == vrdma::proto::AdminOp::kResShow ||
              cmd->op == vrdma::proto::AdminOp::kStatShow;
  if (cmd->name.empty() && show) {
    cmd->name = device;
    return true;
  }
  if (cmd->name != device) {
    *error = "-d " + device + " disagrees with the command's device '" + cmd->name + "'";
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  uint32_t flags = 0;
  std::string device;
  std::vector<std::string> words;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (!words.empty()) {
      words.push_back(a);
      continue;
    }
    // An option's value: "-s PATH", "--socket PATH" or "--socket=PATH".
    auto value = [&](const char* short_name, const char* long_name, std::string* out) {
      std::string eq = std::string(long_name) + "=";
      if (a.compare(0, eq.size(), eq) == 0) {
        *out = a.substr(eq.size());
        return true;
      }
      if (a != short_name && a != long_name) return false;
      if (i + 1 >= argc) {
        std::exit(UsageError(a + " needs a value"));
      }
      *out = argv[++i];
      return true;
    };
    std::string socket;
    if (a == "-j" || a == "--json") {
      flags |= vrdma::proto::kAdminJson;
    } else if (a == "-p" || a == "--pretty") {
      flags |= vrdma::proto::kAdminPretty;
    } else if (a == "-jp" || a == "-pj") {
      flags |= vrdma::proto::kAdminJson | vrdma::proto::kAdminPretty;
    } else if (value("-s", "--socket", &socket)) {
      if (socket.empty()) return UsageError("empty socket path");
      setenv(vrdma::proto::kSocketEnv, socket.c_str(), 1);
    } else if (value("-d", "--device", &device)) {
      if (device.empty()) return UsageError("empty device name");
    } else if (a == "-h" || a == "--help") {
      std::printf("%s\n", vrdma::proto::AdminUsage().c_str());
      return 0;
    } else if (a.size() > 1 && a[0] == '-') {
      return UsageError("unknown option " + a);
    } else {
      words.push_back(a);
    }
  }
  if (!words.empty() && words[0] == "pci") return Pci(words);

  vrdma::proto::AdminCommand cmd;
  vrdma::proto::AdminParseResult parsed = vrdma::proto::ParseAdminCommand(words, &cmd);
  switch (parsed.result) {
    case vrdma::proto::AdminParse::kHelp:
      std::printf("%s\n", vrdma::proto::AdminUsage().c_str());
      return 0;
    case vrdma::proto::AdminParse::kUsage:
      return UsageError(parsed.error);
    case vrdma::proto::AdminParse::kBadValue:
      std::fprintf(stderr, "vrdmactl: %s\n", parsed.error.c_str());
      return 1;
    case vrdma::proto::AdminParse::kOk:
      break;
  }
  std::string error;
  if (!ApplyDevice(device, &cmd, &error)) return UsageError(error);

  // A vdev in another network namespace: the namespace goes by descriptor, opened here
  // with the caller's rights.
  int netns_fd = -1;
  if (cmd.op == vrdma::proto::AdminOp::kDevAdd && !cmd.netns.empty()) {
    netns_fd = open(cmd.netns.c_str(), O_RDONLY | O_CLOEXEC);
    if (netns_fd < 0) {
      std::fprintf(stderr, "vrdmactl: netns %s: %s\n", cmd.netns.c_str(), std::strerror(errno));
      return 1;
    }
  }
  vrdma::proto::AdminReply reply;
  int err = vrdma::proto::CallAdminWithFlags(vrdma::proto::AdminCommandWords(cmd), flags, &reply,
                                             "", netns_fd);
  if (netns_fd >= 0) close(netns_fd);
  if (err) {
    std::fprintf(stderr,
                 "vrdmactl: cannot reach vrdmad at %s (%s): is vrdmad running? -s/--socket or "
                 "VRDMA_SOCKET names its socket\n",
                 vrdma::proto::SocketPath().c_str(), std::strerror(err));
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
