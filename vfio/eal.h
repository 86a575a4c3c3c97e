// DPDK Environment Abstraction Layer bring-up for the process.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace vrdma::vfio {

// Initialises DPDK's EAL once per process with `args` (without argv[0]), in DPDK's
// usual command-line form. A second call with the EAL already up returns OK.
absl::Status InitEal(const std::vector<std::string>& args);

// EAL arguments for a process that needs mempools and mbufs but no devices and no
// hugepages: tests, fuzzers, benchmarks and the embedded default.
std::vector<std::string> NoDeviceEalArgs();

bool EalInitialized();

}  // namespace vrdma::vfio
