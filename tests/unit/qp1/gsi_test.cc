// qp1/gsi.cc without a daemon: the shared QP1 of an embedded pdev with two vdevs bound to
// the veth pair of a network namespace of the test's own (root). The engine is driven by
// the test (pdev->device->Poll), as DevicePoller would, before each pass of the poller.
#include "qp1/gsi.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "tests/unit/vdev/netdev/netns.h"

namespace vrdma::qp1 {
namespace {

using driver::wire::Gid;
using driver::wire::NetworkType;

Gid V4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return Gid{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d};
}
Gid Db8(uint8_t last) { return Gid{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last}; }

struct Received {
  vdev::Vdev* vdev = nullptr;
  uint32_t gid_index = 0;
  driver::RecvInfo tag;
  Gid sgid{};
  Gid dgid{};
  uint32_t src_qpn = 0;
  std::vector<uint8_t> mad;
};

class Recorder : public MadHandler {
 public:
  void OnMad(const InboundMad& m) override {
    got.push_back(Received{m.vdev, m.gid_index, m.tag, m.sgid, m.dgid, m.src_qpn,
                           std::vector<uint8_t>(m.mad.begin(), m.mad.end())});
    if (answer) answer(m);
  }
  std::vector<Received> got;
  std::function<void(const InboundMad&)> answer;  // called after recording
};

std::vector<uint8_t> Pattern(uint32_t seed) {
  std::vector<uint8_t> mad(kMadSize);
  for (uint32_t i = 0; i < kMadSize; ++i) mad[i] = static_cast<uint8_t>(seed * 31 + i * 7);
  return mad;
}

class Qp1Test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::PrivateNetns()) GTEST_SKIP() << "needs root for a network namespace";
    // vt1 gets an IPv6 address too, so RoCEv2 over IPv6 runs between the vdevs.
    static const bool v6 = std::system("ip addr add 2001:db8::8/64 dev vt1 nodad") == 0;
    ASSERT_TRUE(v6);
    registry_ = std::make_unique<vdev::Registry>();
    pdev_ = AddPdev();
    ASSERT_NE(pdev_, nullptr);
    auto a = registry_->AddVdev("qa", pdev_->name, "vt0");
    ASSERT_TRUE(a.ok()) << a.status();
    auto b = registry_->AddVdev("qb", pdev_->name, "vt1");
    ASSERT_TRUE(b.ok()) << b.status();
    a_ = *a;
    b_ = *b;
    poller_ = std::make_unique<Qp1Poller>(registry_.get(), &handler_);
    port_ = poller_->PortOf(pdev_);
    ASSERT_NE(port_, nullptr);
  }

  vdev::Pdev* AddPdev(const std::function<void(vdev::Pdev&)>& before = {}) {
    static int n = 0;
    auto pdev = vdev::Pdev::CreateEmbedded("qp1pdev" + std::to_string(n++));
    EXPECT_TRUE(pdev.ok()) << pdev.status();
    if (!pdev.ok()) return nullptr;
    vdev::Pdev* raw = pdev->get();
    if (before) before(*raw);
    EXPECT_TRUE(registry_->AddPdev(std::move(*pdev)).ok());
    return raw;
  }

  // The vdev's GID entry (0..15) holding `gid` with network type `type`.
  static uint32_t IndexOf(const vdev::Vdev& v, const Gid& gid, NetworkType type) {
    for (uint32_t i = 0; i < v.gids.size(); ++i) {
      if (v.gids[i].valid && v.gids[i].gid == gid && v.gids[i].type == type) return i;
    }
    ADD_FAILURE() << v.name << " has no such GID";
    return 0;
  }

  MadDestination To(const vdev::Vdev& from, const Gid& from_gid, const vdev::Vdev& to,
                    const Gid& to_gid, NetworkType type) {
    MadDestination d;
    d.gid_index = IndexOf(from, from_gid, type);
    d.dgid = to_gid;
    d.dmac = to.mac;
    return d;
  }

  // One pass of the daemon's loop: the engine (DevicePoller), then QP1's poller.
  int Pass() {
    now_ += 1000;
    for (auto& p : registry_->pdevs()) p->device->Poll(now_);
    return poller_->Poll(now_);
  }
  bool RunUntil(const std::function<bool()>& done, int passes = 2000) {
    for (int i = 0; i < passes && !done(); ++i) Pass();
    return done();
  }
  // Passes until the engine is idle and QP1's CQ is empty.
  void Settle() {
    for (int i = 0; i < 100; ++i) {
      if (Pass() == 0 && !pdev_->device->HasPendingWork() && !poller_->HasPendingWork()) return;
    }
  }

  std::unique_ptr<vdev::Registry> registry_;
  vdev::Pdev* pdev_ = nullptr;
  vdev::Vdev* a_ = nullptr;
  vdev::Vdev* b_ = nullptr;
  Recorder handler_;
  std::unique_ptr<Qp1Poller> poller_;
  GsiPort* port_ = nullptr;
  uint64_t now_ = 0;
};

TEST_F(Qp1Test, QpOneIsUpWithTheGsiQkey) {
  const driver::QueuePair* qp = pdev_->device->FindQp(1);
  ASSERT_NE(qp, nullptr);
  EXPECT_EQ(qp->type, driver::kQpTypeGsi);
  EXPECT_EQ(qp->state, IBV_QPS_RTS);
  EXPECT_EQ(qp->qkey, driver::kGsiQkey);
  EXPECT_EQ(qp->pkey, 0xffff);
  EXPECT_EQ(pdev_->device->RecvQueueRoom(1), 0u) << "every receive buffer posted";
  EXPECT_FALSE(poller_->HasPendingWork());
}

// A MAD from one vdev to the other arrives as the addressee's, over each RoCE version,
// with the sender's GID, the addressee's own GID index and exactly the bytes sent.
TEST_F(Qp1Test, MadsReachTheAddressedVdevOverEachRoceVersion) {
  struct Case {
    vdev::Vdev* from;
    Gid from_gid;
    vdev::Vdev* to;
    Gid to_gid;
    NetworkType type;
  };
  const Case cases[] = {
      {a_, V4(10, 9, 8, 7), b_, V4(10, 9, 8, 8), NetworkType::kRoceV2Ipv4},
      {b_, V4(10, 9, 8, 8), a_, V4(10, 9, 8, 7), NetworkType::kRoceV1},
      {a_, Db8(7), b_, Db8(8), NetworkType::kRoceV2Ipv6},
      {b_, Db8(8), a_, Db8(7), NetworkType::kRoceV1},
  };
  for (size_t c = 0; c < std::size(cases); ++c) {
    const Case& k = cases[c];
    SCOPED_TRACE(::testing::Message() << "case " << c << ": " << k.from->name << " -> "
                                      << k.to->name << " type " << static_cast<int>(k.type));
    std::vector<uint8_t> mad = Pattern(static_cast<uint32_t>(c));
    MadDestination dest = To(*k.from, k.from_gid, *k.to, k.to_gid, k.type);
    ASSERT_TRUE(poller_->Send(*k.from, dest, mad).ok());
    ASSERT_TRUE(RunUntil([&] { return handler_.got.size() == c + 1; }));
    const Received& r = handler_.got.back();
    EXPECT_EQ(r.vdev, k.to);
    EXPECT_EQ(r.gid_index, IndexOf(*k.to, k.to_gid, k.type));
    EXPECT_TRUE(r.tag.valid);
    EXPECT_EQ(r.tag.gid_index, k.to->gid_base + r.gid_index);
    EXPECT_EQ(r.tag.network_type, k.type);
    EXPECT_EQ(r.tag.smac, k.from->mac);
    EXPECT_FALSE(r.tag.has_vlan);
    EXPECT_EQ(r.sgid, k.from_gid);
    EXPECT_EQ(r.dgid, k.to_gid);
    EXPECT_EQ(r.src_qpn, 1u);
    EXPECT_EQ(r.mad, mad) << "the 256 bytes sent, no more, no less";
  }
  Settle();
  const GsiCounters& c = port_->counters();
  EXPECT_EQ(c.rx_mads, std::size(cases));
  EXPECT_EQ(c.tx_mads, std::size(cases));
  EXPECT_EQ(c.rx_no_vdev + c.rx_bad_length + c.rx_errors + c.tx_errors + c.tx_no_buffer, 0u);
}

// What a MAD comes with is enough to answer it, from the handler, over the same GID
// entry and RoCE version: the answer reaches the sender's vdev.
TEST_F(Qp1Test, TheHandlerAnswersFromWhereTheMadArrived) {
  std::vector<absl::Status> sent;
  handler_.answer = [&](const InboundMad& m) {
    if (m.vdev != b_) return;
    MadDestination back;
    back.gid_index = m.gid_index;
    back.dgid = m.sgid;
    back.dmac = m.tag.smac;
    back.remote_qpn = m.src_qpn;
    std::vector<uint8_t> reply(m.mad.begin(), m.mad.end());
    reply[0] ^= 0xff;
    sent.push_back(poller_->Send(*m.vdev, back, reply));
  };
  std::vector<uint8_t> mad = Pattern(7);
  ASSERT_TRUE(poller_->Send(*a_, To(*a_, Db8(7), *b_, Db8(8), NetworkType::kRoceV2Ipv6), mad).ok());
  ASSERT_TRUE(RunUntil([&] { return handler_.got.size() == 2; }));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_TRUE(sent[0].ok()) << sent[0];
  const Received& r = handler_.got[1];
  EXPECT_EQ(r.vdev, a_);
  EXPECT_EQ(r.gid_index, IndexOf(*a_, Db8(7), NetworkType::kRoceV2Ipv6));
  EXPECT_EQ(r.sgid, Db8(8));
  EXPECT_EQ(r.tag.network_type, NetworkType::kRoceV2Ipv6);
  mad[0] ^= 0xff;
  EXPECT_EQ(r.mad, mad);
}

// A GID entry of the pdev that no vdev owns (a block no vdev holds, or an entry of a
// vdev's block beyond its GIDs): counted, never handed over.
TEST_F(Qp1Test, MadToAGidNoVdevOwnsIsCountedAndDropped) {
  driver::GidEntry stray{
      true, V4(10, 9, 8, 99), NetworkType::kRoceV2Ipv4, {0x02, 0, 0, 0, 0, 0x99}, false, 0};
  const uint32_t unowned_block = 5 * vdev::kGidsPerVdev;
  ASSERT_TRUE(pdev_->device->SetGid(unowned_block, stray).ok());
  driver::GidEntry stray2 = stray;
  stray2.gid = V4(10, 9, 8, 98);
  ASSERT_LT(b_->gids.size(), vdev::kGidsPerVdev);
  ASSERT_TRUE(pdev_->device->SetGid(b_->gid_base + vdev::kGidsPerVdev - 1, stray2).ok());

  const uint32_t from = IndexOf(*a_, V4(10, 9, 8, 7), NetworkType::kRoceV2Ipv4);
  MadDestination d{from, stray.gid, stray.mac, 1};
  ASSERT_TRUE(poller_->Send(*a_, d, Pattern(1)).ok());
  MadDestination d2{from, stray2.gid, stray2.mac, 1};
  ASSERT_TRUE(poller_->Send(*a_, d2, Pattern(2)).ok());
  ASSERT_TRUE(RunUntil([&] { return port_->counters().rx_no_vdev == 2; }));
  EXPECT_TRUE(handler_.got.empty());
  EXPECT_EQ(port_->counters().rx_mads, 0u);

  // The buffers went back: B still hears its own.
  ASSERT_TRUE(poller_
                  ->Send(*a_,
                         To(*a_, V4(10, 9, 8, 7), *b_, V4(10, 9, 8, 8), NetworkType::kRoceV2Ipv4),
                         Pattern(3))
                  .ok());
  ASSERT_TRUE(RunUntil([&] { return handler_.got.size() == 1; }));
  EXPECT_EQ(handler_.got[0].vdev, b_);
  Settle();
  EXPECT_EQ(port_->counters().rx_no_vdev, 2u);
}

// More sends in one pass than there are send buffers: the rest are refused until the
// poller has read the completions of those in flight. A backlog makes the poller say it
// has pending work while it reads full budgets.
TEST_F(Qp1Test, SendsBeyondTheSendDepthWaitForCompletions) {
  MadDestination d = To(*a_, V4(10, 9, 8, 7), *b_, V4(10, 9, 8, 8), NetworkType::kRoceV2Ipv4);
  for (uint32_t i = 0; i < GsiPort::kSendDepth; ++i) {
    ASSERT_TRUE(poller_->Send(*a_, d, Pattern(i)).ok()) << i;
  }
  absl::Status full = poller_->Send(*a_, d, Pattern(999));
  EXPECT_TRUE(absl::IsResourceExhausted(full)) << full;
  EXPECT_EQ(port_->counters().tx_no_buffer, 1u);

  // The engine alone: every send completes and every MAD lands in QP1's CQ.
  for (int i = 0; i < 200; ++i) pdev_->device->Poll(now_ += 1000);
  EXPECT_TRUE(absl::IsResourceExhausted(poller_->Send(*a_, d, Pattern(999))))
      << "completions not read yet";

  // QP1's poller alone: a full budget per pass while the backlog lasts.
  int passes = 0;
  int read = 0;
  for (int n; (n = poller_->Poll(now_)) > 0; ++passes) {
    read += n;
    EXPECT_LE(n, Qp1Poller::kPortBudget);
    EXPECT_EQ(poller_->HasPendingWork(), n == Qp1Poller::kPortBudget);
  }
  EXPECT_FALSE(poller_->HasPendingWork());
  EXPECT_EQ(read, static_cast<int>(2 * GsiPort::kSendDepth)) << "a send and a receive each";
  EXPECT_EQ(passes, static_cast<int>(2 * GsiPort::kSendDepth) / Qp1Poller::kPortBudget);

  ASSERT_EQ(handler_.got.size(), GsiPort::kSendDepth);
  for (uint32_t i = 0; i < GsiPort::kSendDepth; ++i) {
    EXPECT_EQ(handler_.got[i].mad, Pattern(i)) << i;
    EXPECT_EQ(handler_.got[i].vdev, b_);
  }
  EXPECT_TRUE(poller_->Send(*a_, d, Pattern(1000)).ok());
  ASSERT_TRUE(RunUntil([&] { return handler_.got.size() == GsiPort::kSendDepth + 1; }));
  EXPECT_EQ(handler_.got.back().mad, Pattern(1000));
  Settle();
  EXPECT_EQ(port_->counters().tx_mads, GsiPort::kSendDepth + 1);
  EXPECT_EQ(port_->counters().tx_no_buffer, 2u);
  EXPECT_EQ(port_->counters().tx_errors, 0u);
}

TEST_F(Qp1Test, SendRefusesWhatItCannotSend) {
  MadDestination d = To(*a_, V4(10, 9, 8, 7), *b_, V4(10, 9, 8, 8), NetworkType::kRoceV2Ipv4);
  std::vector<uint8_t> short_mad(kMadSize - 1);
  EXPECT_TRUE(absl::IsInvalidArgument(poller_->Send(*a_, d, short_mad)));
  MadDestination bad = d;
  bad.gid_index = vdev::kGidsPerVdev - 1;  // no GID there
  EXPECT_TRUE(absl::IsInvalidArgument(poller_->Send(*a_, bad, Pattern(0))));
  EXPECT_EQ(port_->counters().tx_errors, 2u);
  Settle();
  EXPECT_TRUE(handler_.got.empty());
}

// Datagrams to QP1 with the GSI Q_Key that are not MAD-sized (from a UD QP of the test's
// own): counted, never handed over, and QP1 keeps going.
TEST_F(Qp1Test, DatagramsThatAreNotMadsAreCounted) {
  driver::RoceDevice& dev = *pdev_->device;
  uint32_t pd = *dev.AllocPd();
  uint32_t cq = *dev.CreateCq(16);
  std::vector<uint8_t> mem(8192, 0x5a);
  auto mr = dev.RegMr(pd, 0x10000, mem.data(), mem.size(), IBV_ACCESS_LOCAL_WRITE);
  ASSERT_TRUE(mr.ok()) << mr.status();
  driver::QpInitAttr init;
  init.type = IBV_QPT_UD;
  init.pd = pd;
  init.send_cq = init.recv_cq = cq;
  init.max_send_wr = init.max_recv_wr = 4;
  auto qpn = dev.CreateQp(init);
  ASSERT_TRUE(qpn.ok()) << qpn.status();
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_INIT;
  attr.port_num = 1;
  attr.qkey = driver::kGsiQkey;
  ASSERT_TRUE(
      dev.ModifyQp(*qpn, attr, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_QKEY).ok());
  attr.qp_state = IBV_QPS_RTR;
  ASSERT_TRUE(dev.ModifyQp(*qpn, attr, IBV_QP_STATE).ok());
  attr.qp_state = IBV_QPS_RTS;
  ASSERT_TRUE(dev.ModifyQp(*qpn, attr, IBV_QP_STATE | IBV_QP_SQ_PSN).ok());
  driver::AddressVector av;
  av.dgid = V4(10, 9, 8, 8);
  av.sgid_index =
      static_cast<uint8_t>(a_->gid_base + IndexOf(*a_, V4(10, 9, 8, 7), NetworkType::kRoceV2Ipv4));
  av.dmac = b_->mac;
  uint32_t ah = *dev.CreateAh(pd, av);
  for (uint32_t len : {100u, 1024u}) {
    driver::SendWr w;
    w.wr_id = len;
    w.opcode = IBV_WR_SEND;
    w.num_sge = 1;
    w.sg_list[0] = driver::Sge{0x10000, len, mr->lkey};
    w.ah = ah;
    w.remote_qpn = 1;
    w.remote_qkey = driver::kGsiQkey;
    ASSERT_TRUE(dev.PostSend(*qpn, w).ok());
  }
  ASSERT_TRUE(RunUntil([&] { return port_->counters().rx_bad_length == 2; }));
  EXPECT_TRUE(handler_.got.empty());
  EXPECT_EQ(dev.FindQp(1)->state, IBV_QPS_RTS);
  ASSERT_TRUE(poller_
                  ->Send(*a_,
                         To(*a_, V4(10, 9, 8, 7), *b_, V4(10, 9, 8, 8), NetworkType::kRoceV2Ipv4),
                         Pattern(4))
                  .ok());
  ASSERT_TRUE(RunUntil([&] { return handler_.got.size() == 1; }));
  EXPECT_EQ(handler_.got[0].mad, Pattern(4));
  ASSERT_TRUE(dev.DestroyQp(*qpn).ok());
}

// A send whose source GID entry vanished before the engine sent it fails and leaves the
// send queue in error (IBTA 10.3.1); QP1 is taken back to RTS and sends again.
TEST_F(Qp1Test, RecoversFromSendQueueError) {
  const uint32_t idx = IndexOf(*a_, V4(10, 9, 8, 7), NetworkType::kRoceV2Ipv4);
  MadDestination d = To(*a_, V4(10, 9, 8, 7), *b_, V4(10, 9, 8, 8), NetworkType::kRoceV2Ipv4);
  ASSERT_TRUE(poller_->Send(*a_, d, Pattern(1)).ok());
  driver::GidEntry saved = a_->gids[idx];
  ASSERT_TRUE(pdev_->device->SetGid(a_->gid_base + idx, driver::GidEntry{}).ok());
  pdev_->device->Poll(now_ += 1000);
  EXPECT_EQ(pdev_->device->FindQp(1)->state, IBV_QPS_SQE);
  poller_->Poll(now_);
  EXPECT_EQ(port_->counters().tx_errors, 1u);
  EXPECT_EQ(pdev_->device->FindQp(1)->state, IBV_QPS_RTS);
  ASSERT_TRUE(pdev_->device->SetGid(a_->gid_base + idx, saved).ok());
  ASSERT_TRUE(poller_->Send(*a_, d, Pattern(2)).ok());
  ASSERT_TRUE(RunUntil([&] { return handler_.got.size() == 1; }));
  EXPECT_EQ(handler_.got[0].mad, Pattern(2));
}

// QP1 in the Error state (all its WRs flushed) is reset, its receive buffers posted
// again, and its send buffers all free again.
TEST_F(Qp1Test, RecoversFromError) {
  MadDestination d = To(*a_, V4(10, 9, 8, 7), *b_, V4(10, 9, 8, 8), NetworkType::kRoceV2Ipv4);
  ASSERT_TRUE(poller_->Send(*a_, d, Pattern(1)).ok());
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_ERR;
  ASSERT_TRUE(pdev_->device->ModifyQp(1, attr, IBV_QP_STATE).ok());
  poller_->Poll(now_);
  EXPECT_EQ(pdev_->device->FindQp(1)->state, IBV_QPS_RTS);
  EXPECT_EQ(pdev_->device->RecvQueueRoom(1), 0u) << "every receive buffer posted again";
  EXPECT_EQ(port_->counters().tx_errors, 1u) << "the send in flight was flushed";
  EXPECT_EQ(port_->counters().rx_errors, 0u) << "flushed receives are no errors";
  for (uint32_t i = 0; i < GsiPort::kSendDepth; ++i) {
    ASSERT_TRUE(poller_->Send(*a_, d, Pattern(i)).ok()) << i;
  }
  ASSERT_TRUE(RunUntil([&] { return handler_.got.size() == GsiPort::kSendDepth; }));
  EXPECT_EQ(handler_.got.back().mad, Pattern(GsiPort::kSendDepth - 1));
}

// Pdevs that appear later get a port on the poller's next pass; a pdev where QP1 cannot
// be made (here: it has one already) is logged once and left alone.
TEST_F(Qp1Test, PollerFollowsThePdevs) {
  vdev::Pdev* taken = AddPdev([](vdev::Pdev& p) {
    driver::QpInitAttr init;
    init.type = driver::kQpTypeGsi;
    init.pd = *p.device->AllocPd();
    init.send_cq = init.recv_cq = *p.device->CreateCq(4);
    init.max_send_wr = init.max_recv_wr = 1;
    ASSERT_TRUE(p.device->CreateQp(init).ok());
  });
  ASSERT_NE(taken, nullptr);
  vdev::Pdev* later = AddPdev();
  ASSERT_NE(later, nullptr);
  EXPECT_EQ(poller_->PortOf(later), nullptr);
  ::testing::internal::CaptureStderr();
  poller_->Poll(now_);
  poller_->Poll(now_);
  std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(poller_->PortOf(later), nullptr);
  EXPECT_EQ(poller_->PortOf(later)->pdev(), later);
  EXPECT_EQ(poller_->PortOf(taken), nullptr);
  size_t first = log.find("event=qp1_unavailable");
  EXPECT_NE(first, std::string::npos) << log;
  EXPECT_EQ(log.find("event=qp1_unavailable", first + 1), std::string::npos) << "logged once";
  EXPECT_NE(log.find(taken->name), std::string::npos) << log;
  EXPECT_EQ(poller_->PortOf(pdev_), port_);
}

}  // namespace
}  // namespace vrdma::qp1
