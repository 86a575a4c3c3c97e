// The shared GSI QP1 of each pdev (IBTA 13.5): one QP1 per port serves every vdev on it,
// as one GSI QP serves every Nic_Iface of a port in the talk.
//
// Receive: every MAD that arrives on QP1 comes with its receive tag (driver::RecvInfo):
// the port GID entry it was addressed to names the vdev (a vdev owns the pdev's entries
// [gid_base, gid_base + 16)); a MAD addressed to no vdev's GID is counted and dropped.
// The handler (the connection manager) gets the MAD with its vdev and where it came from.
// Send: a vdev's MADs leave from QP1 with that vdev's GID entry as the source (so its MAC,
// VLAN and RoCE version), to the peer's QP1, P_Key 0xFFFF, Q_Key 0x80010000 (IBTA 13.5.1).
//
// Everything runs on vrdmad's loop thread; nothing here allocates or makes a system call
// per MAD (buffers are registered once, the engine is driven by DevicePoller).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "driver/device.h"
#include "vdev/plugins.h"
#include "vdev/registry.h"

namespace vrdma::qp1 {

inline constexpr size_t kMadSize = 256;

// One MAD received on a pdev's QP1, for one vdev.
struct InboundMad {
  vdev::Vdev* vdev = nullptr;
  uint32_t gid_index = 0;    // the vdev's GID entry it was addressed to (0..15)
  driver::RecvInfo tag;      // network type, VLAN, source MAC
  driver::wire::Gid sgid{};  // the sender's GID (from the GRH or the IP header)
  driver::wire::Gid dgid{};  // ours
  uint32_t src_qpn = 0;
  std::span<const uint8_t> mad;  // kMadSize bytes, valid during the call only
};

// Where a MAD goes: the peer's GID and MAC, through one of the sending vdev's GID entries.
struct MadDestination {
  uint32_t gid_index = 0;  // the vdev's GID entry to send from (0..15)
  driver::wire::Gid dgid{};
  driver::wire::MacAddr dmac{};
  uint32_t remote_qpn = 1;
};

// Called from Qp1Poller::Poll (GsiPort::Poll) on the loop thread. It may Send (an answer
// goes out at once) but must not add or delete vdevs (the vdev table of a pass is built
// once, before the first MAD of the pass).
class MadHandler {
 public:
  virtual ~MadHandler() = default;
  virtual void OnMad(const InboundMad& mad) = 0;
};

struct GsiCounters {
  uint64_t rx_mads = 0;
  uint64_t tx_mads = 0;        // sends completed successfully
  uint64_t rx_no_vdev = 0;     // addressed to a GID no vdev owns
  uint64_t rx_bad_length = 0;  // not GRH + 256 bytes long
  uint64_t rx_errors = 0;      // receive completions with an error status
  uint64_t tx_errors = 0;      // sends refused or completed in error
  uint64_t tx_no_buffer = 0;   // every send buffer in flight
};

// QP1 on one pdev: the QP, its CQ, and registered receive and send buffers.
class GsiPort {
 public:
  static constexpr uint32_t kRecvDepth = 256;
  static constexpr uint32_t kSendDepth = 256;

  // Creates QP1 on the pdev's device and posts every receive buffer.
  static absl::StatusOr<std::unique_ptr<GsiPort>> Create(vdev::Pdev* pdev);
  ~GsiPort();
  GsiPort(const GsiPort&) = delete;
  GsiPort& operator=(const GsiPort&) = delete;

  // Reads up to `budget` completions: hands each received MAD for a vdev to `handler`
  // (the registry finds the vdev), reposts its buffer, frees completed sends. Returns the
  // completions read.
  int Poll(const vdev::Registry& registry, MadHandler& handler, int budget);

  // Sends one MAD (kMadSize bytes) from `from` to `to`. ResourceExhausted when every send
  // buffer is in flight; the caller's retry timer sends it again.
  absl::Status Send(const vdev::Vdev& from, const MadDestination& to, std::span<const uint8_t> mad);

  vdev::Pdev* pdev() const { return pdev_; }
  const GsiCounters& counters() const { return counters_; }

 private:
  explicit GsiPort(vdev::Pdev* pdev);
  struct Resources;
  vdev::Pdev* pdev_;
  std::unique_ptr<Resources> res_;
  GsiCounters counters_;
};

// The poller vrdmad runs after DevicePoller: one GsiPort per pdev (made for the pdevs the
// registry has when it starts, and for pdevs added later, on their first pass).
class Qp1Poller : public vdev::Poller {
 public:
  Qp1Poller(vdev::Registry* registry, MadHandler* handler);
  static constexpr int kPortBudget = 64;  // completions read per port per pass

  int Poll(uint64_t now_ns) override;
  // True while a port read a full budget on the last pass (more may be waiting).
  bool HasPendingWork() const override { return busy_; }

  // Sends from a vdev through its pdev's QP1 (see GsiPort::Send).
  absl::Status Send(const vdev::Vdev& from, const MadDestination& to, std::span<const uint8_t> mad);
  // The port of a pdev, or null (QP1 could not be made on it: logged once).
  GsiPort* PortOf(const vdev::Pdev* pdev);

 private:
  vdev::Registry* registry_;
  MadHandler* handler_;
  std::vector<std::unique_ptr<GsiPort>> ports_;
  std::vector<const vdev::Pdev*> failed_;
  bool busy_ = false;
};

}  // namespace vrdma::qp1
