#include "vfio/eal.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_malloc.h>
#include <rte_memory.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>

#include "absl/strings/str_cat.h"

namespace vrdma::vfio {
namespace {
std::mutex g_eal_mu;
bool g_eal_up = false;
std::string g_created_runtime_dir;  // the runtime directory InitEal created, if any

void RemoveCreatedRuntimeDir() {
  if (g_created_runtime_dir.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(g_created_runtime_dir, ec);
  g_created_runtime_dir.clear();
}

// on_exit(3) handler of a daemon: a failed start leaves nothing of the EAL behind.
void CleanUpOnFailedExit(int status, void*) {
  if (status == 0) return;
  rte_eal_cleanup();
  RemoveCreatedRuntimeDir();
}

}  // namespace

std::string EalRuntimeDir(const std::vector<std::string>& args) {
  std::string prefix = "rte";
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--file-prefix" && i + 1 < args.size()) prefix = args[i + 1];
    if (args[i].starts_with("--file-prefix=")) prefix = args[i].substr(14);
  }
  std::string base = "/var/run";
  if (getuid() != 0) {
    const char* xdg = getenv("XDG_RUNTIME_DIR");
    base = xdg != nullptr ? xdg : "/tmp";
  }
  return absl::StrCat(base, "/dpdk/", prefix);
}

absl::Status InitEal(const std::vector<std::string>& args, EalExit on_exit_policy) {
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
  const std::string runtime_dir = EalRuntimeDir(args);
  std::error_code ec;
  const bool existed = std::filesystem::exists(runtime_dir, ec);
  int rc = rte_eal_init(static_cast<int>(storage.size()), argv.data());
  // Only the directory rte_eal_init really used, and only if it is new.
  const char* used = rte_eal_get_runtime_dir();
  if (!existed && used != nullptr && runtime_dir == used &&
      std::filesystem::exists(runtime_dir, ec)) {
    g_created_runtime_dir = runtime_dir;
  }
  if (rc < 0) {
    int err = rte_errno;
    RemoveCreatedRuntimeDir();
    return absl::InternalError(absl::StrCat("DPDK EAL initialisation failed: ", rte_strerror(err)));
  }
  g_eal_up = true;
  if (on_exit_policy == EalExit::kCleanUpOnFailure) on_exit(CleanUpOnFailedExit, nullptr);
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

EalMemory EalMemoryStats() {
  EalMemory m;
  for (unsigned i = 0; i < rte_socket_count(); ++i) {
    rte_malloc_socket_stats s{};
    if (rte_malloc_get_socket_stats(rte_socket_id_by_idx(i), &s) != 0) continue;
    m.total += s.heap_totalsz_bytes;
    m.free += s.heap_freesz_bytes;
    m.largest_free = std::max<uint64_t>(m.largest_free, s.greatest_free_size);
  }
  return m;
}

}  // namespace vrdma::vfio
