#include "qp1/gsi.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "vdev/log.h"

namespace vrdma::qp1 {

using driver::wire::Gid;
using driver::wire::MacAddr;
using driver::wire::NetworkType;

namespace {

constexpr uint32_t kGsiQpn = 1;
constexpr uint32_t kGrhLen = driver::wire::kGrhLen;
// A receive buffer holds the GRH area and the largest UD payload (an MTU of 4096): a
// datagram that does not fit would complete with a length error and take QP1 to the
// Error state (IBTA 10.3.1), so only a MAD-sized one is accepted after the fact.
constexpr uint32_t kRecvStride = kGrhLen + 4096;
constexpr uint32_t kSendStride = kMadSize;
// wr_id: a buffer index, with this bit set for receive WRs.
constexpr uint64_t kRecvWrBit = uint64_t{1} << 32;
constexpr int kBatch = 32;  // completions read per PollCq call (on the stack)
// AddressVector.sgid_index is 16 bits.
constexpr uint32_t kMaxSgidIndex = 0xffff;
// Address handles kept for reuse: one per send slot, so a free one always exists when a
// send slot does.
constexpr uint32_t kAhCacheSize = GsiPort::kSendDepth;
constexpr uint32_t kAhBuckets = 2 * kAhCacheSize;  // a power of two
constexpr int32_t kNone = -1;

static_assert((kAhBuckets & (kAhBuckets - 1)) == 0);
static_assert(vdev::kGidsPerVdev == 16, "a vdev owns 16 GID entries (vdev/vdev.h)");

// The sender's GID and ours from the 40-byte GRH area of a UD receive buffer.
void ReadGrhArea(const uint8_t* grh, NetworkType type, Gid* sgid, Gid* dgid) {
  if (type == NetworkType::kRoceV2Ipv4) {
    // RoCEv2 over IPv4 (IBTA Annex A17): 20 unused bytes, then the IPv4 header; its
    // source address at byte 12, destination at 16. GIDs are IPv4-mapped (::ffff:a.b.c.d).
    const uint8_t* ip = grh + kGrhLen - driver::wire::kIpv4Len;
    *sgid = Gid{};
    *dgid = Gid{};
    (*sgid)[10] = (*sgid)[11] = (*dgid)[10] = (*dgid)[11] = 0xff;
    std::memcpy(sgid->data() + 12, ip + 12, 4);
    std::memcpy(dgid->data() + 12, ip + 16, 4);
  } else {
    // A GRH (RoCEv1, IBTA 8.3) or the IPv6 header (RoCEv2): SGID at 8, DGID at 24.
    std::memcpy(sgid->data(), grh + 8, 16);
    std::memcpy(dgid->data(), grh + 24, 16);
  }
}

}  // namespace

struct GsiPort::Resources {
  driver::RoceDevice* dev = nullptr;
  vdev::Pdev* pdev = nullptr;
  GsiCounters* counters = nullptr;
  uint32_t pd = 0;
  uint32_t cq = 0;
  bool qp = false;
  bool mr = false;
  uint32_t lkey = 0;
  // Receive buffers [0, kRecvDepth) then send buffers [0, kSendDepth); the MR's IOVAs
  // are the buffers' addresses.
  std::vector<uint8_t> mem;
  uint8_t* recv_base = nullptr;
  uint8_t* send_base = nullptr;

  // Send slots: a stack of the free ones, and the AH cache entry each in-flight one uses.
  std::array<uint16_t, kSendDepth> free_slots{};
  uint32_t free_count = 0;
  std::array<int32_t, kSendDepth> slot_ah{};

  // Address handles by (source GID entry, destination GID, destination MAC), chained per
  // hash bucket; evicted (second chance) only when no send in flight uses them.
  struct AhEntry {
    uint32_t ah = 0;  // 0: empty
    uint32_t sgid_index = 0;
    Gid dgid{};
    MacAddr dmac{};
    uint32_t refs = 0;  // sends in flight through it
    bool recent = false;
    int32_t next = kNone;
  };
  std::array<AhEntry, kAhCacheSize> ahs{};
  std::array<int32_t, kAhBuckets> buckets{};
  uint32_t ah_hand = 0;

  // The vdev of each 16-entry block of the pdev's GID table, rebuilt from the registry on
  // every pass that has MADs to hand over (a registry walk per pass, not per MAD).
  std::array<vdev::Vdev*, vdev::kMaxVdevsPerPdev> vdev_of_block{};
  uint64_t resets = 0;

  ~Resources() {
    if (!dev) return;
    if (qp) (void)dev->DestroyQp(kGsiQpn);
    for (AhEntry& e : ahs) {
      if (e.ah) (void)dev->DestroyAh(e.ah);
    }
    if (mr) (void)dev->DeregMr(lkey);
    if (cq) (void)dev->DestroyCq(cq);
    if (pd) (void)dev->DeallocPd(pd);
  }

  uint64_t Iova(const uint8_t* p) const { return reinterpret_cast<uint64_t>(p); }
  uint8_t* RecvBuffer(uint32_t i) const { return recv_base + size_t{i} * kRecvStride; }
  uint8_t* SendBuffer(uint32_t i) const { return send_base + size_t{i} * kSendStride; }

  ibv_qp_state QpState() const {
    const driver::QueuePair* q = dev->FindQp(kGsiQpn);
    return q ? q->state : IBV_QPS_RESET;
  }

  // RESET -> INIT -> RTR -> RTS with the GSI Q_Key and P_Key index 0 (IBTA 13.5.1;
  // RoCE's one P_Key, 0xFFFF), then every receive buffer posted.
  absl::Status BringUp() {
    ibv_qp_attr attr{};
    attr.qp_state = IBV_QPS_INIT;
    attr.pkey_index = 0;
    attr.qkey = driver::kGsiQkey;
    absl::Status st = dev->ModifyQp(kGsiQpn, attr, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_QKEY);
    if (!st.ok()) return st;
    attr.qp_state = IBV_QPS_RTR;
    if (st = dev->ModifyQp(kGsiQpn, attr, IBV_QP_STATE); !st.ok()) return st;
    attr.qp_state = IBV_QPS_RTS;
    attr.sq_psn = 0;
    if (st = dev->ModifyQp(kGsiQpn, attr, IBV_QP_STATE | IBV_QP_SQ_PSN); !st.ok()) return st;
    for (uint32_t i = 0; i < kRecvDepth; ++i) {
      if (st = PostRecv(i); !st.ok()) return st;
    }
    return absl::OkStatus();
  }

  absl::Status PostRecv(uint32_t i) {
    driver::RecvWr wr;
    wr.wr_id = kRecvWrBit | i;
    wr.num_sge = 1;
    wr.sg_list[0] = driver::Sge{Iova(RecvBuffer(i)), kRecvStride, lkey};
    return dev->PostRecv(kGsiQpn, wr);
  }

  // In the Error state a buffer waits for the reset, which posts them all.
  void Repost(uint32_t i) {
    if (QpState() == IBV_QPS_ERR) return;
    if (!PostRecv(i).ok()) counters->rx_errors++;
  }

  void ResetSendSlots() {
    free_count = 0;
    for (uint32_t i = kSendDepth; i > 0; --i) {
      free_slots[free_count++] = static_cast<uint16_t>(i - 1);
      slot_ah[i - 1] = kNone;
    }
    for (AhEntry& e : ahs) e.refs = 0;
  }

  void FreeSendSlot(uint32_t slot) {
    if (slot >= kSendDepth || slot_ah[slot] == kNone) return;  // not in flight
    ahs[static_cast<uint32_t>(slot_ah[slot])].refs--;
    slot_ah[slot] = kNone;
    free_slots[free_count++] = static_cast<uint16_t>(slot);
  }

  static uint32_t HashOf(uint32_t sgid_index, const Gid& dgid, const MacAddr& dmac) {
    uint32_t h = 2166136261u ^ sgid_index;  // FNV-1a
    for (uint8_t b : dgid) h = (h ^ b) * 16777619u;
    for (uint8_t b : dmac) h = (h ^ b) * 16777619u;
    return h & (kAhBuckets - 1);
  }

  // The AH cache entry for a destination, made (evicting an idle entry) when missing.
  absl::StatusOr<int32_t> AhFor(uint32_t sgid_index, const Gid& dgid, const MacAddr& dmac) {
    uint32_t bucket = HashOf(sgid_index, dgid, dmac);
    for (int32_t i = buckets[bucket]; i != kNone; i = ahs[static_cast<uint32_t>(i)].next) {
      AhEntry& e = ahs[static_cast<uint32_t>(i)];
      if (e.sgid_index == sgid_index && e.dgid == dgid && e.dmac == dmac) {
        e.recent = true;
        return i;
      }
    }
    // Second chance over the idle entries: at most two turns of the hand.
    int32_t victim = kNone;
    for (uint32_t step = 0; step < 2 * kAhCacheSize && victim == kNone; ++step) {
      uint32_t i = ah_hand;
      ah_hand = (ah_hand + 1) % kAhCacheSize;
      AhEntry& e = ahs[i];
      if (e.refs != 0) continue;
      if (e.ah == 0 || !e.recent) {
        victim = static_cast<int32_t>(i);
      } else {
        e.recent = false;
      }
    }
    if (victim == kNone) return absl::ResourceExhaustedError("every QP1 address handle is in use");
    AhEntry& e = ahs[static_cast<uint32_t>(victim)];
    if (e.ah) {
      Unlink(victim);
      (void)dev->DestroyAh(e.ah);
      e.ah = 0;
    }
    driver::AddressVector av;
    av.dgid = dgid;
    av.sgid_index = static_cast<uint16_t>(sgid_index);
    av.dmac = dmac;
    absl::StatusOr<uint32_t> ah = dev->CreateAh(pd, av);
    if (!ah.ok()) return ah.status();
    e.ah = *ah;
    e.sgid_index = sgid_index;
    e.dgid = dgid;
    e.dmac = dmac;
    e.refs = 0;
    e.recent = true;
    e.next = buckets[bucket];
    buckets[bucket] = victim;
    return victim;
  }

  void Unlink(int32_t idx) {
    AhEntry& e = ahs[static_cast<uint32_t>(idx)];
    int32_t* link = &buckets[HashOf(e.sgid_index, e.dgid, e.dmac)];
    while (*link != kNone && *link != idx) link = &ahs[static_cast<uint32_t>(*link)].next;
    if (*link == idx) *link = e.next;
    e.next = kNone;
  }

  void RefreshVdevs(const vdev::Registry& registry) {
    vdev_of_block.fill(nullptr);
    for (const auto& [name, v] : registry.vdevs()) {
      if (v->pdev != pdev) continue;
      uint32_t block = v->gid_base / vdev::kGidsPerVdev;
      if (block < vdev_of_block.size()) vdev_of_block[block] = v.get();
    }
  }

  // A send completion frees its slot; a receive completion's buffer goes back to the QP
  // once its MAD is handed over (or dropped).
  void OnCompletion(const ibv_wc& wc, const driver::RecvInfo& tag, const vdev::Registry& registry,
                    MadHandler& handler, bool* vdevs_fresh) {
    if (!(wc.wr_id & kRecvWrBit)) {
      if (wc.status == IBV_WC_SUCCESS) {
        counters->tx_mads++;
      } else {
        counters->tx_errors++;
      }
      FreeSendSlot(static_cast<uint32_t>(wc.wr_id));
      return;
    }
    const auto i = static_cast<uint32_t>(wc.wr_id & 0xffffffffu);
    if (i >= kRecvDepth) {
      counters->rx_errors++;
      return;
    }
    if (wc.status != IBV_WC_SUCCESS) {
      if (wc.status != IBV_WC_WR_FLUSH_ERR) counters->rx_errors++;
      Repost(i);
      return;
    }
    if (wc.byte_len != kGrhLen + kMadSize) {
      counters->rx_bad_length++;  // MADs are 256 bytes (IBTA 13.4.2)
      Repost(i);
      return;
    }
    const uint8_t* buf = RecvBuffer(i);
    InboundMad mad;
    vdev::Vdev* v = nullptr;
    if (tag.valid) {
      if (!*vdevs_fresh) {
        RefreshVdevs(registry);
        *vdevs_fresh = true;
      }
      uint32_t block = tag.gid_index / vdev::kGidsPerVdev;
      if (block < vdev_of_block.size()) v = vdev_of_block[block];
      ReadGrhArea(buf, tag.network_type, &mad.sgid, &mad.dgid);
    }
    // The entry must still be the vdev's and hold the GID the MAD was sent to (the table
    // may have changed since the engine received it).
    const uint32_t local = v ? tag.gid_index - v->gid_base : 0;
    if (!v || local >= v->gids.size() || !v->gids[local].valid || v->gids[local].gid != mad.dgid ||
        v->gids[local].type != tag.network_type) {
      counters->rx_no_vdev++;
      Repost(i);
      return;
    }
    mad.vdev = v;
    mad.gid_index = local;
    mad.tag = tag;
    mad.src_qpn = wc.src_qp;
    mad.mad = std::span<const uint8_t>(buf + kGrhLen, kMadSize);
    counters->rx_mads++;
    handler.OnMad(mad);
    Repost(i);
  }

  // Takes QP1 out of Send Queue Error: a send failed (its GID entry went away), and
  // unreliable service stops only its send queue (IBTA 10.3.1). SQE -> RTS, as Linux's
  // MAD layer does.
  void RecoverSendQueue() {
    if (QpState() != IBV_QPS_SQE) return;
    ibv_qp_attr attr{};
    attr.qp_state = IBV_QPS_RTS;
    if (absl::Status st = dev->ModifyQp(kGsiQpn, attr, IBV_QP_STATE); !st.ok()) {
      vdev::Log(vdev::LogLevel::kError, "qp1_recover_failed",
                absl::StrCat("pdev=", vdev::LogQuote(pdev->name),
                             " error=", vdev::LogQuote(st.ToString())));
    }
  }

  // Takes QP1 out of Error (a receive failed): every WR was flushed to the CQ, so the CQ
  // is drained (MADs received before the error still handed over, send slots freed),
  // then the QP is reset and brought up again with every receive buffer posted.
  void Recover(const vdev::Registry& registry, MadHandler& handler, bool* vdevs_fresh) {
    RecoverSendQueue();
    if (QpState() != IBV_QPS_ERR) return;
    ibv_wc wc[kBatch];
    driver::RecvInfo tags[kBatch];
    for (;;) {
      absl::StatusOr<int> n = dev->PollCq(cq, wc, tags, kBatch);
      if (!n.ok() || *n == 0) break;
      for (int k = 0; k < *n; ++k) OnCompletion(wc[k], tags[k], registry, handler, vdevs_fresh);
    }
    ibv_qp_attr attr{};
    attr.qp_state = IBV_QPS_RESET;
    absl::Status st = dev->ModifyQp(kGsiQpn, attr, IBV_QP_STATE);
    ResetSendSlots();
    if (st.ok()) st = BringUp();
    ++resets;
    if ((resets & (resets - 1)) == 0 || !st.ok()) {  // the 1st, 2nd, 4th, 8th ... time
      vdev::Log(st.ok() ? vdev::LogLevel::kWarn : vdev::LogLevel::kError, "qp1_reset",
                absl::StrCat("pdev=", vdev::LogQuote(pdev->name), " resets=", resets,
                             " status=", vdev::LogQuote(st.ToString())));
    }
  }
};

GsiPort::GsiPort(vdev::Pdev* pdev) : pdev_(pdev), res_(std::make_unique<Resources>()) {}

GsiPort::~GsiPort() = default;

absl::StatusOr<std::unique_ptr<GsiPort>> GsiPort::Create(vdev::Pdev* pdev) {
  if (!pdev || !pdev->device) return absl::InvalidArgumentError("pdev without a device");
  std::unique_ptr<GsiPort> port(new GsiPort(pdev));
  Resources& r = *port->res_;
  r.dev = pdev->device.get();
  r.pdev = pdev;
  r.counters = &port->counters_;
  r.buckets.fill(kNone);
  r.ResetSendSlots();

  absl::StatusOr<uint32_t> pd = r.dev->AllocPd();
  if (!pd.ok()) return pd.status();
  r.pd = *pd;
  // Room for a completion of every WR: the CQ never overruns.
  absl::StatusOr<uint32_t> cq = r.dev->CreateCq(kRecvDepth + kSendDepth);
  if (!cq.ok()) return cq.status();
  r.cq = *cq;
  r.mem.assign(size_t{kRecvDepth} * kRecvStride + size_t{kSendDepth} * kSendStride, 0);
  r.recv_base = r.mem.data();
  r.send_base = r.mem.data() + size_t{kRecvDepth} * kRecvStride;
  absl::StatusOr<driver::MrKeys> mr =
      r.dev->RegMr(r.pd, r.Iova(r.mem.data()), r.mem.data(), r.mem.size(), IBV_ACCESS_LOCAL_WRITE);
  if (!mr.ok()) return mr.status();
  r.mr = true;
  r.lkey = mr->lkey;

  driver::QpInitAttr init;
  init.type = driver::kQpTypeGsi;
  init.pd = r.pd;
  init.send_cq = init.recv_cq = r.cq;
  init.max_send_wr = kSendDepth;
  init.max_recv_wr = kRecvDepth;
  init.max_send_sge = init.max_recv_sge = 1;
  // Every GID entry of the port: QP1 serves every vdev on it.
  init.gid_first = init.gid_count = 0;
  absl::StatusOr<uint32_t> qpn = r.dev->CreateQp(init);
  if (!qpn.ok()) return qpn.status();
  r.qp = true;
  if (absl::Status st = r.BringUp(); !st.ok()) return st;
  return port;
}

int GsiPort::Poll(const vdev::Registry& registry, MadHandler& handler, int budget) {
  Resources& r = *res_;
  int done = 0;
  bool vdevs_fresh = false;
  ibv_wc wc[kBatch];
  driver::RecvInfo tags[kBatch];
  while (done < budget) {
    const int want = std::min(kBatch, budget - done);
    absl::StatusOr<int> n = r.dev->PollCq(r.cq, wc, tags, want);
    if (!n.ok() || *n == 0) break;
    for (int k = 0; k < *n; ++k) r.OnCompletion(wc[k], tags[k], registry, handler, &vdevs_fresh);
    done += *n;
    if (*n < want) break;
  }
  r.Recover(registry, handler, &vdevs_fresh);
  return done;
}

absl::Status GsiPort::Send(const vdev::Vdev& from, const MadDestination& to,
                           std::span<const uint8_t> mad) {
  Resources& r = *res_;
  if (mad.size() != kMadSize) {
    counters_.tx_errors++;
    return absl::InvalidArgumentError(
        absl::StrCat("a MAD is ", kMadSize, " bytes, not ", mad.size()));
  }
  if (from.pdev != pdev_) {
    counters_.tx_errors++;
    return absl::InvalidArgumentError(
        absl::StrCat("vdev ", from.name, " is not on pdev ", pdev_->name));
  }
  if (to.gid_index >= from.gids.size() || !from.gids[to.gid_index].valid) {
    counters_.tx_errors++;
    return absl::InvalidArgumentError(
        absl::StrCat("vdev ", from.name, " has no GID at index ", to.gid_index));
  }
  const uint32_t sgid_index = from.gid_base + to.gid_index;
  if (sgid_index > kMaxSgidIndex) {
    counters_.tx_errors++;
    return absl::OutOfRangeError(absl::StrCat("GID entry ", sgid_index, " of vdev ", from.name,
                                              " beyond what an address vector names"));
  }
  if (to.remote_qpn > 0xffffff) {
    counters_.tx_errors++;
    return absl::InvalidArgumentError("remote QPN is 24 bits");
  }
  if (r.free_count == 0) {
    counters_.tx_no_buffer++;
    return absl::ResourceExhaustedError("every QP1 send buffer is in flight");
  }
  r.RecoverSendQueue();  // in Send Queue Error this send would be flushed
  absl::StatusOr<int32_t> ah = r.AhFor(sgid_index, to.dgid, to.dmac);
  if (!ah.ok()) {
    counters_.tx_errors++;
    return ah.status();
  }
  const uint32_t slot = r.free_slots[r.free_count - 1];
  std::memcpy(r.SendBuffer(slot), mad.data(), kMadSize);
  driver::SendWr wr;
  wr.wr_id = slot;
  wr.opcode = IBV_WR_SEND;
  wr.send_flags = IBV_SEND_SIGNALED;  // every send completes: its slot comes back
  wr.num_sge = 1;
  wr.sg_list[0] = driver::Sge{r.Iova(r.SendBuffer(slot)), kSendStride, r.lkey};
  wr.ah = r.ahs[static_cast<uint32_t>(*ah)].ah;
  wr.remote_qpn = to.remote_qpn;
  wr.remote_qkey = driver::kGsiQkey;  // IBTA 13.5.1
  if (absl::Status st = r.dev->PostSend(kGsiQpn, wr); !st.ok()) {
    counters_.tx_errors++;
    return st;
  }
  r.free_count--;
  r.slot_ah[slot] = *ah;
  r.ahs[static_cast<uint32_t>(*ah)].refs++;
  return absl::OkStatus();
}

// ---- Qp1Poller ------------------------------------------------------------------------------

namespace {

// Makes a port for every pdev of the registry that has neither a port nor a failure yet.
void AddPorts(const vdev::Registry& registry, std::vector<std::unique_ptr<GsiPort>>& ports,
              std::vector<const vdev::Pdev*>& failed) {
  for (const auto& p : registry.pdevs()) {
    const vdev::Pdev* pdev = p.get();
    if (std::any_of(ports.begin(), ports.end(), [&](auto& g) { return g->pdev() == pdev; }) ||
        std::find(failed.begin(), failed.end(), pdev) != failed.end()) {
      continue;
    }
    absl::StatusOr<std::unique_ptr<GsiPort>> port = GsiPort::Create(p.get());
    if (port.ok()) {
      ports.push_back(std::move(*port));
      continue;
    }
    vdev::Log(vdev::LogLevel::kError, "qp1_unavailable",
              absl::StrCat("pdev=", vdev::LogQuote(pdev->name),
                           " error=", vdev::LogQuote(port.status().ToString())));
    failed.push_back(pdev);
  }
}

}  // namespace

Qp1Poller::Qp1Poller(vdev::Registry* registry, MadHandler* handler)
    : registry_(registry), handler_(handler) {
  AddPorts(*registry_, ports_, failed_);
}

int Qp1Poller::Poll(uint64_t /*now_ns*/) {
  // pdevs are only ever added: a new one shows in the count.
  if (registry_->pdevs().size() != ports_.size() + failed_.size()) {
    AddPorts(*registry_, ports_, failed_);
  }
  int work = 0;
  busy_ = false;
  for (auto& port : ports_) {
    int n = port->Poll(*registry_, *handler_, kPortBudget);
    work += n;
    if (n >= kPortBudget) busy_ = true;
  }
  return work;
}

absl::Status Qp1Poller::Send(const vdev::Vdev& from, const MadDestination& to,
                             std::span<const uint8_t> mad) {
  GsiPort* port = PortOf(from.pdev);
  if (!port) {
    return absl::FailedPreconditionError(absl::StrCat("no QP1 on the pdev of vdev ", from.name));
  }
  return port->Send(from, to, mad);
}

GsiPort* Qp1Poller::PortOf(const vdev::Pdev* pdev) {
  for (auto& port : ports_) {
    if (port->pdev() == pdev) return port.get();
  }
  return nullptr;
}

}  // namespace vrdma::qp1
