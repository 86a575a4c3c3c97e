#include "vfio/eal.h"

#include <rte_eal.h>
#include <rte_errno.h>

#include <mutex>

#include "absl/strings/str_cat.h"

namespace vrdma::vfio {
namespace {
std::mutex g_eal_mu;
bool g_eal_up = false;
}  // namespace

absl::Status InitEal(const std::vector<std::string>& args) {
  std::lock_guard<std::mutex> lock(g_eal_mu);
  if (g_eal_up) return absl::OkStatus();
  // rte_eal_init may keep pointers into argv: keep the strings alive for the process.
  static std::vector<std::string> storage;
  static std::vector<char*> argv;
  storage.clear();
  storage.push_back("vrdma");
  storage.insert(storage.end(), args.begin(), args.end());
  argv.clear();
  for (auto& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  int rc = rte_eal_init(static_cast<int>(storage.size()), argv.data());
  if (rc < 0) {
    return absl::InternalError(
        absl::StrCat("DPDK EAL initialisation failed: ", rte_strerror(rte_errno)));
  }
  g_eal_up = true;
  return absl::OkStatus();
}

std::vector<std::string> NoDeviceEalArgs() {
  return {"--no-huge", "--no-pci", "--no-shconf", "--no-telemetry",           "-l",
          "0",         "-m",       "512",         "--log-level=lib.eal:error"};
}

bool EalInitialized() {
  std::lock_guard<std::mutex> lock(g_eal_mu);
  return g_eal_up;
}

}  // namespace vrdma::vfio
