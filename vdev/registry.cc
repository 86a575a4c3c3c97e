#include "vdev/registry.h"

#include <rte_eal.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "vdev/netdev/neighbour.h"
#include "vdev/netdev/netdev_info.h"
#include "vdev/netdev/roce_gid_table.h"
#include "vdev/protocol/admin_call.h"

namespace vrdma::vdev {

namespace {

// A node GUID from a MAC: the modified EUI-64 (U/L bit flipped, ff:fe in the middle), as
// rdma_rxe derives it. Network order, as ibv_get_device_guid returns it.
uint64_t NodeGuidOfMac(const driver::wire::MacAddr& m) {
  const uint8_t guid[8] = {
      static_cast<uint8_t>(m[0] ^ 2), m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]};
  uint64_t be;
  std::memcpy(&be, guid, 8);
  return be;
}

}  // namespace

ibv_mtu Vdev::ActiveMtu() const {
  // The RoCE payload MTU fits the interface MTU after IP/UDP/BTH/RETH/ICRC headers, as
  // rdma_rxe derives it (rxe_set_mtu).
  uint32_t room = netdev_mtu > 80 ? netdev_mtu - 80 : 0;
  ibv_mtu mtu = IBV_MTU_256;
  if (room >= 4096) {
    mtu = IBV_MTU_4096;
  } else if (room >= 2048) {
    mtu = IBV_MTU_2048;
  } else if (room >= 1024) {
    mtu = IBV_MTU_1024;
  } else if (room >= 512) {
    mtu = IBV_MTU_512;
  }
  return pdev && pdev->max_mtu < mtu ? pdev->max_mtu : mtu;
}

bool ValidDeviceName(std::string_view name) { return proto::IsValidDeviceName(name); }

std::string MachineId() {
  for (const char* path : {"/etc/machine-id", "/var/lib/dbus/machine-id"}) {
    std::ifstream in(path);
    std::string id;
    if (in && std::getline(in, id) && !id.empty()) return id;
  }
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return host;
}

uint64_t PdevNodeGuid(const std::array<uint8_t, 6>& port_mac, std::string_view machine_id,
                      std::string_view daemon_id, std::string_view pdev_name) {
  if (port_mac != std::array<uint8_t, 6>{}) {
    // The port MAC's EUI-64 without the U/L inversion: a vdev bound to the port's own
    // interface has the modified EUI-64 (as the kernel derives a RoCE device's), and the
    // two must differ, since librdmacm finds a device by its node GUID alone.
    const uint8_t guid[8] = {port_mac[0], port_mac[1], port_mac[2], 0xff,
                             0xfe,        port_mac[3], port_mac[4], port_mac[5]};
    uint64_t be;
    std::memcpy(&be, guid, 8);
    return be;
  }
  // FNV-1a over what tells this machine, this daemon and this pdev apart; made into a
  // locally administered unicast MAC so the GUID has the EUI-64 shape of the others.
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&h](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 0x100000001b3ull;
    }
    h ^= 0xff;  // a separator no string byte sequence can fake
    h *= 0x100000001b3ull;
  };
  mix("vrdma-pdev-guid");
  mix(machine_id);
  mix(daemon_id);
  mix(pdev_name);
  driver::wire::MacAddr mac;
  for (size_t i = 0; i < 6; ++i) mac[i] = static_cast<uint8_t>(h >> (8 * i));
  mac[0] = static_cast<uint8_t>((mac[0] & 0xfc) | 0x02);
  return NodeGuidOfMac(mac);
}

Registry::Registry() : netns_(NamespaceId::Current()) {}

absl::Status Registry::AddPdev(std::unique_ptr<Pdev> pdev) {
  if (FindPdev(pdev->name)) return absl::AlreadyExistsError("pdev exists: " + pdev->name);
  // As the kernel does for RoCE: the EUI-64 of the port's MAC. A port without one (the
  // internal switch) gets a GUID from this machine's id, this daemon's DPDK runtime
  // directory (its --file-prefix) and the pdev's name: two hosts differ, a restart keeps it.
  static const std::string machine_id = MachineId();
  const char* runtime_dir = rte_eal_get_runtime_dir();
  pdev->node_guid_be =
      PdevNodeGuid(pdev->mac, machine_id, runtime_dir ? runtime_dir : "", pdev->name);
  pdevs_.push_back(std::move(pdev));
  return absl::OkStatus();
}

Pdev* Registry::FindPdev(std::string_view name) const {
  for (const auto& p : pdevs_) {
    if (p->name == name) return p.get();
  }
  return nullptr;
}

Vdev* Registry::FindVdev(std::string_view name) const {
  auto it = vdevs_.find(name);
  return it == vdevs_.end() ? nullptr : it->second.get();
}

Vdev* Registry::FindVdevByIfindex(int ifindex) const { return FindVdevByIfindex(ifindex, netns_); }

Vdev* Registry::FindVdevByIfindex(int ifindex, const NamespaceId& netns) const {
  for (const auto& [name, v] : vdevs_) {
    if (v->ifindex == ifindex && v->netns == netns) return v.get();
  }
  return nullptr;
}

std::shared_ptr<Netns> Registry::NetnsHandle(const NamespaceId& netns) const {
  for (const auto& [name, v] : vdevs_) {
    if (v->netns_handle && v->netns == netns) return v->netns_handle;
  }
  return nullptr;
}

ResourceCounts Registry::PdevLimits(const Pdev& pdev) {
  const driver::DeviceLimits& l = pdev.device->limits();
  ResourceCounts c{};
  c[static_cast<size_t>(Resource::kQp)] = l.max_qp;
  c[static_cast<size_t>(Resource::kCq)] = l.max_cq;
  c[static_cast<size_t>(Resource::kMr)] = l.max_mr;
  c[static_cast<size_t>(Resource::kPd)] = l.max_pd;
  c[static_cast<size_t>(Resource::kSrq)] = l.max_srq;
  c[static_cast<size_t>(Resource::kAh)] = l.max_ah;
  c[static_cast<size_t>(Resource::kMrBytes)] = l.max_mr_size;
  c[static_cast<size_t>(Resource::kRingBytes)] = PdevRingBytes();
  return c;
}

uint64_t Registry::PdevRingBytes() {
  static const uint64_t bytes = [] {
    const long pages = sysconf(_SC_PHYS_PAGES);
    const long page = sysconf(_SC_PAGESIZE);
    const uint64_t half = pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) / 2 : 0;
    return std::max<uint64_t>(half, uint64_t{1} << 30);
  }();
  return bytes;
}

absl::Status Registry::SetDefaultShare(uint64_t numerator, uint64_t denominator) {
  if (numerator == 0 || denominator == 0 || numerator > denominator) {
    return absl::InvalidArgumentError(absl::StrCat("default share ", numerator, "/", denominator,
                                                   ": needs 0 < N <= D (1/8, 1/4, 1/1)"));
  }
  default_share_ = {numerator, denominator};
  return absl::OkStatus();
}

ResourceCounts Registry::DefaultQuota(const Pdev& pdev) const {
  ResourceCounts c = PdevLimits(pdev);
  const auto [num, den] = default_share_;
  for (uint64_t& v : c) {
    if (v == 0) continue;
    unsigned __int128 share = static_cast<unsigned __int128>(v) * num / den;
    v = std::max<uint64_t>(static_cast<uint64_t>(share), 1);
  }
  return c;
}

absl::StatusOr<Vdev*> Registry::AddVdev(std::string_view name, std::string_view pdev_name,
                                        std::string_view netdev, std::shared_ptr<Netns> netns) {
  if (!ValidDeviceName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid device name '", std::string(name), "': ", proto::kDeviceNameRule));
  }
  if (FindVdev(name) || FindPdev(name))
    return absl::AlreadyExistsError(absl::StrCat("device ", std::string(name), " exists"));
  Pdev* pdev = FindPdev(pdev_name);
  if (!pdev) return absl::NotFoundError(absl::StrCat("no pdev named ", std::string(pdev_name)));
  if (netns && !pdev->iface.empty()) {
    // Whether a container's interface sits on the port's is not in this namespace's sysfs.
    return absl::InvalidArgumentError(
        absl::StrCat("pdev ", pdev->name, " has a port (", pdev->iface,
                     "): a vdev on an interface of another network namespace is added on a pdev "
                     "without one (the embedded default's internal switch)"));
  }
  const NamespaceId ns_id = netns ? NamespaceId{netns->cookie()} : netns_;
  absl::StatusOr<NetdevInfo> info = ReadNetdevIn(netns.get(), netdev);
  if (!info.ok()) return info.status();
  if (!pdev->iface.empty() && !NetdevSitsOn(netdev, pdev->iface)) {
    return absl::InvalidArgumentError(
        absl::StrCat("interface ", std::string(netdev), " is not on pdev ", pdev->name, "'s port ",
                     pdev->iface, ": use ", pdev->iface, " itself or a macvlan or VLAN on it"));
  }
  for (const auto& [n, v] : vdevs_) {
    if (v->ifindex == info->ifindex && v->netns == ns_id) {
      return absl::AlreadyExistsError(
          absl::StrCat("interface ", std::string(netdev), " is already bound to device ", n));
    }
  }
  auto slot = std::find(pdev->gid_block_used.begin(), pdev->gid_block_used.end(), false);
  if (slot == pdev->gid_block_used.end()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "pdev ", std::string(pdev_name), " has its maximum of ", kMaxVdevsPerPdev, " vdevs"));
  }
  auto vdev = std::make_unique<Vdev>();
  vdev->name = std::string(name);
  vdev->id = next_id_++;
  vdev->pdev = pdev;
  vdev->netdev = std::string(netdev);
  vdev->ifindex = info->ifindex;
  vdev->mac = info->mac;
  vdev->netdev_mtu = info->mtu;
  vdev->link_up = info->up;
  vdev->admin_up = info->admin_up;
  vdev->gid_base = static_cast<uint32_t>(slot - pdev->gid_block_used.begin()) * kGidsPerVdev;
  vdev->node_guid_be = NodeGuidOfMac(info->mac);
  vdev->netns = ns_id;  // where the interface was found
  vdev->netns_handle = std::move(netns);
  vdev->quota = DefaultQuota(*pdev);
  if (absl::Status st = WriteGids(*vdev, BuildRoceGidTable(*info, kGidsPerVdev)); !st.ok()) {
    return st;
  }
  *slot = true;
  if (!nodes_.dir().empty()) {
    absl::StatusOr<std::string> node = nodes_.Create(vdev->name, vdev->access);
    if (node.ok()) {
      vdev->node = *node;
    } else {
      vdev->node_error = std::string(node.status().message());
    }
  }
  Vdev* raw = vdev.get();
  vdevs_.emplace(vdev->name, std::move(vdev));
  ++generation_;
  return raw;
}

absl::Status Registry::WriteGids(Vdev& vdev, const std::vector<driver::GidEntry>& gids) {
  vdev.gids = gids;
  vdev.gids.resize(std::min<size_t>(vdev.gids.size(), kGidsPerVdev));
  for (uint32_t i = 0; i < kGidsPerVdev; ++i) {
    driver::GidEntry e = i < vdev.gids.size() ? vdev.gids[i] : driver::GidEntry{};
    if (absl::Status st = vdev.pdev->device->SetGid(vdev.gid_base + i, e); !st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status Registry::RefreshGids(Vdev& vdev) {
  absl::StatusOr<NetdevInfo> info = ReadNetdevIn(vdev.netns_handle.get(), vdev.netdev);
  if (!info.ok()) return info.status();
  if (vdev.mac != info->mac) ++generation_;
  vdev.mac = info->mac;
  vdev.netdev_mtu = info->mtu;
  vdev.ifindex = info->ifindex;
  vdev.link_up = info->up;
  vdev.admin_up = info->admin_up;
  return WriteGids(vdev, BuildRoceGidTable(*info, kGidsPerVdev));
}

absl::Status Registry::DelVdev(std::string_view name) {
  auto it = vdevs_.find(name);
  if (it == vdevs_.end())
    return absl::NotFoundError(absl::StrCat("no device named ", std::string(name)));
  Vdev& v = *it->second;
  if (absl::Status st = WriteGids(v, {}); !st.ok()) return st;
  v.pdev->gid_block_used[v.gid_base / kGidsPerVdev] = false;
  nodes_.Remove(v.name);
  vdevs_.erase(it);
  ++generation_;
  return absl::OkStatus();
}

void Registry::SetAccess(Vdev& vdev, const AccessPolicy& access) {
  vdev.access = access;
  if (vdev.node.empty()) return;
  if (absl::Status st = nodes_.Apply(vdev.name, access); !st.ok()) {
    vdev.node.clear();
    vdev.node_error = std::string(st.message());
  }
}

absl::Status Registry::SetQuotas(Vdev& vdev,
                                 const std::vector<std::pair<Resource, uint64_t>>& values) {
  ResourceCounts limits = PdevLimits(*vdev.pdev);
  for (const auto& [r, v] : values) {
    size_t i = static_cast<size_t>(r);
    if (v < vdev.used[i]) {
      return absl::FailedPreconditionError(absl::StrCat(kResourceNames[i], " quota ", v,
                                                        " is below the ", vdev.used[i],
                                                        " in use on ", vdev.name));
    }
    if (v > limits[i]) {
      return absl::OutOfRangeError(absl::StrCat(kResourceNames[i], " quota ", v,
                                                " is above the pdev's limit of ", limits[i]));
    }
  }
  for (const auto& [r, v] : values) vdev.quota[static_cast<size_t>(r)] = v;
  return absl::OkStatus();
}

std::optional<driver::wire::MacAddr> Registry::KnownMac(const Vdev& from,
                                                        const driver::wire::Gid& dgid) const {
  for (const auto& [n, v] : vdevs_) {
    if (v->pdev != from.pdev) continue;
    for (const driver::GidEntry& g : v->gids) {
      if (g.valid && g.gid == dgid) return v->mac;
    }
  }
  if (std::optional<driver::wire::MacAddr> mac = MacFromGid(dgid)) return *mac;
  // The internal switch has no wire and no neighbours: what is not one of its vdevs
  // is no one (frames to it are dropped).
  if (from.pdev->iface.empty() && from.pdev->pci.empty()) return driver::wire::MacAddr{};
  return std::nullopt;
}

absl::StatusOr<std::unique_ptr<NeighbourQuery>> Registry::StartResolve(
    const Vdev& from, const driver::wire::Gid& dgid, uint64_t now_ns) const {
  return NeighbourQuery::Start(from.ifindex, dgid, kNeighbourTimeout, now_ns, from.netns_handle);
}

}  // namespace vrdma::vdev
