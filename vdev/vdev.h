// A virtual RDMA device: a view on one pdev, bound to one network interface, with its
// own GID table (mirroring the interface's addresses) and its own resource quotas.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "driver/device.h"
#include "vdev/access.h"
#include "vdev/netdev/netns.h"
#include "vdev/pdev.h"

namespace vrdma::vdev {

class Session;

// kRingBytes: the daemon's shared memory a vdev's clients asked for, the rings of their
// CQs, QPs and SRQs (the daemon allocates it, so the daemon's memory cgroup pays for it).
enum class Resource : uint8_t { kQp, kCq, kMr, kPd, kSrq, kAh, kMrBytes, kRingBytes, kCount };
inline constexpr size_t kResourceCount = static_cast<size_t>(Resource::kCount);
inline constexpr std::array<const char*, kResourceCount> kResourceNames = {
    "qp", "cq", "mr", "pd", "srq", "ah", "mr_bytes", "ring_bytes"};
// True for the kinds that count verbs objects (the kernel's rdma cgroup hca_object),
// false for the byte counts.
inline constexpr bool IsObjectResource(Resource r) {
  return r != Resource::kMrBytes && r != Resource::kRingBytes && r != Resource::kCount;
}

using ResourceCounts = std::array<uint64_t, kResourceCount>;

// Per-vdev counters of what its clients did (the pdev's packet counters are shared).
struct VdevStats {
  uint64_t send_wqes = 0;
  uint64_t recv_wqes = 0;
  uint64_t completions = 0;
  uint64_t rejected_wqes = 0;  // malformed or out-of-bounds WQEs from a client
  uint64_t cq_overruns = 0;
  uint64_t async_events = 0;
  uint64_t bad_requests = 0;  // control requests refused

  // Allocations refused by the vdev's quota, and opens and allocations refused by a
  // limit of the client's cgroup (cgroup_limits.h).
  uint64_t quota_refusals = 0;
  uint64_t cgroup_refusals = 0;
};

// A file's identity (fstat's st_dev, st_ino), as the daemon knows a file a client passes.
struct FileKey {
  uint64_t dev = 0;
  uint64_t ino = 0;
  bool operator<(const FileKey& o) const { return dev != o.dev ? dev < o.dev : ino < o.ino; }
};
// An XRC domain opened through a file: the engine's domain with how many opens of it the
// vdev's contexts hold.
struct SharedXrcd {
  uint32_t handle = 0;
  uint32_t opens = 0;
};

struct Vdev {
  std::string name;
  uint32_t id = 0;
  Pdev* pdev = nullptr;
  std::string netdev;
  int ifindex = 0;
  driver::wire::MacAddr mac{};
  uint32_t netdev_mtu = 1500;
  // The interface's state, which is the port's (as rdma_rxe's follows its netdev): up
  // and running is PORT_ACTIVE; otherwise PORT_DOWN, its physical state Polling while
  // the interface is up without a carrier, Disabled while it is down.
  bool link_up = true;
  bool admin_up = true;
  uint32_t gid_base = 0;  // its GIDs are the pdev's entries [gid_base, gid_base + 16)
  std::vector<driver::GidEntry> gids;
  uint64_t node_guid_be = 0;  // network order, EUI-64 of the MAC as the kernel derives it
  ResourceCounts quota{};
  ResourceCounts used{};
  uint32_t open_contexts = 0;
  VdevStats stats;
  NamespaceId netns;    // of its netdev: who may see it (access.h)
  // The namespace of its netdev when not the daemon's (a container's): entered to read the
  // interface and resolve neighbours (netdev/netns.h). Null: the daemon's.
  std::shared_ptr<Netns> netns_handle;
  AccessPolicy access;  // owner, group, mode: who may open it
  // Its character node (device_node.h), or empty with `node_error` saying why there is none.
  std::string node;
  std::string node_error;
  // The GID type RDMA-CM gives the connections this vdev starts (`dev set DEV roce_mode
  // v1|v2`), as Linux's configfs rdma_cm/DEV/ports/N/default_roce_mode: RoCEv2 unless
  // set. A connection accepted takes the type of the GID its REQ arrived on.
  bool cm_roce_v1 = false;
  // Raw packet QPs may send only frames with the interface's MAC as their source (`dev
  // set DEV spoofchk on|off`, as `ip link set PF vf N spoofchk`): on unless set.
  bool spoof_check = true;
  std::map<FileKey, SharedXrcd> xrcds;  // ibv_open_xrcd with a file (session_xrc.cc)
  uint32_t xrcd_count = 0;              // XRC domains it holds, with a file or without
  // XRC receive QPs: QPN -> the contexts holding it, its creator's and ibv_open_qp's.
  std::map<uint32_t, uint32_t> xrc_qp_holds;
  // Context tokens (the memfd each context's cmd_fd is, proto::OpenDeviceReply) -> the
  // context that made it: what ibv_import_device joins (session_import.cc).
  std::map<FileKey, Session*> context_tokens;

  uint64_t& Used(Resource r) { return used[static_cast<size_t>(r)]; }
  uint64_t Quota(Resource r) const { return quota[static_cast<size_t>(r)]; }
  // Takes `n` of a resource; false (nothing taken) beyond the quota.
  bool Charge(Resource r, uint64_t n = 1) {
    size_t i = static_cast<size_t>(r);
    if (used[i] + n > quota[i] || used[i] + n < used[i]) return false;
    used[i] += n;
    return true;
  }
  void Release(Resource r, uint64_t n = 1) {
    size_t i = static_cast<size_t>(r);
    used[i] = used[i] >= n ? used[i] - n : 0;
  }
  // The active MTU of its port: the interface's MTU less RoCEv2 headers, as an IB MTU.
  ibv_mtu ActiveMtu() const;
};

}  // namespace vrdma::vdev
