// DPDK Environment Abstraction Layer bring-up for the process.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace vrdma::vfio {

// What the process does with the EAL when it exits.
enum class EalExit {
  kLeave,             // nothing (tests, tools: DPDK's own behaviour)
  kCleanUpOnFailure,  // a daemon: on a non-zero exit status, rte_eal_cleanup() and
                      // remove the runtime directory if this process created it
};

// Initialises DPDK's EAL once per process with `args` (without argv[0]), in DPDK's
// usual command-line form. A second call with the EAL already up returns OK. When
// initialisation fails, the runtime directory (/var/run/dpdk/PREFIX) is removed if this
// call created it.
absl::Status InitEal(const std::vector<std::string>& args, EalExit on_exit = EalExit::kLeave);

// The runtime directory DPDK uses for `args`, as rte_eal_init derives it: /var/run/dpdk
// for root, else $XDG_RUNTIME_DIR/dpdk or /tmp/dpdk; then the --file-prefix ("rte").
std::string EalRuntimeDir(const std::vector<std::string>& args);

// The EAL's memory: bytes in its heaps and bytes free (every socket).
struct EalMemory {
  uint64_t total = 0;
  uint64_t free = 0;
  uint64_t largest_free = 0;  // the largest free block
};
EalMemory EalMemoryStats();

// EAL arguments for a process that needs mempools and mbufs but no devices and no
// hugepages: tests, fuzzers, benchmarks and the embedded default.
std::vector<std::string> NoDeviceEalArgs();

bool EalInitialized();

}  // namespace vrdma::vfio
