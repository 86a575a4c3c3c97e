// vrdmad's command line, in DPDK's usual form:
//   vrdmad [EAL args] -- [vrdmad args]      (no `--`: every argument is vrdmad's)
// vrdmad args: --socket PATH, --log-level LEVEL, --pdev SPEC (repeatable),
// --pcap FILE, --admin-group GROUP, --max-connections N, --max-connections-per-user N,
// --vdev-default-share N/D, --dev-dir DIR|none, --config FILE. A config file holds the same arguments, whitespace
// separated, `#` to end of line a comment; it may contain the `--` too.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "vfio/port_spec.h"

namespace vrdma::vrdmad {

struct VrdmadOptions {
  bool eal_given = false;             // the command line had EAL arguments (a `--`)
  std::vector<std::string> eal;       // as given, completed with the defaults they leave out
  std::string socket_path;            // empty: the default
  std::string log_level;              // empty: info
  std::vector<vfio::PortSpec> pdevs;  // empty: the embedded default pdev0
  std::string admin_group;            // --admin-group: a group name or number; empty: root only
  bool netns_shared = false;          // --netns-mode shared (default exclusive)
  uint32_t max_connections = 0;       // --max-connections: 0, from the descriptor limit
  uint32_t max_connections_per_user = 0;  // --max-connections-per-user: 0, the default
  // --max-mappings-per-user, --max-descriptors-per-user: 0, a quarter of what is left
  uint64_t max_mappings_per_user = 0;
  uint64_t max_descriptors_per_user = 0;
  // --vdev-default-share N/D: the share of its pdev's limits a new vdev's quotas are
  // (Registry::SetDefaultShare); {0, 0}: the registry's default, 1/8.
  std::pair<uint64_t, uint64_t> vdev_default_share{0, 0};
  // --dev-dir: where each vdev's character node goes (vdev/device_node.h); `none`: nowhere.
  std::string dev_dir = "/dev/infiniband";
  bool help = false;
};

// Parses argv[1..argc). `read_file` reads a --config file (tests pass their own).
absl::StatusOr<VrdmadOptions> ParseVrdmadOptions(
    const std::vector<std::string>& args,
    absl::StatusOr<std::string> (*read_file)(const std::string& path));

// The EAL arguments vrdmad runs with: the user's `eal`, followed by each of vrdmad's
// defaults the user did not decide otherwise (the user's choice always wins):
//   --no-huge        unless a hugepage option is given (--huge-dir, --socket-mem,
//                    --socket-limit, --huge-unlink, --single-file-segments, --legacy-mem,
//                    --match-allocations) or PCI devices are picked by hand (-a/-b: a
//                    NIC's DMA wants hugepages, DPDK's own default)
//   -m 512           when running without hugepages and no -m/--socket-mem is given
//                    (DPDK's no-huge default of 64 MiB holds no pdev's mbuf pool)
//   --no-pci         when no pdev is a PCI NIC and no -a/-b/--no-pci is given
//   -a BDF per PCI pdev, when no -a/-b is given (the EAL probes no other NIC)
//   --no-shconf      unless --file-prefix or --proc-type is given (no shared runtime
//                    files, so several daemons, one per namespace, coexist)
//   --no-telemetry   unless --telemetry/--no-telemetry is given
//   -l 0             unless -l/-c/--lcores is given
//   --log-level=lib.eal:error  unless a --log-level is given
// Refused: --no-pci with a PCI pdev.
absl::StatusOr<std::vector<std::string>> CompleteEalArgs(const std::vector<std::string>& eal,
                                                         const std::vector<vfio::PortSpec>& pdevs);

// The EAL arguments when none are given: CompleteEalArgs({}, pdevs).
std::vector<std::string> DefaultEalArgs(const std::vector<vfio::PortSpec>& pdevs);

absl::StatusOr<std::string> ReadConfigFile(const std::string& path);

}  // namespace vrdma::vrdmad
