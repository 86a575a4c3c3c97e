#include "driver/port/test_link.h"

#include <deque>

namespace vrdma::driver {

struct TestLink::Queue {
  struct Item {
    rte_mbuf* m;
    uint64_t due_ns;
  };
  explicit Queue(uint32_t depth) : depth(depth) { ring.resize(depth); }
  // Fixed ring: no allocation per frame.
  std::vector<Item> ring;
  uint32_t depth;
  uint32_t head = 0;
  uint32_t count = 0;
  rte_mbuf* held = nullptr;  // a reordered frame waiting for the next one to pass it
  uint64_t held_since = 0;
  FaultConfig faults;
  LinkCounters counters;

  bool Push(rte_mbuf* m, uint64_t due) {
    if (count == depth) return false;
    ring[(head + count) % depth] = Item{m, due};
    ++count;
    return true;
  }
};

class TestLink::Endpoint : public PacketPort {
 public:
  Endpoint(TestLink* link, Direction tx, std::string name)
      : link_(link), tx_(tx), name_(std::move(name)) {}
  uint16_t RxBurst(rte_mbuf** pkts, uint16_t n) override {
    return link_->Receive(tx_ == kAtoB ? kBtoA : kAtoB, pkts, n);
  }
  uint16_t TxBurst(rte_mbuf** pkts, uint16_t n) override { return link_->Send(tx_, pkts, n); }
  std::string_view Name() const override { return name_; }
  bool TxChains() const override { return link_->tx_chains_; }

 private:
  TestLink* link_;
  Direction tx_;
  std::string name_;
};

TestLink::TestLink(uint64_t seed, uint32_t queue_depth) : rng_(seed ? seed : 1) {
  for (auto& q : queues_) q = std::make_unique<Queue>(queue_depth);
  ends_[0] = std::make_unique<Endpoint>(this, kAtoB, "testlink-a");
  ends_[1] = std::make_unique<Endpoint>(this, kBtoA, "testlink-b");
}

TestLink::~TestLink() {
  for (auto& q : queues_) {
    for (uint32_t i = 0; i < q->count; ++i) rte_pktmbuf_free(q->ring[(q->head + i) % q->depth].m);
    if (q->held) rte_pktmbuf_free(q->held);
  }
}

PacketPort* TestLink::port_a() { return ends_[0].get(); }
PacketPort* TestLink::port_b() { return ends_[1].get(); }

void TestLink::SetFaults(Direction dir, const FaultConfig& faults) {
  queues_[dir]->faults = faults;
}

const LinkCounters& TestLink::counters(Direction dir) const { return queues_[dir]->counters; }

size_t TestLink::in_flight() const {
  return queues_[0]->count + queues_[1]->count + (queues_[0]->held != nullptr) +
         (queues_[1]->held != nullptr);
}

uint64_t TestLink::Random() {
  // splitmix64: small, fast, and the same sequence for the same seed everywhere.
  uint64_t z = (rng_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint16_t TestLink::Send(Direction dir, rte_mbuf** pkts, uint16_t n) {
  Queue& q = *queues_[dir];
  const FaultConfig& f = q.faults;
  uint64_t due = now_ + f.delay_ns;
  if (f.accept_per_burst && n > f.accept_per_burst) n = f.accept_per_burst;
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    q.counters.sent++;
    // Zero-copy segments, and any that a device DMAing through an IOMMU could not take
    // as one physical run (one crossing a 4 KiB page of client memory).
    for (const rte_mbuf* seg = m; seg; seg = seg->next) {
      if (!RTE_MBUF_HAS_EXTBUF(seg)) continue;
      q.counters.external_segments++;
      uintptr_t start = rte_pktmbuf_mtod(seg, uintptr_t);
      if (seg->data_len && start / 4096 != (start + seg->data_len - 1) / 4096) {
        q.counters.external_crossing_page++;
      }
    }
    if (f.drop > 0 && Uniform() < f.drop) {
      q.counters.dropped++;
      rte_pktmbuf_free(m);
      continue;
    }
    if (f.corrupt > 0 && Uniform() < f.corrupt && rte_pktmbuf_pkt_len(m) > 0) {
      uint32_t bit = static_cast<uint32_t>(Random() % (rte_pktmbuf_data_len(m) * 8ull));
      rte_pktmbuf_mtod(m, uint8_t*)[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
      q.counters.corrupted++;
    }
    rte_mbuf* dup = nullptr;
    if (f.duplicate > 0 && Uniform() < f.duplicate) {
      dup = rte_pktmbuf_copy(m, m->pool, 0, UINT32_MAX);
      if (dup) q.counters.duplicated++;
    }
    if (f.reorder > 0 && !q.held && Uniform() < f.reorder) {
      q.held = m;  // delivered right after the next frame
      q.held_since = now_;
      q.counters.reordered++;
    } else {
      if (!q.Push(m, due)) {
        q.counters.overflow++;
        rte_pktmbuf_free(m);
      }
      if (q.held) {
        if (!q.Push(q.held, due)) {
          q.counters.overflow++;
          rte_pktmbuf_free(q.held);
        }
        q.held = nullptr;
      }
    }
    if (dup && !q.Push(dup, due)) {
      q.counters.overflow++;
      rte_pktmbuf_free(dup);
    }
  }
  return n;  // the frames taken; losses among them are faults, counted above
}

uint16_t TestLink::Receive(Direction dir, rte_mbuf** pkts, uint16_t n) {
  Queue& q = *queues_[dir];
  // A frame held back for reordering and not passed in time goes out on its own.
  if (q.held && now_ >= q.held_since + kMaxHoldNs) {
    if (!q.Push(q.held, now_)) {
      q.counters.overflow++;
      rte_pktmbuf_free(q.held);
    }
    q.held = nullptr;
  }
  uint16_t got = 0;
  while (got < n && q.count > 0 && q.ring[q.head].due_ns <= now_) {
    pkts[got++] = q.ring[q.head].m;
    q.head = (q.head + 1) % q.depth;
    --q.count;
  }
  q.counters.delivered += got;
  return got;
}

}  // namespace vrdma::driver
