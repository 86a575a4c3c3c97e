// The sysfs view of vrdma devices, for programs under vrdma-run: the parts of
// /sys/class/infiniband, /sys/class/infiniband_verbs and /sys/class/infiniband_mad that RDMA
// tools read (ibstat, ibstatus, rdma-core's Python tests, scripts finding a device's
// interface through device/net), from what vrdmad says of the devices this process may
// see (proto::Op::kDescribeDevice).
//
// The view is a directory tree of this process's own under /dev/shm (or /tmp), rebuilt
// when a path into it is looked up and the tree is older than kViewLifetime; the libc
// hooks (lib/libc_hooks.cc) send absolute paths under those three directories there. The
// kernel's own entries, when it has RDMA devices, appear in the view as links to
// themselves. A tree lives until the process that built it exits (or until the second
// rebuild after it); trees of processes that died without removing theirs are removed by
// the next view built by the same user.
//
// Per device: node_type, node_guid, sys_image_guid, node_desc, fw_ver, hw_rev, hca_type,
// board_id, parent (a vdev's interface, as rxe's), device/net/IFACE (a link to the
// interface in /sys/class/net), ports/1/{state, phys_state, rate, lid, sm_lid,
// lid_mask_count, sm_sl, cap_mask, link_layer, gids/N, gid_attrs/types/N,
// gid_attrs/ndevs/N, pkeys/N, hw_counters/*} (the counters are the vdev's `vrdmactl stat
// show` counters); infiniband_verbs/NAME/{ibdev, abi_version, dev};
// infiniband_verbs/abi_version and infiniband_mad/abi_version.
#pragma once

#include <chrono>
#include <cstddef>

namespace vrdma::provider {

inline constexpr std::chrono::milliseconds kViewLifetime{200};

// When `path` is in the view, writes the path to use instead into `out` (size `cap`) and
// returns true; building or refreshing the tree first. False for any other path, or when
// no tree can be built (the real path is used).
bool SysfsRedirect(const char* path, char* out, size_t cap);

// While one exists on a thread, that thread sees the kernel's own sysfs and RDMA netlink
// (rdma_netlink_socket.h): libibverbs' own device scan (which would otherwise find
// devices that no driver of its own claims) and the view's builder.
class RealKernelScope {
 public:
  RealKernelScope();
  ~RealKernelScope();
  RealKernelScope(const RealKernelScope&) = delete;
  RealKernelScope& operator=(const RealKernelScope&) = delete;
  static bool Active();  // on this thread
};

}  // namespace vrdma::provider
