// Receive steering: a port hands the engine every frame on its wire, and only frames
// addressed to one of the port's GIDs (destination GID and network type, the owning
// interface's MAC and VLAN) reach a QP, and a QP only hears its own device's GIDs.
#include <cstring>

#include "tests/unit/driver/transport/engine_pair.h"

namespace vrdma::driver::testing {
namespace {

struct UdSetup {
  EnginePair pair;
  uint32_t qa = 0, qb = 0, ah_ab = 0, ah_ba = 0;

  explicit UdSetup(const QpOptions& opt) { pair.CreateUd(opt, &qa, &qb, &ah_ab, &ah_ba); }

  // Sends 64 bytes from A to B through an AH made of `av`; true when B received them.
  bool SendVia(const AddressVector& av, uint64_t wr_id) {
    Host& a = pair.a;
    Host& b = pair.b;
    uint32_t ah = *a.dev->CreateAh(a.pd, av);
    FillPattern(a.at(0), 64, static_cast<uint32_t>(wr_id));
    EXPECT_TRUE(b.dev->PostRecv(qb, MakeRecv(wr_id, b, 1 << 20, 4096)).ok());
    SendWr w = MakeSend(wr_id, IBV_WR_SEND, a, 0, 64);
    w.ah = ah;
    w.remote_qpn = qb;
    w.remote_qkey = 0x11111111;
    EXPECT_TRUE(a.dev->PostSend(qa, w).ok());
    std::vector<ibv_wc> swc, rwc;
    EXPECT_TRUE(pair.WaitCq(a, a.scq, 1, &swc));
    bool got = pair.WaitCq(b, b.rcq, 1, &rwc, 50'000'000);
    // A receive WQE left by an earlier datagram that did not arrive takes this one.
    return got && rwc[0].status == IBV_WC_SUCCESS &&
           std::memcmp(b.at((1 << 20) + 40), a.at(0), 64) == 0;
  }

  AddressVector AvToB(uint32_t gid_index) const {
    const GidEntry* g = pair.b.dev->GetGid(gid_index);
    AddressVector av;
    av.dgid = g->gid;
    av.sgid_index = 0;
    av.dmac = g->mac;
    return av;
  }
};

TEST(SteeringTest, FrameToAnotherMacIsNotDelivered) {
  UdSetup s(QpOptions{.type = IBV_QPT_UD});
  AddressVector av = s.AvToB(0);
  av.dmac[5] ^= 0x40;  // right GID, someone else's MAC
  EXPECT_FALSE(s.SendVia(av, 1));
  EXPECT_EQ(s.pair.b.dev->counters().rx_not_for_us, 1u);
  EXPECT_TRUE(s.SendVia(s.AvToB(0), 2)) << "the same datagram to the right MAC arrives";
}

TEST(SteeringTest, UnknownGidIsNotDelivered) {
  UdSetup s(QpOptions{.type = IBV_QPT_UD});
  AddressVector av = s.AvToB(0);
  av.dgid[15] ^= 1;  // the right MAC, a GID the port does not have
  EXPECT_FALSE(s.SendVia(av, 1));
  EXPECT_EQ(s.pair.b.dev->counters().rx_not_for_us, 1u);
  EXPECT_EQ(s.pair.b.dev->counters().rx_unknown_qp, 0u);
}

TEST(SteeringTest, VlanMustMatchTheGidsInterface) {
  UdSetup s(QpOptions{.type = IBV_QPT_UD});
  // Entry 3 of B is on VLAN 42: a frame to its GID from the untagged interface (A's
  // GID 0 has no VLAN) carries no tag, so it is not for entry 3.
  EXPECT_FALSE(s.SendVia(s.AvToB(3), 1));
  EXPECT_EQ(s.pair.b.dev->counters().rx_not_for_us, 1u);
}

TEST(SteeringTest, QpHearsOnlyItsOwnDevicesGids) {
  // B's QP belongs to a device owning GID entries [0, 2): RoCEv1 entry 2 is another's.
  UdSetup s(QpOptions{.type = IBV_QPT_UD, .gid_first = 0, .gid_count = 2});
  EXPECT_TRUE(s.SendVia(s.AvToB(0), 1));
  AddressVector av = s.AvToB(2);
  av.sgid_index = 2;  // RoCEv1 from A's RoCEv1 GID
  EXPECT_FALSE(s.SendVia(av, 2));
  EXPECT_EQ(s.pair.b.dev->counters().rx_not_for_us, 1u);
}

// A port that sends every frame away and receives nothing: a wire with no one on it.
class SinkPort : public PacketPort {
 public:
  uint16_t RxBurst(rte_mbuf**, uint16_t) override { return 0; }
  uint16_t TxBurst(rte_mbuf** pkts, uint16_t n) override {
    for (uint16_t i = 0; i < n; ++i) rte_pktmbuf_free(pkts[i]);
    sent += n;
    return n;
  }
  std::string_view Name() const override { return "sink"; }
  uint64_t sent = 0;
};

TEST(SteeringTest, HairpinTurnsFramesToOwnMacsAround) {
  // One device on a real port with two vdevs (GID entries 0 and 1, two MACs): a UD
  // datagram from the first to the second never reaches the wire and arrives.
  SinkPort sink;
  RoceDeviceConfig cfg;
  cfg.pool = SharedPool();
  cfg.port = &sink;
  cfg.hairpin = true;
  RoceDevice dev(cfg);
  wire::Gid g1{}, g2{};
  g1[10] = g1[11] = g2[10] = g2[11] = 0xff;
  g1[12] = g2[12] = 10;
  g1[15] = 1;
  g2[15] = 2;
  ASSERT_TRUE(
      dev.SetGid(0, GidEntry{true, g1, wire::NetworkType::kRoceV2Ipv4, {2, 0, 0, 0, 0, 1}}).ok());
  ASSERT_TRUE(
      dev.SetGid(1, GidEntry{true, g2, wire::NetworkType::kRoceV2Ipv4, {2, 0, 0, 0, 0, 2}}).ok());
  uint32_t pd = *dev.AllocPd();
  uint32_t cq = *dev.CreateCq(64);
  std::vector<uint8_t> mem(8192);
  MrKeys mr = *dev.RegMr(pd, 0x10000, mem.data(), mem.size(), IBV_ACCESS_LOCAL_WRITE);
  uint32_t qp[2];
  for (uint32_t i = 0; i < 2; ++i) {
    QpInitAttr init;
    init.type = IBV_QPT_UD;
    init.pd = pd;
    init.send_cq = init.recv_cq = cq;
    init.max_send_wr = init.max_recv_wr = 8;
    init.gid_first = i;
    init.gid_count = 1;
    qp[i] = *dev.CreateQp(init);
    ibv_qp_attr a{};
    a.qp_state = IBV_QPS_INIT;
    a.port_num = 1;
    a.qkey = 0x1234;
    ASSERT_TRUE(
        dev.ModifyQp(qp[i], a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_QKEY).ok());
    a = {};
    a.qp_state = IBV_QPS_RTR;
    ASSERT_TRUE(dev.ModifyQp(qp[i], a, IBV_QP_STATE).ok());
    a.qp_state = IBV_QPS_RTS;
    ASSERT_TRUE(dev.ModifyQp(qp[i], a, IBV_QP_STATE | IBV_QP_SQ_PSN).ok());
  }
  AddressVector av;
  av.dgid = g2;
  av.sgid_index = 0;
  av.dmac = {2, 0, 0, 0, 0, 2};
  uint32_t ah = *dev.CreateAh(pd, av);
  RecvWr r;
  r.wr_id = 9;
  r.num_sge = 1;
  r.sg_list[0] = Sge{0x10000 + 4096, 4096, mr.lkey};
  ASSERT_TRUE(dev.PostRecv(qp[1], r).ok());
  std::memcpy(mem.data(), "hairpin", 8);
  SendWr w;
  w.wr_id = 1;
  w.opcode = IBV_WR_SEND;
  w.send_flags = IBV_SEND_SIGNALED;
  w.num_sge = 1;
  w.sg_list[0] = Sge{0x10000, 8, mr.lkey};
  w.ah = ah;
  w.remote_qpn = qp[1];
  w.remote_qkey = 0x1234;
  ASSERT_TRUE(dev.PostSend(qp[0], w).ok());
  std::vector<ibv_wc> got;
  for (int pass = 0; pass < 10 && got.size() < 2; ++pass) {
    dev.Poll(static_cast<uint64_t>(pass) * 1000);
    ibv_wc wc[4];
    int n = *dev.PollCq(cq, wc, 4);
    got.insert(got.end(), wc, wc + n);
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(sink.sent, 0u) << "nothing went to the wire";
  EXPECT_EQ(std::memcmp(mem.data() + 4096 + 40, "hairpin", 8), 0);
}

}  // namespace
}  // namespace vrdma::driver::testing
