#include "vdev/pdev.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_mbuf.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "driver/ports.h"
#include "vfio/eal.h"
#include "vfio/eth_port.h"

namespace vrdma::vdev {
namespace {

constexpr uint32_t kPoolMbufs = 16383;

// The largest IB MTU (IBTA 7.7.1: 256..4096) whose frames fit in `max_frame` bytes.
ibv_mtu MtuForFrame(uint32_t max_frame) {
  for (ibv_mtu m : {IBV_MTU_4096, IBV_MTU_2048, IBV_MTU_1024, IBV_MTU_512}) {
    if ((128u << m) + driver::kMaxRoceOverhead <= max_frame) return m;
  }
  return IBV_MTU_256;
}

// The mbuf pool of pdev `pdev`: 16383 frame-sized mbufs, or page-sized ones for AF_XDP
// (each mbuf one UMEM chunk). When the EAL's memory cannot hold it, the error says how
// much is missing and what to give.
absl::StatusOr<rte_mempool*> CreatePdevPool(const std::string& pdev, bool pages) {
  std::string name = "pkt_" + pdev;
  absl::StatusOr<rte_mempool*> pool = pages ? driver::CreatePagePacketPool(name.c_str(), kPoolMbufs)
                                            : driver::CreatePacketPool(name.c_str(), kPoolMbufs);
  if (pool.ok() || rte_errno != ENOMEM) return pool;
  uint32_t room = pages ? driver::PagePoolDataRoom() : driver::kFrameDataRoom;
  uint32_t obj = rte_mempool_calc_obj_size(sizeof(rte_mbuf) + RTE_PKTMBUF_HEADROOM + room,
                                           pages ? RTE_MEMPOOL_F_NO_SPREAD : 0, nullptr);
  constexpr uint64_t kMiB = 1 << 20;
  uint64_t need = (uint64_t{obj} * kPoolMbufs + kMiB - 1) / kMiB;
  vfio::EalMemory mem = vfio::EalMemoryStats();
  uint64_t total = mem.total / kMiB, free = mem.free / kMiB;
  std::string fix;
  if (rte_eal_has_hugepages()) {
    fix = "reserve more hugepages (or raise --socket-mem/--socket-limit)";
  } else {
    // What is in use, this pool, and 32 MiB for the port's own allocations, in 64 MiB steps.
    uint64_t m = (total - free + need + 32 + 63) / 64 * 64;
    fix = absl::StrCat("give -m ", std::max<uint64_t>(m, 512), " (MiB) with the EAL arguments");
  }
  return absl::ResourceExhaustedError(
      absl::StrCat(pdev, " needs ", need, " MiB of mbuf pool (", kPoolMbufs, " mbufs of ", obj,
                   " bytes), EAL has ", free, " MiB free of ", total, " MiB: ", fix));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Pdev>> Pdev::CreateEmbedded(const std::string& name) {
  auto pdev = std::make_unique<Pdev>();
  pdev->name = name;
  pdev->kind = "internal-switch";
  absl::StatusOr<rte_mempool*> pool = CreatePdevPool(name, /*pages=*/false);
  if (!pool.ok()) return pool.status();
  pdev->pool = *pool;
  pdev->wire_port = std::make_unique<driver::LoopbackPort>(8192);
  pdev->port = pdev->wire_port.get();
  driver::RoceDeviceConfig cfg;
  cfg.limits.gid_table_len = kGidsPerVdev * kMaxVdevsPerPdev;
  cfg.pool = pdev->pool;
  cfg.port = pdev->port;
  cfg.icrc_offload = true;
  cfg.port_mtu = IBV_MTU_4096;
  pdev->device = std::make_unique<driver::RoceDevice>(cfg);
  // Frames between vdevs point into the sender's MR: its pages stay mapped while they do.
  pdev->tx_dma = std::make_shared<TxDmaDomain>();
  pdev->tx_dma->port = pdev->port;
  return pdev;
}

absl::StatusOr<std::unique_ptr<Pdev>> Pdev::CreateOnPort(const vfio::PortSpec& spec) {
  auto pdev = std::make_unique<Pdev>();
  pdev->name = spec.pdev;
  pdev->kind = std::string(vfio::PortTypeName(spec.type));
  pdev->iface = spec.iface;
  pdev->pci = spec.pci;
  // An AF_XDP frame lives in one page-sized UMEM chunk: the pool's objects are pages.
  absl::StatusOr<rte_mempool*> pool =
      CreatePdevPool(spec.pdev, /*pages=*/spec.type == vfio::PortType::kAfXdp);
  if (!pool.ok()) return pool.status();
  pdev->pool = *pool;
  absl::StatusOr<std::unique_ptr<vfio::EthPort>> eth = vfio::EthPort::Open(spec, pdev->pool);
  if (!eth.ok()) return eth.status();
  pdev->mac = (*eth)->mac();
  pdev->max_mtu = MtuForFrame((*eth)->max_frame());
  uint32_t wire_mtu = std::min<uint32_t>((*eth)->max_mtu(), 9000);
  pdev->wire_port = std::make_unique<driver::EthdevPort>(std::move(*eth));
  // Wire -> exception path -> fault injection -> capture -> engine: the capture shows
  // what the engine sent and what really arrived for it.
  driver::PacketPort* below = pdev->wire_port.get();
  if (!spec.kernel_iface.empty()) {
    vfio::PortSpec tap;
    tap.pdev = spec.pdev + "_kernel";
    tap.type = vfio::PortType::kTap;
    tap.iface = spec.kernel_iface;
    tap.tap_mac = pdev->mac;
    absl::StatusOr<std::unique_ptr<vfio::EthPort>> kernel = vfio::EthPort::Open(tap, pdev->pool);
    if (!kernel.ok()) return kernel.status();
    // The kernel's frames must fit the wire's: its interface gets the port's MTU.
    if (absl::Status st = (*kernel)->SetTapMtu(wire_mtu); !st.ok()) return st;
    pdev->kernel_port = std::make_unique<driver::EthdevPort>(std::move(*kernel));
    pdev->exception_port = std::make_unique<driver::ExceptionPort>(below, pdev->kernel_port.get());
    below = pdev->exception_port.get();
    pdev->iface = spec.kernel_iface;
  }
  if (spec.has_faults()) {
    driver::FaultConfig faults;
    faults.drop = spec.fault_drop;
    faults.duplicate = spec.fault_duplicate;
    faults.reorder = spec.fault_reorder;
    faults.corrupt = spec.fault_corrupt;
    pdev->fault_port = std::make_unique<driver::FaultPort>(below, pdev->pool, faults,
                                                           0x76726470 ^ spec.iface.size());
    below = pdev->fault_port.get();
  }
  if (!spec.pcap.empty()) {
    pdev->pcap = std::make_unique<driver::PcapWriter>();
    if (absl::Status st = pdev->pcap->Open(spec.pcap); !st.ok()) return st;
    pdev->pcap_port = std::make_unique<driver::PcapPort>(below, pdev->pcap.get());
    below = pdev->pcap_port.get();
  }
  pdev->port = below;
  if (spec.type != vfio::PortType::kPci) {
    absl::StatusOr<std::unique_ptr<vfio::RoceUdpHold>> hold = vfio::RoceUdpHold::Open();
    if (!hold.ok()) return hold.status();
    pdev->udp_hold = std::move(*hold);
  }
  driver::RoceDeviceConfig cfg;
  cfg.limits.gid_table_len = kGidsPerVdev * kMaxVdevsPerPdev;
  cfg.pool = pdev->pool;
  cfg.port = pdev->port;
  cfg.icrc_offload = false;
  cfg.hairpin = true;
  cfg.port_mtu = pdev->max_mtu;
  pdev->device = std::make_unique<driver::RoceDevice>(cfg);
  if (spec.zero_copy && pdev->port->TxChains()) {
    pdev->tx_dma = std::make_shared<TxDmaDomain>();
    pdev->tx_dma->port = pdev->port;
  }
  return pdev;
}

Pdev::~Pdev() {
  // Frames the ports free while closing may hold the last reference to client memory:
  // it is unmapped then, but not from these ports.
  if (tx_dma) tx_dma->alive = false;
  device.reset();
  pcap_port.reset();
  fault_port.reset();
  exception_port.reset();
  kernel_port.reset();
  wire_port.reset();
  pcap.reset();
  if (pool) rte_mempool_free(pool);
}

}  // namespace vrdma::vdev
