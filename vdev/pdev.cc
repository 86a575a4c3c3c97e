#include "vdev/pdev.h"

#include "absl/strings/str_cat.h"
#include "driver/pcap/pcap_port.h"
#include "driver/port/ethdev_port.h"
#include "driver/port/loopback_port.h"
#include "driver/port/packet_pool.h"
#include "vfio/eth_port.h"

namespace vrdma {
namespace {

constexpr uint32_t kPoolMbufs = 16383;

// An AF_XDP frame lives in one page-sized UMEM chunk that also holds the mempool
// object header (64), the mbuf (128) and its headroom (128); the kernel keeps another
// 256 bytes of XDP headroom in front of the frame.
constexpr uint16_t kAfXdpDataRoom = 4096 - 64 - 128 - RTE_PKTMBUF_HEADROOM;

// The largest IB MTU (IBTA 7.7.1: 256..4096) whose frames fit in `max_frame` bytes.
ibv_mtu MtuForFrame(uint32_t max_frame) {
  for (ibv_mtu m : {IBV_MTU_4096, IBV_MTU_2048, IBV_MTU_1024, IBV_MTU_512}) {
    if ((128u << m) + kMaxRoceOverhead <= max_frame) return m;
  }
  return IBV_MTU_256;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Pdev>> Pdev::CreateEmbedded(const std::string& name) {
  auto pdev = std::make_unique<Pdev>();
  pdev->name = name;
  pdev->kind = "internal-switch";
  absl::StatusOr<rte_mempool*> pool = CreatePacketPool(("pkt_" + name).c_str(), kPoolMbufs);
  if (!pool.ok()) return pool.status();
  pdev->pool = *pool;
  pdev->port = std::make_unique<LoopbackPort>(8192);
  DeviceConfig cfg;
  cfg.limits.gid_table_len = kGidsPerVdev * kMaxVdevsPerPdev;
  cfg.pool = pdev->pool;
  cfg.port = pdev->port.get();
  cfg.icrc_offload = true;
  cfg.port_mtu = IBV_MTU_4096;
  pdev->device = std::make_unique<Device>(cfg);
  return pdev;
}

absl::StatusOr<std::unique_ptr<Pdev>> Pdev::CreateOnPort(const vfio::PortSpec& spec) {
  auto pdev = std::make_unique<Pdev>();
  pdev->name = spec.pdev;
  pdev->kind = std::string(vfio::PortTypeName(spec.type));
  pdev->iface = spec.iface;
  pdev->pci = spec.pci;
  uint16_t data_room = spec.type == vfio::PortType::kAfXdp ? kAfXdpDataRoom : kFrameDataRoom;
  absl::StatusOr<rte_mempool*> pool =
      CreatePacketPool(("pkt_" + spec.pdev).c_str(), kPoolMbufs, data_room);
  if (!pool.ok()) return pool.status();
  pdev->pool = *pool;
  absl::StatusOr<std::unique_ptr<vfio::EthPort>> eth = vfio::EthPort::Open(spec, pdev->pool);
  if (!eth.ok()) return eth.status();
  pdev->mac = (*eth)->mac();
  pdev->max_mtu = MtuForFrame((*eth)->max_frame());
  pdev->wire_port = std::make_unique<EthdevPort>(std::move(*eth));
  if (!spec.pcap.empty()) {
    pdev->pcap = std::make_unique<PcapWriter>();
    if (absl::Status st = pdev->pcap->Open(spec.pcap); !st.ok()) return st;
    pdev->port = std::make_unique<PcapPort>(pdev->wire_port.get(), pdev->pcap.get());
  } else {
    pdev->port = std::move(pdev->wire_port);
  }
  if (spec.type != vfio::PortType::kPci) {
    absl::StatusOr<std::unique_ptr<vfio::RoceUdpHold>> hold = vfio::RoceUdpHold::Open();
    if (!hold.ok()) return hold.status();
    pdev->udp_hold = std::move(*hold);
  }
  DeviceConfig cfg;
  cfg.limits.gid_table_len = kGidsPerVdev * kMaxVdevsPerPdev;
  cfg.pool = pdev->pool;
  cfg.port = pdev->port.get();
  cfg.icrc_offload = false;
  cfg.port_mtu = pdev->max_mtu;
  pdev->device = std::make_unique<Device>(cfg);
  return pdev;
}

Pdev::~Pdev() {
  device.reset();
  port.reset();
  wire_port.reset();
  pcap.reset();
  if (pool) rte_mempool_free(pool);
}

}  // namespace vrdma
