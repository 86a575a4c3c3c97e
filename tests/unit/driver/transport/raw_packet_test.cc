// Raw packet QPs: whole Ethernet frames sent as built, steered to a raw QP by its flow
// rules (normal rules before the RoCE path, default rules after it), the source address
// checked, and no receive WQE meaning a dropped frame.
#include <arpa/inet.h>

#include <cstring>

#include "driver/transport/toeplitz.h"
#include "tests/unit/driver/transport/engine_pair.h"

namespace vrdma::driver::testing {
namespace {

const wire::MacAddr kMacA = {0x02, 0, 0, 0, 0, 1};  // EnginePair's host A
const wire::MacAddr kMacB = {0x02, 0, 0, 0, 0, 2};

// A raw packet QP of `h` (interface `mac`), in RTS.
uint32_t RawQp(Host& h, const wire::MacAddr& mac) {
  QpInitAttr init;
  init.type = IBV_QPT_RAW_PACKET;
  init.pd = h.pd;
  init.send_cq = h.scq;
  init.recv_cq = h.rcq;
  init.max_send_wr = 64;
  init.max_recv_wr = 64;
  init.max_inline_data = 64;
  init.mac = mac;
  init.max_frame = 1500 + 18;
  auto qpn = h.dev->CreateQp(init);
  EXPECT_TRUE(qpn.ok()) << qpn.status();
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_INIT;
  a.port_num = 1;
  EXPECT_TRUE(h.dev->ModifyQp(*qpn, a, IBV_QP_STATE | IBV_QP_PORT).ok());
  a.qp_state = IBV_QPS_RTR;
  EXPECT_TRUE(h.dev->ModifyQp(*qpn, a, IBV_QP_STATE).ok());
  a.qp_state = IBV_QPS_RTS;
  EXPECT_TRUE(h.dev->ModifyQp(*qpn, a, IBV_QP_STATE).ok());
  return *qpn;
}

// An Ethernet + IPv4 + UDP frame of `len` bytes at h.at(off), the payload a pattern.
void BuildUdpFrame(Host& h, uint64_t off, uint32_t len, const wire::MacAddr& dst,
                   const wire::MacAddr& src, uint16_t dport, uint32_t seed) {
  uint8_t* f = h.at(off);
  FillPattern(f, len, seed);
  std::memcpy(f, dst.data(), 6);
  std::memcpy(f + 6, src.data(), 6);
  f[12] = 0x08;
  f[13] = 0x00;
  uint8_t* ip = f + 14;
  std::memset(ip, 0, 20);
  ip[0] = 0x45;
  uint16_t tot = htons(static_cast<uint16_t>(len - 14));
  std::memcpy(ip + 2, &tot, 2);
  ip[8] = 64;
  ip[9] = 17;
  const uint8_t sip[4] = {10, 0, 0, 1}, dip[4] = {10, 0, 0, 2};
  std::memcpy(ip + 12, sip, 4);
  std::memcpy(ip + 16, dip, 4);
  uint8_t* udp = ip + 20;
  uint16_t sp = htons(5000), dp = htons(dport);
  std::memcpy(udp, &sp, 2);
  std::memcpy(udp + 2, &dp, 2);
}

FlowRule ToMacAndPort(const wire::MacAddr& mac, uint16_t dport) {
  FlowRule r;
  r.match.dst_mac = mac;
  r.match.dst_mac_mask = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  r.match.ip_version = 4;
  r.match.l4_proto = 17;
  r.match.dst_port = dport;
  r.match.dst_port_mask = 0xffff;
  return r;
}

TEST(RawPacketTest, FramesReachTheQpTheirRuleNames) {
  EnginePair pair;
  Host& a = pair.a;
  Host& b = pair.b;
  uint32_t qa = RawQp(a, kMacA);
  uint32_t qb = RawQp(b, kMacB);
  uint32_t qb2 = RawQp(b, kMacB);
  ASSERT_TRUE(b.dev->CreateFlow(qb, ToMacAndPort(kMacB, 4000)).ok());
  ASSERT_TRUE(b.dev->CreateFlow(qb2, ToMacAndPort(kMacB, 4001)).ok());
  for (uint32_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(b.dev->PostRecv(qb, MakeRecv(10 + i, b, (1 << 20) + i * 2048, 2048)).ok());
    ASSERT_TRUE(b.dev->PostRecv(qb2, MakeRecv(20 + i, b, (2 << 20) + i * 2048, 2048)).ok());
  }
  BuildUdpFrame(a, 0, 1000, kMacB, kMacA, 4000, 1);
  BuildUdpFrame(a, 4096, 600, kMacB, kMacA, 4001, 2);
  BuildUdpFrame(a, 8192, 300, kMacB, kMacA, 4999, 3);  // no rule: dropped
  ASSERT_TRUE(a.dev->PostSend(qa, MakeSend(1, IBV_WR_SEND, a, 0, 1000)).ok());
  ASSERT_TRUE(a.dev->PostSend(qa, MakeSend(2, IBV_WR_SEND, a, 4096, 600)).ok());
  ASSERT_TRUE(a.dev->PostSend(qa, MakeSend(3, IBV_WR_SEND, a, 8192, 300)).ok());
  std::vector<ibv_wc> swc, rwc;
  ASSERT_TRUE(pair.WaitCq(a, a.scq, 3, &swc));
  for (const ibv_wc& wc : swc) EXPECT_EQ(wc.status, IBV_WC_SUCCESS);
  ASSERT_TRUE(pair.WaitCq(b, b.rcq, 2, &rwc));
  pair.RunUntil([] { return false; }, 1'000'000);
  ibv_wc extra;
  EXPECT_EQ(*b.dev->PollCq(b.rcq, &extra, 1), 0) << "the frame no rule takes is dropped";
  ASSERT_EQ(rwc.size(), 2u);
  // Each frame whole, in the receive WQE of the QP its rule names.
  for (const ibv_wc& wc : rwc) {
    ASSERT_EQ(wc.status, IBV_WC_SUCCESS);
    if (wc.qp_num == qb) {
      EXPECT_EQ(wc.wr_id, 10u);
      EXPECT_EQ(wc.byte_len, 1000u);
      EXPECT_EQ(0, std::memcmp(b.at(1 << 20), a.at(0), 1000));
    } else {
      EXPECT_EQ(wc.qp_num, qb2);
      EXPECT_EQ(wc.wr_id, 20u);
      EXPECT_EQ(wc.byte_len, 600u);
      EXPECT_EQ(0, std::memcmp(b.at(2 << 20), a.at(4096), 600));
    }
  }
  EXPECT_EQ(b.dev->counters().raw_rx_frames, 2u);
}

TEST(RawPacketTest, SourceAddressIsTheInterfaces) {
  EnginePair pair;
  Host& a = pair.a;
  Host& b = pair.b;
  uint32_t qa = RawQp(a, kMacA);
  uint32_t qb = RawQp(b, kMacB);
  ASSERT_TRUE(b.dev->CreateFlow(qb, ToMacAndPort(kMacB, 4000)).ok());
  ASSERT_TRUE(b.dev->PostRecv(qb, MakeRecv(1, b, 1 << 20, 2048)).ok());
  const wire::MacAddr spoof = {0x02, 0, 0, 0, 0, 9};
  BuildUdpFrame(a, 0, 200, kMacB, spoof, 4000, 1);
  ASSERT_TRUE(a.dev->PostSend(qa, MakeSend(1, IBV_WR_SEND, a, 0, 200)).ok());
  std::vector<ibv_wc> swc;
  ASSERT_TRUE(pair.WaitCq(a, a.scq, 1, &swc));
  pair.RunUntil([] { return false; }, 1'000'000);
  EXPECT_EQ(a.dev->counters().raw_tx_spoofed, 1u);
  EXPECT_EQ(b.dev->counters().raw_rx_frames, 0u);
  // Too short to be a frame, or longer than the interface carries: a length error.
  swc.clear();
  ASSERT_TRUE(a.dev->PostSend(qa, MakeSend(2, IBV_WR_SEND, a, 0, 10)).ok());
  ASSERT_TRUE(pair.WaitCq(a, a.scq, 1, &swc));
  EXPECT_EQ(swc[0].status, IBV_WC_LOC_LEN_ERR);
}

TEST(RawPacketTest, NormalRulesComeBeforeRoceAndDefaultsAfter) {
  EnginePair pair;
  Host& a = pair.a;
  Host& b = pair.b;
  QpOptions opt;
  opt.type = IBV_QPT_UD;
  uint32_t ua, ub, ah_ab, ah_ba;
  pair.CreateUd(opt, &ua, &ub, &ah_ab, &ah_ba);
  uint32_t qa = RawQp(a, kMacA);
  uint32_t qb = RawQp(b, kMacB);
  FlowRule all;
  all.kind = FlowRule::Kind::kAllDefault;
  ASSERT_TRUE(b.dev->CreateFlow(qb, all).ok());
  for (uint32_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(b.dev->PostRecv(qb, MakeRecv(100 + i, b, (1 << 20) + i * 2048, 2048)).ok());
  }
  // RoCE traffic still reaches the UD QP: the default rule has only what RoCE left.
  ASSERT_TRUE(b.dev->PostRecv(ub, MakeRecv(1, b, 3 << 20, 4096)).ok());
  SendWr ud = MakeSend(1, IBV_WR_SEND, a, 0, 100);
  ud.ah = ah_ab;
  ud.remote_qpn = ub;
  ud.remote_qkey = 0x11111111;
  ASSERT_TRUE(a.dev->PostSend(ua, ud).ok());
  BuildUdpFrame(a, 4096, 128, kMacB, kMacA, 7, 5);
  ASSERT_TRUE(a.dev->PostSend(qa, MakeSend(2, IBV_WR_SEND, a, 4096, 128)).ok());
  std::vector<ibv_wc> rwc;
  ASSERT_TRUE(pair.WaitCq(b, b.rcq, 2, &rwc));
  bool ud_got = false, raw_got = false;
  for (const ibv_wc& wc : rwc) {
    ud_got |= wc.qp_num == ub && wc.status == IBV_WC_SUCCESS;
    raw_got |= wc.qp_num == qb && wc.byte_len == 128u;
  }
  EXPECT_TRUE(ud_got && raw_got);
  // A normal rule matching RoCEv2's UDP port takes the RoCE packets away, as a NIC's
  // steering table would.
  FlowRule roce = ToMacAndPort(kMacB, 4791);
  auto h = b.dev->CreateFlow(qb, roce);
  ASSERT_TRUE(h.ok());
  ASSERT_TRUE(b.dev->PostRecv(ub, MakeRecv(2, b, 3 << 20, 4096)).ok());
  ASSERT_TRUE(a.dev->PostSend(ua, ud).ok());
  rwc.clear();
  ASSERT_TRUE(pair.WaitCq(b, b.rcq, 1, &rwc));
  EXPECT_EQ(rwc[0].qp_num, qb);
  // Gone with its QP: the rule and the QP both.
  ASSERT_TRUE(b.dev->DestroyFlow(*h).ok());
  EXPECT_FALSE(b.dev->DestroyFlow(*h).ok());
  ASSERT_TRUE(b.dev->DestroyQp(qb).ok());
  rwc.clear();
  ASSERT_TRUE(a.dev->PostSend(ua, ud).ok());
  ASSERT_TRUE(pair.WaitCq(b, b.rcq, 1, &rwc));
  EXPECT_EQ(rwc[0].qp_num, ub);
}

TEST(RawPacketTest, ARuleForRoceTakesDatagramsBetweenVdevsOfOneEngineToo) {
  // Two vdevs of one engine: a UD datagram between them could go with no frame
  // (direct.cc), but a raw packet QP's rule for RoCEv2's port sees frames first, so the
  // frame is made and the rule takes it.
  EnginePair pair(/*seed=*/1, 4 << 20, nullptr, false, /*one_device=*/true);
  Host& a = pair.a;
  Host& b = pair.b;
  QpOptions opt;
  opt.type = IBV_QPT_UD;
  uint32_t ua, ub, ah_ab, ah_ba;
  pair.CreateUd(opt, &ua, &ub, &ah_ab, &ah_ba);
  const wire::MacAddr mac_b = b.dev->GetGid(b.gid_base)->mac;
  uint32_t qb = RawQp(b, mac_b);
  ASSERT_TRUE(b.dev->PostRecv(qb, MakeRecv(10, b, 1 << 20, 2048)).ok());
  for (uint64_t id : {1, 2}) {
    ASSERT_TRUE(b.dev->PostRecv(ub, MakeRecv(id, b, (3 << 20) + id * 4096, 4096)).ok());
  }
  SendWr ud = MakeDatagram(1, a, 0, 100, ah_ab, ub);
  // Without a rule the datagram goes direct; with one it is a frame the rule takes.
  ASSERT_TRUE(a.dev->PostSend(ua, ud).ok());
  std::vector<ibv_wc> rwc;
  ASSERT_TRUE(pair.WaitCq(b, b.rcq, 1, &rwc));
  EXPECT_EQ(rwc[0].qp_num, ub);
  EXPECT_EQ(a.dev->counters().direct_wqes, 1u);
  ASSERT_TRUE(b.dev->CreateFlow(qb, ToMacAndPort(mac_b, 4791)).ok());
  ud.wr_id = 2;
  ASSERT_TRUE(a.dev->PostSend(ua, ud).ok());
  ASSERT_TRUE(pair.WaitCq(b, b.rcq, 2, &rwc));
  EXPECT_EQ(rwc[1].qp_num, qb);
  EXPECT_EQ(rwc[1].wr_id, 10u);
  EXPECT_EQ(a.dev->counters().direct_wqes, 1u);
}

TEST(RawPacketTest, RulesSteerToRawQpsOnlyAndWithoutWqeTheFrameIsDropped) {
  EnginePair pair;
  Host& a = pair.a;
  Host& b = pair.b;
  QpOptions opt;
  opt.type = IBV_QPT_UD;
  uint32_t ua, ub, ah_ab, ah_ba;
  pair.CreateUd(opt, &ua, &ub, &ah_ab, &ah_ba);
  EXPECT_FALSE(b.dev->CreateFlow(ub, ToMacAndPort(kMacB, 1)).ok());
  uint32_t qa = RawQp(a, kMacA);
  uint32_t qb = RawQp(b, kMacB);
  ASSERT_TRUE(b.dev->CreateFlow(qb, ToMacAndPort(kMacB, 4000)).ok());
  BuildUdpFrame(a, 0, 200, kMacB, kMacA, 4000, 1);
  ASSERT_TRUE(a.dev->PostSend(qa, MakeSend(1, IBV_WR_SEND, a, 0, 200)).ok());
  pair.RunUntil([&] { return b.dev->counters().raw_rx_no_recv_wqe == 1; }, 10'000'000);
  EXPECT_EQ(b.dev->counters().raw_rx_no_recv_wqe, 1u);
  // Other opcodes than SEND are refused at the post.
  EXPECT_FALSE(a.dev->PostSend(qa, MakeSend(2, IBV_WR_RDMA_WRITE, a, 0, 200)).ok());
}

// Microsoft's RSS verification suite: its key, and the IPv4 examples' hashes.
TEST(RssTest, ToeplitzMatchesTheSpecificationsVectors) {
  const uint8_t key[40] = {0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67,
                           0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb,
                           0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
                           0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};
  // 66.9.149.187:2794 -> 161.142.100.80:1766
  const uint8_t in[12] = {66, 9, 149, 187, 161, 142, 100, 80, 0x0a, 0xea, 0x06, 0xe6};
  EXPECT_EQ(Toeplitz(key, 40, in, 8), 0x323e8fc2u);
  EXPECT_EQ(Toeplitz(key, 40, in, 12), 0x51ccc178u);
  // 199.92.111.2:14230 -> 65.69.140.83:4739
  const uint8_t in2[12] = {199, 92, 111, 2, 65, 69, 140, 83, 0x37, 0x96, 0x12, 0x83};
  EXPECT_EQ(Toeplitz(key, 40, in2, 8), 0xd718262au);
  EXPECT_EQ(Toeplitz(key, 40, in2, 12), 0xc626b0eau);
}

TEST(RssTest, FramesSpreadOverTheTablesWorkQueuesByHash) {
  EnginePair pair;
  Host& a = pair.a;
  Host& b = pair.b;
  uint32_t qa = RawQp(a, kMacA);
  // Four work queues, each with its own CQ; one stays in RESET at first.
  std::vector<uint32_t> wqs, cqs;
  for (int i = 0; i < 4; ++i) {
    cqs.push_back(*b.dev->CreateCq(64));
    auto wq = b.dev->CreateWq(b.pd, cqs.back(), 64, 1);
    ASSERT_TRUE(wq.ok()) << wq.status();
    wqs.push_back(*wq);
    for (int j = 0; j < 16; ++j) {
      ASSERT_TRUE(
          b.dev->PostSrqRecv(*wq, MakeRecv(i * 100 + j, b, (1 << 20) + (i * 16 + j) * 2048, 2048))
              .ok());
    }
  }
  EXPECT_FALSE(b.dev->CreateRssTable({wqs[0], wqs[1], wqs[2]}).ok()) << "2^n queues";
  auto table = b.dev->CreateRssTable(wqs);
  ASSERT_TRUE(table.ok());
  QpInitAttr init;
  init.type = IBV_QPT_RAW_PACKET;
  init.pd = b.pd;
  init.mac = kMacB;
  init.max_frame = 1518;
  init.rss_table = *table;
  init.rss_fields = IBV_RX_HASH_SRC_IPV4 | IBV_RX_HASH_DST_IPV4;
  init.rss_key_len = 40;
  for (int i = 0; i < 40; ++i) init.rss_key[i] = static_cast<uint8_t>(i * 37 + 11);
  auto rss = b.dev->CreateQp(init);
  ASSERT_TRUE(rss.ok()) << rss.status();
  ibv_qp_attr m{};
  m.qp_state = IBV_QPS_INIT;
  m.port_num = 1;
  ASSERT_TRUE(b.dev->ModifyQp(*rss, m, IBV_QP_STATE | IBV_QP_PORT).ok());
  m.qp_state = IBV_QPS_RTR;
  ASSERT_TRUE(b.dev->ModifyQp(*rss, m, IBV_QP_STATE).ok());
  FlowRule rule;
  rule.match.dst_mac = kMacB;
  rule.match.dst_mac_mask = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  ASSERT_TRUE(b.dev->CreateFlow(*rss, rule).ok());
  for (uint32_t w : wqs) ASSERT_TRUE(b.dev->SetWqReady(w, true).ok());
  EXPECT_FALSE(b.dev->DestroyRssTable(*table).ok()) << "in use by the QP";
  EXPECT_FALSE(b.dev->DestroySrq(wqs[0]).ok()) << "in the table";
  // 32 frames from 32 source addresses: each lands whole in the queue its hash picks.
  for (uint32_t i = 0; i < 32; ++i) {
    BuildUdpFrame(a, i * 2048, 100 + i, kMacB, kMacA, 4000, i);
    a.at(i * 2048)[14 + 12] = static_cast<uint8_t>(i);  // source address 10.0.0.1 -> i.0.0.1
    ASSERT_TRUE(a.dev->PostSend(qa, MakeSend(i, IBV_WR_SEND, a, i * 2048, 100 + i)).ok());
  }
  std::vector<ibv_wc> swc;
  ASSERT_TRUE(pair.WaitCq(a, a.scq, 32, &swc));
  size_t got = 0, used = 0;
  for (size_t q = 0; q < 4; ++q) {
    std::vector<ibv_wc> wcs;
    pair.RunUntil([] { return false; }, 1'000'000);
    ibv_wc wc[32];
    int n = *b.dev->PollCq(cqs[q], wc, 32);
    used += n > 0;
    for (int k = 0; k < n; ++k) {
      ASSERT_EQ(wc[k].status, IBV_WC_SUCCESS);
      EXPECT_EQ(wc[k].qp_num, wqs[q]);
      uint32_t len = wc[k].byte_len;
      uint32_t i = len - 100;  // which frame, by its length
      uint8_t input[8];
      std::memcpy(input, a.at(i * 2048) + 14 + 12, 8);
      EXPECT_EQ(Toeplitz(init.rss_key.data(), 40, input, 8) & 3, q) << "frame " << i;
      uint64_t slot = (1 << 20) + (q * 16 + (wc[k].wr_id - q * 100)) * 2048;
      EXPECT_EQ(0, std::memcmp(b.at(slot), a.at(i * 2048), len));
    }
    got += static_cast<size_t>(n);
  }
  EXPECT_EQ(got, 32u);
  EXPECT_GT(used, 1u) << "32 sources spread over more than one queue";
}

}  // namespace
}  // namespace vrdma::driver::testing
