// The daemon's physical and virtual devices: names, interfaces, GID tables, quotas.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "vdev/cgroup_limits.h"
#include "vdev/device_node.h"
#include "vdev/netdev/neighbour.h"
#include "vdev/pdev.h"
#include "vdev/shm/daemon_budget.h"
#include "vdev/vdev.h"

namespace vrdma::vdev {

class Registry {
 public:
  // Learns the daemon's own network namespace (where the interfaces it binds live).
  Registry();

  absl::Status AddPdev(std::unique_ptr<Pdev> pdev);
  Pdev* FindPdev(std::string_view name) const;
  const std::vector<std::unique_ptr<Pdev>>& pdevs() const { return pdevs_; }

  // Creates a vdev on `pdev` bound to interface `netdev` of the daemon's network namespace,
  // or of `netns` (a container's; only on a pdev without a port): its GID table is built
  // from the interface's MAC and addresses, its quotas default to DefaultQuota(pdev).
  absl::StatusOr<Vdev*> AddVdev(std::string_view name, std::string_view pdev,
                                std::string_view netdev, std::shared_ptr<Netns> netns = nullptr);
  // Removes a vdev; the caller has closed its clients' contexts.
  absl::Status DelVdev(std::string_view name);
  // Sets who may open the vdev, and gives its device node the same owner, group and mode.
  void SetAccess(Vdev& vdev, const AccessPolicy& access);
  // Where each vdev's device node goes (device_node.h); empty (the default): none. Set
  // before the first vdev.
  void set_device_node_dir(std::string dir) { nodes_.set_dir(std::move(dir)); }
  Vdev* FindVdev(std::string_view name) const;
  // The vdev bound to interface `ifindex` of the daemon's namespace, or of `netns` (an
  // interface index is a namespace's own).
  Vdev* FindVdevByIfindex(int ifindex) const;
  Vdev* FindVdevByIfindex(int ifindex, const NamespaceId& netns) const;
  // A handle on network namespace `netns` when a vdev's interface is there and it is not
  // the daemon's (netdev/netns.h); null otherwise.
  std::shared_ptr<Netns> NetnsHandle(const NamespaceId& netns) const;
  const std::map<std::string, std::unique_ptr<Vdev>, std::less<>>& vdevs() const { return vdevs_; }
  // Changes whenever a vdev is added or deleted, or its interface's MAC changes: layers
  // above that keep vdevs by name (qp1/, cm/) look again only when it moved.
  uint64_t generation() const { return generation_; }

  // Re-reads the interface and rewrites the vdev's GID table. NotFound when the
  // interface is gone.
  absl::Status RefreshGids(Vdev& vdev);
  // Sets quotas; refuses (changing nothing) a value below what is in use or above the pdev.
  absl::Status SetQuotas(Vdev& vdev, const std::vector<std::pair<Resource, uint64_t>>& values);
  // What a pdev has of each resource: its engine's limits, and PdevRingBytes() of rings.
  static ResourceCounts PdevLimits(const Pdev& pdev);
  // The ring memory (CQ, QP, SRQ shared rings and the engine's copies of their queues)
  // each vdev of one pdev may be given at most: half the machine's memory, at least 1 GiB.
  static uint64_t PdevRingBytes();

  // The share of a pdev's limits a new vdev gets as its quotas (vrdmad
  // --vdev-default-share N/D, docs/vrdmad.md): floor(limit * N / D), at least 1 of what
  // the pdev has. Quotas are caps, not reservations: the sum over vdevs may exceed the
  // pdev (the pdev's own limits still hold), and `dev set` raises one up to the pdev.
  // InvalidArgument unless 0 < N <= D.
  absl::Status SetDefaultShare(uint64_t numerator, uint64_t denominator);
  std::pair<uint64_t, uint64_t> default_share() const { return default_share_; }
  ResourceCounts DefaultQuota(const Pdev& pdev) const;
  static constexpr std::pair<uint64_t, uint64_t> kDefaultShare{1, 8};

  // Limits per cgroup of the clients (`vrdmactl cgroup set`), and what each uses.
  CgroupLimits& cgroup_limits() { return cgroup_limits_; }
  const CgroupLimits& cgroup_limits() const { return cgroup_limits_; }

  // The daemon's mappings and descriptors, as its clients' users share them (unlimited
  // until the server sets its limits).
  DaemonBudget& daemon_budget() { return daemon_budget_; }
  const DaemonBudget& daemon_budget() const { return daemon_budget_; }

  // The network namespace of the interfaces vdevs are bound to (the daemon's), and
  // whether vdevs are visible only from it (access.h).
  const NamespaceId& netns() const { return netns_; }
  NetnsMode netns_mode() const { return netns_mode_; }
  void set_netns_mode(NetnsMode mode) { netns_mode_ = mode; }

  // The Ethernet address packets from `from` to `dgid` go to when it is known without the
  // kernel: another vdev's on the same pdev, the MAC a multicast or link-local GID
  // carries, none on the internal switch (which has no wire). nullopt: the next hop's,
  // from the interface's neighbour table (StartResolve).
  std::optional<driver::wire::MacAddr> KnownMac(const Vdev& from,
                                                const driver::wire::Gid& dgid) const;
  // Starts resolving `dgid` through from's interface (neighbour.h), for up to
  // kNeighbourTimeout; the caller polls it from the daemon's loop, which never waits.
  absl::StatusOr<std::unique_ptr<NeighbourQuery>> StartResolve(const Vdev& from,
                                                               const driver::wire::Gid& dgid,
                                                               uint64_t now_ns) const;
  static constexpr std::chrono::milliseconds kNeighbourTimeout{3000};

 private:
  absl::Status WriteGids(Vdev& vdev, const std::vector<driver::GidEntry>& gids);

  std::vector<std::unique_ptr<Pdev>> pdevs_;
  std::map<std::string, std::unique_ptr<Vdev>, std::less<>> vdevs_;
  uint32_t next_id_ = 1;
  uint64_t generation_ = 0;
  std::pair<uint64_t, uint64_t> default_share_ = kDefaultShare;
  CgroupLimits cgroup_limits_;
  DaemonBudget daemon_budget_;
  NamespaceId netns_;
  NetnsMode netns_mode_ = NetnsMode::kExclusive;
  // Declared last: destroyed first, while the vdevs whose nodes it removes are named.
  DeviceNodes nodes_;
};

// Checks a device name as the kernel checks ib device names (1..63 printable, no '/',
// no whitespace; proto::kDeviceNameRule says it to users).
bool ValidDeviceName(std::string_view name);

// A pdev's node GUID, network order: the EUI-64 of its port's MAC when it has one, without
// the U/L inversion of the modified EUI-64 a vdev on that interface gets (as the kernel
// derives a RoCE device's), so that the two differ: librdmacm finds a device by its GUID.
// Without a MAC, the modified EUI-64 of a locally administered MAC hashed from the
// machine's id, the daemon's identity and the pdev's name.
uint64_t PdevNodeGuid(const std::array<uint8_t, 6>& port_mac, std::string_view machine_id,
                      std::string_view daemon_id, std::string_view pdev_name);
// /etc/machine-id (or D-Bus's copy, or the host name).
std::string MachineId();

}  // namespace vrdma::vdev
