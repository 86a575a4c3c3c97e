#include "vfio/eth_port.h"

#include <net/if.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_memory.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace vrdma::vfio {
namespace {

// AF_PACKET ring geometry (PACKET_MMAP, TPACKET_V2). A received frame starts 66 bytes
// into its ring frame (the tpacket2 header and sockaddr_ll, aligned to 16, less the
// Ethernet header), and the PMD copies `framesz - 32` bytes into one mbuf. The PMD
// addresses frame i at i * framesz, so a block (a whole number of pages) must hold a
// whole number of frames: 16 frames of a multiple of 256 bytes fill whole pages.
constexpr uint32_t kAfPacketMacOffset = 66;
constexpr uint32_t kAfPacketCopySlack = 32;
constexpr uint32_t kAfPacketFramesPerBlock = 16;
constexpr uint32_t kAfPacketBlocks = 64;

uint32_t AfPacketFrameSize(uint32_t data_room) {
  return std::min<uint32_t>(data_room + kAfPacketCopySlack, 65536) & ~255u;
}

// The XDP program that sends only RoCE to the AF_XDP socket: $VRDMA_XDP_PROG, the
// build tree's, or the installed one.
std::string XdpProgram() {
  const char* env = getenv("VRDMA_XDP_PROG");
  if (env && *env) return env;
  if (access(VRDMA_XDP_PROG_BUILD, R_OK) == 0) return VRDMA_XDP_PROG_BUILD;
  return VRDMA_XDP_PROG_INSTALLED;
}

std::string PortError(const std::string& what, int err) {
  return absl::StrCat(what, ": ", rte_strerror(err < 0 ? -err : err));
}

}  // namespace

uint32_t EthPort::MaxFrame(PortType type, uint32_t data_room) {
  switch (type) {
    case PortType::kAfPacket:
      return AfPacketFrameSize(data_room) - kAfPacketMacOffset;
    case PortType::kAfXdp:
      // One UMEM chunk (a page) per frame, which also holds the mbuf and its headroom;
      // the kernel keeps XDP_PACKET_HEADROOM (256) in front of the frame.
      return data_room > 256 ? data_room - 256 : 0;
    case PortType::kTap:
    case PortType::kPci:
      return data_room;
  }
  return data_room;
}

absl::StatusOr<std::unique_ptr<EthPort>> EthPort::Open(const PortSpec& spec, rte_mempool* pool) {
  auto port = std::unique_ptr<EthPort>(new EthPort());
  port->spec_ = spec;
  uint32_t data_room = rte_pktmbuf_data_room_size(pool) - RTE_PKTMBUF_HEADROOM;
  port->max_frame_ = MaxFrame(spec.type, data_room);
  switch (spec.type) {
    case PortType::kPci:
      port->name_ = spec.pci;
      port->devargs_ = spec.pci;
      break;
    case PortType::kAfPacket: {
      uint32_t frame = AfPacketFrameSize(data_room);
      port->name_ = absl::StrCat("net_af_packet_", spec.pdev);
      port->devargs_ = absl::StrCat(
          port->name_, ",iface=", spec.iface, ",blocksz=", frame * kAfPacketFramesPerBlock,
          ",framesz=", frame, ",framecnt=", kAfPacketFramesPerBlock * kAfPacketBlocks);
      break;
    }
    case PortType::kAfXdp:
      port->name_ = absl::StrCat("net_af_xdp_", spec.pdev);
      // DPDK's default program would take every frame from the kernel (ARP, TCP ...).
      // busy_budget=0 unless asked (PortSpec::xdp_busy_budget): the PMD's default
      // (64) makes every receive burst that finds nothing a recvfrom(), and an engine
      // polls far more often than frames come.
      port->devargs_ =
          absl::StrCat(port->name_, ",iface=", spec.iface,
                       ",start_queue=0,queue_count=1,busy_budget=", spec.xdp_busy_budget,
                       ",xdp_prog=", XdpProgram());
      break;
    case PortType::kTap:
      port->name_ = absl::StrCat("net_tap_", spec.pdev);
      port->devargs_ = absl::StrCat(port->name_, ",iface=", spec.iface);
      if (spec.tap_mac != std::array<uint8_t, 6>{}) {
        const auto& m = spec.tap_mac;
        absl::StrAppend(
            &port->devargs_, ",mac=",
            absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]));
      }
      break;
  }
  if (spec.type != PortType::kPci &&
      rte_eth_dev_get_port_by_name(port->name_.c_str(), &port->port_id_) == 0) {
    return absl::AlreadyExistsError(absl::StrCat("port ", port->name_, " is open already"));
  }
  int rc = rte_dev_probe(port->devargs_.c_str());
  if (rc < 0) {
    std::string hint;
    if (spec.type == PortType::kPci) {
      hint =
          absl::StrCat(" (is ", spec.pci, " bound to vfio-pci? `vrdmactl pci bind ", spec.pci,
                       "`; is it in the EAL allow-list, and is PCI not disabled with --no-pci?)");
    } else if (spec.type == PortType::kAfXdp) {
      hint = " (AF_XDP needs a kernel with XDP sockets and an interface MTU XDP accepts)";
    }
    return absl::UnavailableError(PortError(absl::StrCat("cannot open ", port->devargs_), rc) +
                                  hint);
  }
  if (rte_eth_dev_get_port_by_name(port->name_.c_str(), &port->port_id_) != 0) {
    return absl::NotFoundError(absl::StrCat("no ethdev named ", port->name_, " after probing it"));
  }
  rte_eth_dev_info info;
  if (int r = rte_eth_dev_info_get(port->port_id_, &info); r != 0) {
    return absl::InternalError(PortError("rte_eth_dev_info_get", r));
  }
  rte_eth_conf conf{};
  if (spec.type == PortType::kPci) {
    // The NIC receives frames up to the MTU into single mbufs: no scatter.
    uint32_t mtu = spec.mtu ? spec.mtu : RTE_ETHER_MTU;
    uint32_t limit = port->max_frame_ - RTE_ETHER_HDR_LEN - 4;  // room for a VLAN tag
    if (info.max_mtu) limit = std::min<uint32_t>(limit, info.max_mtu);
    if (mtu > limit) {
      return absl::InvalidArgumentError(absl::StrCat(
          "mtu ", mtu, " is above what port ", port->name_, " takes in one buffer (", limit, ")"));
    }
    conf.rxmode.mtu = mtu;
    port->max_frame_ = mtu + RTE_ETHER_HDR_LEN + 4;
  }
  if ((info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS) && spec.type != PortType::kAfXdp) {
    conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
    port->tx_chains_ = true;
  }
  if (int r = rte_eth_dev_configure(port->port_id_, 1, 1, &conf); r != 0) {
    return absl::InternalError(PortError(absl::StrCat("configure ", port->name_), r));
  }
  uint16_t rx_desc = 1024, tx_desc = 1024;
  rte_eth_dev_adjust_nb_rx_tx_desc(port->port_id_, &rx_desc, &tx_desc);
  int socket = rte_eth_dev_socket_id(port->port_id_);
  if (socket < 0) socket = 0;
  // The AF_XDP PMD makes its XDP socket as it sets the receive queue up.
  std::vector<int> xdp_sockets_before;
  if (spec.type == PortType::kAfXdp) xdp_sockets_before = AfXdpSockets();
  if (int r = rte_eth_rx_queue_setup(port->port_id_, 0, rx_desc, socket, nullptr, pool); r != 0) {
    return absl::InternalError(PortError(absl::StrCat("rx queue of ", port->name_), r));
  }
  if (int r = rte_eth_tx_queue_setup(port->port_id_, 0, tx_desc, socket, nullptr); r != 0) {
    return absl::InternalError(PortError(absl::StrCat("tx queue of ", port->name_), r));
  }
  if (int r = rte_eth_dev_start(port->port_id_); r != 0) {
    return absl::InternalError(PortError(absl::StrCat("start ", port->name_), r));
  }
  port->started_ = true;
  // Steering is by MAC, VLAN and GID in the engine: a NIC must hand over every frame
  // (the vdevs' macvlan addresses included). Kernel-backed ports see them already.
  if (spec.type == PortType::kPci) rte_eth_promiscuous_enable(port->port_id_);
  rte_ether_addr mac;
  if (rte_eth_macaddr_get(port->port_id_, &mac) == 0)
    std::copy_n(mac.addr_bytes, 6, port->mac_.begin());
  // A TAP port's frames are the ones its kernel interface sends. AF_XDP frames are
  // redirected before packet sockets see them: the XDP socket wakes the engine itself.
  // A PCI port has no wake-up descriptor (the engine sleeps in short ticks).
  if (spec.type == PortType::kAfPacket || spec.type == PortType::kTap) {
    absl::StatusOr<std::unique_ptr<WakeSocket>> wake = WakeSocket::Open(spec.iface);
    if (!wake.ok()) return wake.status();
    port->wake_ = std::move(*wake);
  } else if (spec.type == PortType::kAfXdp) {
    absl::StatusOr<std::unique_ptr<XskWake>> wake = XskWake::Adopt(xdp_sockets_before);
    if (!wake.ok()) return wake.status();
    port->xsk_wake_ = std::move(*wake);
  }
  return port;
}

absl::Status EthPort::SetTapMtu(uint32_t mtu) {
  if (spec_.type != PortType::kTap) {
    return absl::FailedPreconditionError(absl::StrCat(name_, " is not a TAP port"));
  }
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", spec_.iface.c_str());
  ifr.ifr_mtu = static_cast<int>(mtu);
  int rc = ioctl(fd, SIOCSIFMTU, &ifr);
  int err = errno;
  close(fd);
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat("set the MTU of ", spec_.iface, " to ", mtu, ": ", strerror(err)));
  }
  return absl::OkStatus();
}

EthPort::~EthPort() {
  wake_.reset();
  xsk_wake_.reset();
  if (started_) rte_eth_dev_stop(port_id_);
  // Closing the port and removing its device frees the name for a later probe.
  rte_eth_dev_info info;
  rte_device* dev = rte_eth_dev_info_get(port_id_, &info) == 0 ? info.device : nullptr;
  rte_eth_dev_close(port_id_);
  if (dev) rte_dev_remove(dev);
}

absl::Status EthPort::DmaMap(void* va, size_t len) {
  if (spec_.type != PortType::kPci) return absl::OkStatus();
  if (rte_eal_iova_mode() != RTE_IOVA_VA) {
    return absl::FailedPreconditionError(
        "the port's DMA addresses are physical (IOVA as PA): client memory is copied");
  }
  rte_eth_dev_info info;
  if (rte_eth_dev_info_get(port_id_, &info) != 0 || !info.device) {
    return absl::InternalError(absl::StrCat("no device behind port ", name_));
  }
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  if (rte_extmem_register(va, len, nullptr, 0, page) != 0) {
    return absl::InternalError(absl::StrCat("rte_extmem_register: ", rte_strerror(rte_errno)));
  }
  const uint64_t iova = reinterpret_cast<uintptr_t>(va);
  if (rte_dev_dma_map(info.device, va, iova, len) != 0) {
    std::string why = rte_strerror(rte_errno);
    rte_extmem_unregister(va, len);
    return absl::InternalError(absl::StrCat("rte_dev_dma_map on ", name_, ": ", why));
  }
  return absl::OkStatus();
}

void EthPort::DmaUnmap(void* va, size_t len) {
  if (spec_.type != PortType::kPci) return;
  rte_eth_dev_info info;
  if (rte_eth_dev_info_get(port_id_, &info) == 0 && info.device) {
    rte_dev_dma_unmap(info.device, va, reinterpret_cast<uintptr_t>(va), len);
  }
  rte_extmem_unregister(va, len);
}

}  // namespace vrdma::vfio
