#include "vdev/pdev.h"

#include "driver/port/loopback_port.h"
#include "driver/port/packet_pool.h"

namespace vrdma {

absl::StatusOr<std::unique_ptr<Pdev>> Pdev::CreateEmbedded(const std::string& name) {
  auto pdev = std::make_unique<Pdev>();
  pdev->name = name;
  pdev->kind = "internal-switch";
  absl::StatusOr<rte_mempool*> pool = CreatePacketPool(("pkt_" + name).c_str(), 16383);
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

Pdev::~Pdev() {
  device.reset();
  port.reset();
  if (pool) rte_mempool_free(pool);
}

}  // namespace vrdma
