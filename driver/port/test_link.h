// In-memory link between two ports, with deterministic fault injection from a seed:
// drop, duplicate, reorder (hold a frame back behind later ones), corrupt (flip one
// bit) and a fixed delay, per direction. Time is explicit (SetNow). Queues are bounded
// like NIC rings: frames beyond the depth are dropped and counted.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "driver/port/packet_port.h"

namespace vrdma::driver {

struct FaultConfig {
  double drop = 0;       // probability a frame is lost
  double duplicate = 0;  // probability a frame is delivered twice
  double reorder = 0;    // probability a frame is held back behind the next one sent
  double corrupt = 0;    // probability one bit of the frame is flipped
  uint64_t delay_ns = 0;
  // Frames the link takes per TxBurst call, as a NIC with a full transmit ring (0: all).
  uint16_t accept_per_burst = 0;
};

struct LinkCounters {
  uint64_t sent = 0;
  uint64_t delivered = 0;
  uint64_t dropped = 0;
  uint64_t duplicated = 0;
  uint64_t reordered = 0;
  uint64_t corrupted = 0;
  uint64_t overflow = 0;
  uint64_t external_segments = 0;       // payload segments in client memory (zero-copy)
  uint64_t external_crossing_page = 0;  // of those, ones that cross a 4 KiB page
};

class TestLink {
 public:
  // A frame held back for reordering goes out after the next frame sent, or after this
  // long if nothing else is sent.
  static constexpr uint64_t kMaxHoldNs = 20'000;

  enum Direction { kAtoB = 0, kBtoA = 1 };

  explicit TestLink(uint64_t seed, uint32_t queue_depth = 4096);
  ~TestLink();
  TestLink(const TestLink&) = delete;
  TestLink& operator=(const TestLink&) = delete;

  PacketPort* port_a();
  PacketPort* port_b();
  void SetNow(uint64_t now_ns) { now_ = now_ns; }
  void SetFaults(Direction dir, const FaultConfig& faults);
  // Both ends take chained frames (zero-copy transmit); the receiving engine
  // linearizes them, as it does a multi-segment frame from any port.
  void SetTxChains(bool on) { tx_chains_ = on; }
  const LinkCounters& counters(Direction dir) const;
  // Frames queued in both directions (delivered or not yet due).
  size_t in_flight() const;

 private:
  class Endpoint;
  struct Queue;
  uint64_t Random();
  double Uniform() { return (Random() >> 11) * (1.0 / 9007199254740992.0); }
  uint16_t Send(Direction dir, rte_mbuf** pkts, uint16_t n);
  uint16_t Receive(Direction dir, rte_mbuf** pkts, uint16_t n);

  uint64_t rng_;
  uint64_t now_ = 0;
  bool tx_chains_ = false;
  std::unique_ptr<Queue> queues_[2];
  std::unique_ptr<Endpoint> ends_[2];
};

}  // namespace vrdma::driver
