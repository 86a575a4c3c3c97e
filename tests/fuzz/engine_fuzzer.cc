// libFuzzer target: arbitrary frames into the classifier, responder and completer of a
// live engine. Each input gets a fresh small device with an RC QP (with READ, WRITE and
// ATOMIC requests outstanding, so responses have something to match), a UC QP, a UD QP
// and an SRQ. Half of the inputs are raw frames; the other half are frames built from
// fuzzed header fields and sealed with a correct ICRC, so they get past the parser.
#include <rte_mbuf.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "driver/port/packet_pool.h"
#include "driver/transport/device.h"
#include "driver/wire/codec.h"
#include "vfio/eal.h"

namespace {

using namespace vrdma::driver;

class SinkPort : public PacketPort {
 public:
  uint16_t RxBurst(rte_mbuf**, uint16_t) override { return 0; }
  uint16_t TxBurst(rte_mbuf** pkts, uint16_t n) override {
    for (uint16_t i = 0; i < n; ++i) rte_pktmbuf_free(pkts[i]);
    return n;
  }
  std::string_view Name() const override { return "sink"; }
};

rte_mempool* g_pool = nullptr;
SinkPort g_sink;

constexpr uint32_t kPeerQpn = 0x99;
const wire::Gid kLocalGid = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1};
const wire::Gid kPeerGid = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2};

struct Reader {
  const uint8_t* p;
  size_t n;
  template <typename T>
  T Get() {
    T v{};
    size_t k = n < sizeof(T) ? n : sizeof(T);
    std::memcpy(&v, p, k);
    p += k;
    n -= k;
    return v;
  }
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (!vrdma::vfio::InitEal(vrdma::vfio::NoDeviceEalArgs()).ok()) __builtin_trap();
  g_pool = *vrdma::driver::CreatePacketPool("fuzz_pool", 4095);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  RoceDeviceConfig cfg;
  cfg.limits.max_qp = 8;
  cfg.limits.max_cq = 4;
  cfg.limits.max_mr = 4;
  cfg.limits.max_pd = 2;
  cfg.limits.max_srq = 2;
  cfg.limits.max_ah = 2;
  cfg.pool = g_pool;
  cfg.port = &g_sink;
  RoceDevice dev(cfg);
  GidEntry gid{true, kLocalGid, wire::NetworkType::kRoceV2Ipv4, {2, 0, 0, 0, 0, 1}, false, 0};
  dev.SetGid(0, gid).IgnoreError();
  uint32_t pd = *dev.AllocPd();
  uint32_t cq = *dev.CreateCq(64);
  static std::vector<uint8_t> mem(1 << 16);
  MrKeys mr = *dev.RegMr(pd, 0x10000, mem.data(), mem.size(),
                         IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ |
                             IBV_ACCESS_REMOTE_ATOMIC);
  uint32_t srq = *dev.CreateSrq(pd, 16, 2, 4);
  AddressVector av;
  av.dgid = kPeerGid;
  av.dmac = {2, 0, 0, 0, 0, 2};
  uint32_t qpns[3];
  const int types[3] = {IBV_QPT_RC, IBV_QPT_UC, IBV_QPT_UD};
  for (int i = 0; i < 3; ++i) {
    QpInitAttr init;
    init.type = types[i];
    init.pd = pd;
    init.send_cq = init.recv_cq = cq;
    init.max_send_wr = 8;
    init.max_recv_wr = 8;
    init.max_send_sge = init.max_recv_sge = 2;
    init.has_srq = i == 0;
    init.srq = srq;
    qpns[i] = *dev.CreateQp(init);
    ibv_qp_attr a{};
    a.qp_state = IBV_QPS_INIT;
    a.port_num = 1;
    a.qkey = 0x1234;
    a.qp_access_flags = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;
    int m = IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT;
    m |= types[i] == IBV_QPT_UD ? IBV_QP_QKEY : IBV_QP_ACCESS_FLAGS;
    dev.ModifyQp(qpns[i], a, m).IgnoreError();
    a = {};
    a.qp_state = IBV_QPS_RTR;
    a.path_mtu = IBV_MTU_256;
    a.dest_qp_num = kPeerQpn;
    a.rq_psn = 100;
    a.max_dest_rd_atomic = 4;
    a.min_rnr_timer = 1;
    m = IBV_QP_STATE;
    if (types[i] != IBV_QPT_UD) m |= IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN;
    if (types[i] == IBV_QPT_RC) m |= IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
    dev.ModifyQp(qpns[i], a, m, &av).IgnoreError();
    a = {};
    a.qp_state = IBV_QPS_RTS;
    a.sq_psn = 200;
    a.timeout = 1;
    a.retry_cnt = 1;
    a.rnr_retry = 1;
    a.max_rd_atomic = 4;
    m = IBV_QP_STATE | IBV_QP_SQ_PSN;
    if (types[i] == IBV_QPT_RC)
      m |= IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC;
    dev.ModifyQp(qpns[i], a, m).IgnoreError();
  }
  for (int i = 0; i < 4; ++i) {
    RecvWr r;
    r.wr_id = i;
    r.num_sge = 1;
    r.sg_list[0] = Sge{0x10000 + 4096u * i, 4096, mr.lkey};
    dev.PostSrqRecv(srq, r).IgnoreError();
    dev.PostRecv(qpns[1], r).IgnoreError();
    dev.PostRecv(qpns[2], r).IgnoreError();
  }
  // Outstanding RC requests: READ (PSN 200..215), WRITE, ATOMIC.
  const ibv_wr_opcode ops[3] = {IBV_WR_RDMA_READ, IBV_WR_RDMA_WRITE, IBV_WR_ATOMIC_FETCH_AND_ADD};
  for (int i = 0; i < 3; ++i) {
    SendWr w;
    w.wr_id = 10 + i;
    w.opcode = ops[i];
    w.send_flags = IBV_SEND_SIGNALED;
    w.num_sge = 1;
    w.sg_list[0] = Sge{0x20000 + 0x1000u * i, i == 2 ? 8u : 4096u, mr.lkey};
    w.remote_addr = 0x5000;
    w.rkey = 0x77;
    dev.PostSend(qpns[0], w).IgnoreError();
  }
  uint64_t now = 1000;
  dev.Poll(now);

  Reader in{data + 1, size - 1};
  bool structured = data[0] & 1;
  while (in.n > 0) {
    rte_mbuf* m = rte_pktmbuf_alloc(g_pool);
    if (!m) break;
    uint8_t* buf = rte_pktmbuf_mtod(m, uint8_t*);
    uint32_t len = 0;
    if (!structured) {
      len = in.Get<uint16_t>() % (kFrameDataRoom + 1);
      if (len > in.n) len = static_cast<uint32_t>(in.n);
      std::memcpy(buf, in.p, len);
      in.p += len;
      in.n -= len;
    } else {
      wire::RocePacket h;
      h.eth.dst = {2, 0, 0, 0, 0, 1};
      h.eth.src = {2, 0, 0, 0, 0, 2};
      h.net.type = wire::NetworkType::kRoceV2Ipv4;
      h.net.sgid = kPeerGid;
      h.net.dgid = kLocalGid;
      uint8_t sel = in.Get<uint8_t>();
      h.bth.opcode = in.Get<uint8_t>();
      h.bth.dest_qp = (sel & 3) == 3 ? in.Get<uint32_t>() & 0xffffff : qpns[sel & 3];
      h.bth.psn = (in.Get<uint16_t>() + (sel & 4 ? 100 : 190)) & 0xffffff;
      h.bth.ack_req = sel & 8;
      h.bth.solicited = sel & 16;
      h.reth.va = 0x10000 + in.Get<uint16_t>();
      h.reth.rkey = (sel & 32) ? in.Get<uint32_t>() : mr.rkey;
      h.reth.dma_len = in.Get<uint16_t>();
      h.atomic.va = h.reth.va;
      h.atomic.rkey = h.reth.rkey;
      h.atomic.swap_add = in.Get<uint64_t>();
      h.aeth.syndrome = in.Get<uint8_t>();
      h.aeth.msn = in.Get<uint16_t>();
      h.deth.qkey = (sel & 64) ? 0x1234 : in.Get<uint32_t>();
      h.deth.src_qp = kPeerQpn;
      h.ieth_rkey = in.Get<uint32_t>();
      uint32_t plen = in.Get<uint16_t>() % 600;
      if (plen > in.n) plen = static_cast<uint32_t>(in.n);
      if (!wire::GetOpcodeInfo(h.bth.opcode).valid) h.bth.opcode &= 0x1f;
      uint32_t off = wire::EncodeHeaders(&h, plen, buf, rte_pktmbuf_tailroom(m));
      if (off == 0) {
        rte_pktmbuf_free(m);
        break;
      }
      std::memcpy(buf + off, in.p, plen);
      in.p += plen;
      in.n -= plen;
      wire::SealFrame(buf, h);
      len = h.frame_len;
    }
    m->data_len = static_cast<uint16_t>(len);
    m->pkt_len = len;
    dev.Receive(&m, 1);
    now += 50'000;
    dev.Poll(now);
  }
  // Let timers fire (retransmits, RNR waits) and drain everything.
  for (int i = 0; i < 8; ++i) {
    now += 10'000'000;
    dev.Poll(now);
  }
  ibv_wc wc[64];
  while (*dev.PollCq(cq, wc, 64) > 0) {
  }
  AsyncEvent ev;
  while (dev.PollAsyncEvent(&ev)) {
  }
  return 0;
}
