// Packet, drop and error counters of a device (what `vrdmactl stat show` prints).
#pragma once

#include <array>
#include <cstdint>

#include "driver/wire/codec.h"

namespace vrdma::driver {

struct DeviceCounters {
  uint64_t rx_packets = 0;
  uint64_t rx_bytes = 0;
  uint64_t tx_packets = 0;
  uint64_t tx_bytes = 0;
  uint64_t tx_dropped = 0;    // port refused the frame, or no mbuf
  uint64_t tx_zero_copy = 0;  // frames whose payload went out of client memory, uncopied
  uint64_t tx_port_busy = 0;  // bursts the port took only part of (the rest waited)
  uint64_t rx_in_place = 0;   // zero-copy frames turned around: payload read from the sender's MR
  uint64_t direct_wqes = 0;   // SENDs, WRITEs and READs between two QPs of the device, no frames
  std::array<uint64_t, static_cast<size_t>(wire::DropReason::kCount)> rx_parse_drops{};
  uint64_t rx_not_for_us = 0;  // destination MAC/VLAN/GID not in the port's GID table
  uint64_t rx_unknown_qp = 0;  // no such QP, or QP not able to receive
  uint64_t rx_bad_pkey = 0;
  uint64_t rx_bad_qkey = 0;
  uint64_t rx_wrong_transport = 0;  // opcode of another service type than the QP's
  uint64_t rx_wrong_path = 0;       // connected QP, packet from another GID
  uint64_t rx_bad_xrc_srq = 0;      // XRC request naming no XRC SRQ of its QP's domain
  uint64_t rx_no_recv_wqe = 0;      // UD/UC: dropped for lack of a receive WQE
  uint64_t rx_duplicate = 0;
  uint64_t rx_out_of_sequence = 0;
  uint64_t rnr_naks_sent = 0;
  uint64_t seq_naks_sent = 0;
  uint64_t naks_sent = 0;    // invalid request, remote access, remote operational
  uint64_t retransmits = 0;  // go-back-N restarts (timeout or NAK)
  uint64_t timeouts = 0;
  uint64_t rnr_naks_received = 0;
  uint64_t cq_overruns = 0;
  uint64_t mr_poisoned = 0;  // MRs whose client memory lost a page (driver/res/fault_guard.h)
  // Raw packet QPs: frames sent, frames dropped for a source MAC not their interface's
  // (as a NIC's spoof check), frames steered to one, and steered frames dropped for lack
  // of a receive WQE.
  uint64_t raw_tx_frames = 0;
  uint64_t raw_tx_spoofed = 0;
  uint64_t raw_rx_frames = 0;
  uint64_t raw_rx_no_recv_wqe = 0;
};

}  // namespace vrdma::driver
