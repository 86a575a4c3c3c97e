#include "tests/unit/driver/transport/engine_pair.h"

namespace vrdma::driver::testing {
namespace {

// Virtual time advanced per step when something moved, and when both sides were idle.
constexpr uint64_t kBusyStepNs = 1'000;
constexpr uint64_t kIdleStepNs = 20'000;

wire::Gid Ipv4Gid(uint8_t last) {
  wire::Gid g{};
  g[10] = g[11] = 0xff;
  g[12] = 10;
  g[15] = last;
  return g;
}

wire::Gid Ipv6Gid(uint8_t last) {
  wire::Gid g{};
  g[0] = 0xfd;
  g[15] = last;
  return g;
}

wire::Gid LinkLocalGid(const wire::MacAddr& mac) {
  // fe80::/64 with the EUI-64 of the MAC, as the kernel's default RoCEv1 GID.
  wire::Gid g{};
  g[0] = 0xfe;
  g[1] = 0x80;
  g[8] = mac[0] ^ 2;
  g[9] = mac[1];
  g[10] = mac[2];
  g[11] = 0xff;
  g[12] = 0xfe;
  g[13] = mac[3];
  g[14] = mac[4];
  g[15] = mac[5];
  return g;
}

}  // namespace

rte_mempool* SharedPool() {
  static rte_mempool* pool = [] {
    auto p = CreatePacketPool("test_pool", 32767);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *p : nullptr;
  }();
  return pool;
}

EnginePair::EnginePair(uint64_t seed, size_t mem_bytes, const char* pcap_path, bool tx_chains,
                       bool one_device) {
  link_ = std::make_unique<TestLink>(seed);
  link_->SetTxChains(tx_chains);
  if (pcap_path) {
    pcap_writer_ = std::make_unique<PcapWriter>();
    absl::Status st = pcap_writer_->Open(pcap_path);
    EXPECT_TRUE(st.ok()) << st;
    pcap_port_ = std::make_unique<PcapPort>(link_->port_a(), pcap_writer_.get());
  }
  if (one_device) switch_ = std::make_unique<LoopbackPort>();
  SetupHost(a, 1, mem_bytes, one_device);
  SetupHost(b, 2, mem_bytes, one_device);
}

EnginePair::~EnginePair() {
  a.dev.reset();
  b.dev.reset();
  pcap_port_.reset();
  if (pcap_writer_) {
    EXPECT_TRUE(pcap_writer_->Close().ok());
  }
  switch_.reset();
  link_.reset();
}

void EnginePair::SetupHost(Host& h, uint8_t id, size_t mem_bytes, bool one_device) {
  RoceDeviceConfig cfg;
  cfg.pool = SharedPool();
  cfg.port = id == 1 ? (pcap_port_ ? static_cast<PacketPort*>(pcap_port_.get()) : link_->port_a())
                     : link_->port_b();
  h.shared_device = one_device;
  if (one_device && id == 2) {
    h.dev = a.dev;
    h.gid_base = 4;
  } else if (one_device) {
    cfg.port = switch_.get();
    cfg.icrc_offload = true;  // as the embedded pdev: frames never leave the engine
    h.dev = std::make_shared<RoceDevice>(cfg);
  } else {
    h.dev = std::make_shared<RoceDevice>(cfg);
  }
  wire::MacAddr mac = {0x02, 0, 0, 0, 0, id};
  GidEntry v2{true, Ipv4Gid(id), wire::NetworkType::kRoceV2Ipv4, mac, false, 0};
  GidEntry v6{true, Ipv6Gid(id), wire::NetworkType::kRoceV2Ipv6, mac, false, 0};
  GidEntry v1{true, LinkLocalGid(mac), wire::NetworkType::kRoceV1, mac, false, 0};
  GidEntry vlan{
      true, Ipv4Gid(static_cast<uint8_t>(id + 100)), wire::NetworkType::kRoceV2Ipv4, mac, true, 42};
  EXPECT_TRUE(h.dev->SetGid(h.gid_base + 0, v2).ok());
  EXPECT_TRUE(h.dev->SetGid(h.gid_base + 1, v6).ok());
  EXPECT_TRUE(h.dev->SetGid(h.gid_base + 2, v1).ok());
  EXPECT_TRUE(h.dev->SetGid(h.gid_base + 3, vlan).ok());
  h.pd = *h.dev->AllocPd();
  h.scq = *h.dev->CreateCq(8192);
  h.rcq = *h.dev->CreateCq(8192);
  h.mem.assign(mem_bytes, 0);
  h.base = 0x7000'0000'0000ull + id * 0x1'0000'0000ull;
  auto keys = h.dev->RegMr(h.pd, h.base, h.mem.data(), h.mem.size(),
                           IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
                               IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC);
  EXPECT_TRUE(keys.ok()) << keys.status();
  h.mr = *keys;
}

int EnginePair::Step() {
  link_->SetNow(now_);
  int work = a.dev->Poll(now_) + (b.dev != a.dev ? b.dev->Poll(now_) : 0);
  now_ += work ? kBusyStepNs : kIdleStepNs;
  return work;
}

bool EnginePair::RunUntil(const std::function<bool()>& pred, uint64_t max_ns) {
  uint64_t end = now_ + max_ns;
  while (!pred()) {
    if (now_ >= end) return false;
    Step();
  }
  return true;
}

bool EnginePair::WaitCq(Host& h, uint32_t cq, size_t n, std::vector<ibv_wc>* out, uint64_t max_ns) {
  return RunUntil(
      [&] {
        ibv_wc wc[32];
        auto got = h.dev->PollCq(cq, wc, 32);
        if (got.ok())
          for (int i = 0; i < *got; ++i) out->push_back(wc[i]);
        return out->size() >= n;
      },
      max_ns);
}

namespace {

// From `self`'s GID `gid_index` to the peer's entry of the same index.
AddressVector AvTo(const Host& self, const Host& peer, uint32_t gid_index) {
  const GidEntry* g = peer.dev->GetGid(peer.gid_base + gid_index);
  AddressVector av;
  av.dgid = g->gid;
  av.sgid_index = static_cast<uint8_t>(self.gid_base + gid_index);
  av.hop_limit = 64;
  av.dmac = g->mac;
  return av;
}

uint32_t CreateQpOn(Host& h, const QpOptions& opt, uint32_t srq) {
  QpInitAttr init;
  init.type = opt.type;
  init.pd = h.pd;
  init.send_cq = h.scq;
  init.recv_cq = h.rcq;
  init.has_srq = opt.srq;
  init.srq = srq;
  init.max_send_wr = opt.max_send_wr;
  init.max_recv_wr = opt.max_recv_wr;
  init.max_send_sge = kMaxSgePerWqe;
  init.max_recv_sge = kMaxSgePerWqe;
  init.max_inline_data = opt.max_inline;
  init.sq_sig_all = opt.sq_sig_all;
  init.gid_first = opt.gid_first;
  init.gid_count = opt.gid_count;
  if (h.shared_device && !opt.gid_count) {  // a vdev's QP hears its own GIDs only
    init.gid_first = h.gid_base;
    init.gid_count = 4;
  }
  auto q = h.dev->CreateQp(init);
  EXPECT_TRUE(q.ok()) << q.status();
  return *q;
}

}  // namespace

void EnginePair::Connect(const QpOptions& opt, uint32_t* qa, uint32_t* qb) {
  absl::Status st = TryConnect(opt, qa, qb);
  ASSERT_TRUE(st.ok()) << st;
}

absl::Status EnginePair::TryConnect(const QpOptions& opt, uint32_t* qa, uint32_t* qb) {
  if (opt.srq) {
    if (!srq_a_) srq_a_ = *a.dev->CreateSrq(a.pd, 4096, kMaxSgePerWqe, 0);
    if (!srq_b_) srq_b_ = *b.dev->CreateSrq(b.pd, 4096, kMaxSgePerWqe, 0);
  }
  *qa = CreateQpOn(a, opt, srq_a_);
  *qb = CreateQpOn(b, opt, srq_b_);
  return BringUp(opt, *qa, *qb);
}

absl::Status EnginePair::ConnectXrc(const QpOptions& opt, uint32_t xrcd_b, uint32_t* send_a,
                                    uint32_t* recv_b) {
  QpInitAttr send{};
  send.type = IBV_QPT_XRC_SEND;
  send.pd = a.pd;
  send.send_cq = a.scq;
  send.max_send_wr = opt.max_send_wr;
  send.max_send_sge = kMaxSgePerWqe;
  send.max_inline_data = opt.max_inline;
  absl::StatusOr<uint32_t> s = a.dev->CreateQp(send);
  if (!s.ok()) return s.status();
  QpInitAttr recv{};
  recv.type = IBV_QPT_XRC_RECV;
  recv.xrcd = xrcd_b;
  absl::StatusOr<uint32_t> r = b.dev->CreateQp(recv);
  if (!r.ok()) return r.status();
  *send_a = *s;
  *recv_b = *r;
  return BringUp(opt, *s, *r);
}

absl::Status EnginePair::BringUp(const QpOptions& opt, uint32_t qa_n, uint32_t qb_n) {
  uint32_t* qa = &qa_n;
  uint32_t* qb = &qb_n;
  struct Side {
    Host* h;
    uint32_t qpn;
    Host* peer;
    uint32_t peer_qpn;
  } sides[2] = {{&a, *qa, &b, *qb}, {&b, *qb, &a, *qa}};
  for (auto& s : sides) {
    ibv_qp_attr attr{};
    attr.qp_state = IBV_QPS_INIT;
    attr.pkey_index = 0;
    attr.port_num = 1;
    attr.qp_access_flags = opt.access;
    absl::Status init = s.h->dev->ModifyQp(
        s.qpn, attr, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
    if (!init.ok()) return init;
    attr = {};
    attr.qp_state = IBV_QPS_RTR;
    attr.path_mtu = opt.mtu;
    attr.dest_qp_num = s.peer_qpn;
    attr.rq_psn = 0x100 * (s.qpn & 0xff) + 0xfff000;  // near the 24-bit wrap on purpose
    attr.max_dest_rd_atomic = opt.rd_atomic;
    attr.min_rnr_timer = opt.min_rnr_timer;
    attr.ah_attr.is_global = 1;
    attr.ah_attr.port_num = 1;
    attr.ah_attr.grh.sgid_index = static_cast<uint8_t>(s.h->gid_base + opt.gid_index);
    AddressVector av = AvTo(*s.h, *s.peer, opt.gid_index);
    int mask = IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN;
    const int type = s.h->dev->FindQp(s.qpn)->type;
    // The responder's attributes (IBTA 11.2.4.2): RC and the XRC receive QP.
    if (type == IBV_QPT_RC || type == IBV_QPT_XRC_RECV)
      mask |= IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
    if (absl::Status st = s.h->dev->ModifyQp(s.qpn, attr, mask, &av); !st.ok()) return st;
  }
  for (auto& s : sides) {
    ibv_qp_attr attr{};
    attr.qp_state = IBV_QPS_RTS;
    attr.sq_psn = 0x100 * (s.peer_qpn & 0xff) + 0xfff000;
    attr.timeout = opt.timeout;
    attr.retry_cnt = opt.retry_cnt;
    attr.rnr_retry = opt.rnr_retry;
    attr.max_rd_atomic = opt.init_rd_atomic ? opt.init_rd_atomic : opt.rd_atomic;
    int mask = IBV_QP_STATE | IBV_QP_SQ_PSN;
    const int type = s.h->dev->FindQp(s.qpn)->type;
    // The requester's (RC, XRC send); an XRC receive QP takes only the timeout.
    if (type == IBV_QPT_RC || type == IBV_QPT_XRC_SEND)
      mask |= IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC;
    if (type == IBV_QPT_XRC_RECV) mask |= IBV_QP_TIMEOUT;
    if (absl::Status st = s.h->dev->ModifyQp(s.qpn, attr, mask); !st.ok()) return st;
  }
  return absl::OkStatus();
}

void EnginePair::CreateUd(const QpOptions& opt, uint32_t* qa, uint32_t* qb, uint32_t* ah_ab,
                          uint32_t* ah_ba) {
  *qa = CreateQpOn(a, opt, 0);
  *qb = CreateQpOn(b, opt, 0);
  for (auto [h, qpn] : {std::pair{&a, *qa}, std::pair{&b, *qb}}) {
    ibv_qp_attr attr{};
    attr.qp_state = IBV_QPS_INIT;
    attr.pkey_index = 0;
    attr.port_num = 1;
    attr.qkey = 0x11111111;  // MakeDatagram's
    ASSERT_TRUE(
        h->dev->ModifyQp(qpn, attr, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_QKEY)
            .ok());
    attr = {};
    attr.qp_state = IBV_QPS_RTR;
    ASSERT_TRUE(h->dev->ModifyQp(qpn, attr, IBV_QP_STATE).ok());
    attr.qp_state = IBV_QPS_RTS;
    attr.sq_psn = 77;
    ASSERT_TRUE(h->dev->ModifyQp(qpn, attr, IBV_QP_STATE | IBV_QP_SQ_PSN).ok());
  }
  *ah_ab = *a.dev->CreateAh(a.pd, AvTo(a, b, opt.gid_index));
  *ah_ba = *b.dev->CreateAh(b.pd, AvTo(b, a, opt.gid_index));
}

SendWr MakeSend(uint64_t wr_id, ibv_wr_opcode op, const Host& h, uint64_t off, uint32_t len,
                bool signaled) {
  SendWr wr;
  wr.wr_id = wr_id;
  wr.opcode = op;
  wr.send_flags = signaled ? IBV_SEND_SIGNALED : 0;
  wr.num_sge = 1;
  wr.sg_list[0] = Sge{h.va(off), len, h.mr.lkey};
  return wr;
}

SendWr MakeDatagram(uint64_t wr_id, const Host& h, uint64_t off, uint32_t len, uint32_t ah,
                    uint32_t qpn) {
  SendWr wr = MakeSend(wr_id, IBV_WR_SEND, h, off, len);
  wr.ah = ah;
  wr.remote_qpn = qpn;
  wr.remote_qkey = 0x11111111;
  return wr;
}

RecvWr MakeRecv(uint64_t wr_id, const Host& h, uint64_t off, uint32_t len) {
  RecvWr wr;
  wr.wr_id = wr_id;
  wr.num_sge = 1;
  wr.sg_list[0] = Sge{h.va(off), len, h.mr.lkey};
  return wr;
}

void FillPattern(uint8_t* p, size_t n, uint32_t seed) {
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p[i] = static_cast<uint8_t>(x);
  }
}

}  // namespace vrdma::driver::testing
