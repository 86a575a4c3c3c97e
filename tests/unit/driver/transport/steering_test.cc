// Receive steering: a port hands the engine every frame on its wire, and only frames
// addressed to one of the port's GIDs (destination GID and network type, the owning
// interface's MAC and VLAN) reach a QP, and a QP only hears its own device's GIDs.
#include <cstring>

#include "tests/unit/driver/transport/engine_pair.h"

namespace vrdma::testing {
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

}  // namespace
}  // namespace vrdma::testing
