// vrdmad's command line, in DPDK's usual form:
//   vrdmad [EAL args] -- [vrdmad args]      (no `--`: every argument is vrdmad's)
// vrdmad args: --socket PATH, --log-level LEVEL, --pdev SPEC (repeatable),
// --pcap FILE, --config FILE. A config file holds the same arguments, whitespace
// separated, `#` to end of line a comment; it may contain the `--` too.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "vfio/port_spec.h"

namespace vrdma {

struct VrdmadOptions {
  bool eal_given = false;         // the command line had EAL arguments (a `--`)
  std::vector<std::string> eal;   // as given, or the defaults for the pdevs
  std::string socket_path;        // empty: the default
  std::string log_level;          // empty: info
  std::vector<vfio::PortSpec> pdevs;  // empty: the embedded default pdev0
  bool help = false;
};

// Parses argv[1..argc). `read_file` reads a --config file (tests pass their own).
absl::StatusOr<VrdmadOptions> ParseVrdmadOptions(
    const std::vector<std::string>& args,
    absl::StatusOr<std::string> (*read_file)(const std::string& path));

// EAL arguments when none are given: one lcore (0), no hugepages, no shared runtime
// files (several daemons, one per namespace, coexist), PCI only for the pdevs' own
// addresses.
std::vector<std::string> DefaultEalArgs(const std::vector<vfio::PortSpec>& pdevs);

absl::StatusOr<std::string> ReadConfigFile(const std::string& path);

}  // namespace vrdma
