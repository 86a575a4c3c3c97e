// The receive tag (RecvInfo): where a received packet arrived (the port GID entry it was
// addressed to, RoCEv1 / RoCEv2 IPv4 / IPv6, VLAN, source MAC) travels with it to the
// receive completion of UD, GSI QP1 and RC QPs, on the engine's CQ and through a
// CompletionSink. Every expected value is read back from the frames on the wire.
#include <pcap/pcap.h>

#include <string>
#include <vector>

#include "driver/wire/codec.h"
#include "tests/unit/driver/transport/engine_pair.h"

namespace vrdma::driver::testing {
namespace {

struct Frame {
  std::vector<uint8_t> bytes;
  wire::RocePacket pkt;  // parsed from `bytes`
};

// Every RoCE frame host A's port sent or received, parsed.
std::vector<Frame> ReadFrames(const std::string& path) {
  std::vector<Frame> out;
  char err[PCAP_ERRBUF_SIZE] = {};
  pcap_t* p = pcap_open_offline(path.c_str(), err);
  if (p == nullptr) {
    ADD_FAILURE() << err;
    return out;
  }
  pcap_pkthdr* hdr;
  const u_char* data;
  while (pcap_next_ex(p, &hdr, &data) == 1) out.push_back({{data, data + hdr->caplen}, {}});
  pcap_close(p);
  for (Frame& f : out) {
    EXPECT_EQ(wire::ParseFrame(f.bytes.data(), static_cast<uint32_t>(f.bytes.size()), &f.pkt),
              wire::DropReason::kNone);
  }
  return out;
}

// The frames of datagrams to `qpn` sent from `smac`, in the order they were sent.
std::vector<const Frame*> DatagramsTo(const std::vector<Frame>& frames, uint32_t qpn,
                                      const wire::MacAddr& smac) {
  std::vector<const Frame*> out;
  for (const Frame& f : frames) {
    if (f.pkt.bth.opcode == wire::op::kUdSendOnly && f.pkt.bth.dest_qp == qpn &&
        f.pkt.eth.src == smac) {
      out.push_back(&f);
    }
  }
  return out;
}

// The index of the GID table entry a frame is addressed to, in `table` (a copy of the
// receiver's table), as a RoCE device resolves it: destination GID and network type.
uint32_t EntryOf(const std::vector<GidEntry>& table, const wire::RocePacket& pkt) {
  for (uint32_t i = 0; i < table.size(); ++i) {
    if (table[i].valid && table[i].gid == pkt.net.dgid && table[i].type == pkt.net.type) return i;
  }
  ADD_FAILURE() << "frame to a GID the receiver does not have";
  return ~0u;
}

std::vector<GidEntry> GidTable(const Host& h) {
  std::vector<GidEntry> out;
  ibv_port_attr port;
  h.dev->QueryPort(&port);
  for (int i = 0; i < port.gid_tbl_len; ++i) {
    const GidEntry* g = h.dev->GetGid(static_cast<uint32_t>(i));
    out.push_back(g ? *g : GidEntry{});
  }
  return out;
}

// What the frame says about where it arrives at `receiver`.
void ExpectInfoOfFrame(const RecvInfo& info, const Frame& f,
                       const std::vector<GidEntry>& receiver) {
  EXPECT_TRUE(info.valid);
  EXPECT_EQ(info.gid_index, EntryOf(receiver, f.pkt));
  EXPECT_EQ(info.network_type, f.pkt.net.type);
  EXPECT_EQ(info.has_vlan, f.pkt.eth.has_vlan);
  EXPECT_EQ(info.vlan_id, f.pkt.eth.has_vlan ? (f.pkt.eth.vlan_tci & 0xfff) : 0);
  EXPECT_EQ(info.smac, f.pkt.eth.src);
}

// Towards B's entry `gid_index`, from A's entry of the same index (same network type
// and VLAN: the test pair's tables line up).
AddressVector AvToB(const EnginePair& pair, uint32_t gid_index) {
  const GidEntry* g = pair.b.dev->GetGid(gid_index);
  AddressVector av;
  av.dgid = g->gid;
  av.sgid_index = static_cast<uint8_t>(gid_index);
  av.dmac = g->mac;
  return av;
}

// Polls `cq` of `h` with the receive tags until `n` completions arrived.
bool WaitWithInfo(EnginePair& pair, Host& h, uint32_t cq, size_t n, std::vector<ibv_wc>* wcs,
                  std::vector<RecvInfo>* infos) {
  return pair.RunUntil([&] {
    ibv_wc wc[8];
    RecvInfo info[8];
    auto got = h.dev->PollCq(cq, wc, info, 8);
    EXPECT_TRUE(got.ok()) << got.status();
    for (int i = 0; got.ok() && i < *got; ++i) {
      wcs->push_back(wc[i]);
      infos->push_back(info[i]);
    }
    return wcs->size() >= n;
  });
}

// A's entries 0..3: RoCEv2/IPv4, RoCEv2/IPv6, RoCEv1, RoCEv2/IPv4 on VLAN 42; B's alike.
constexpr uint32_t kEntries[] = {0, 1, 2, 3};

std::string PcapPath(const char* name) {
  return ::testing::TempDir() + "vrdma_recv_info_" + name + ".pcap";
}

TEST(RecvInfoTest, UdReceiveReportsGidIndexNetworkTypeVlanAndSourceMac) {
  const std::string path = PcapPath("ud");
  uint32_t qb = 0;
  wire::MacAddr mac_a{};
  std::vector<GidEntry> table_b;
  std::vector<ibv_wc> rwc, swc;
  std::vector<RecvInfo> rinfo, sinfo;
  {
    EnginePair pair(1, 4 << 20, path.c_str());
    uint32_t qa, ah_ab, ah_ba;
    pair.CreateUd(QpOptions{.type = IBV_QPT_UD}, &qa, &qb, &ah_ab, &ah_ba);
    Host& a = pair.a;
    Host& b = pair.b;
    mac_a = a.dev->GetGid(0)->mac;
    table_b = GidTable(b);
    for (uint32_t g : kEntries) {
      ASSERT_TRUE(b.dev->PostRecv(qb, MakeRecv(g, b, g * 4096, 4096)).ok());
      SendWr w = MakeSend(g, IBV_WR_SEND, a, 0, 100);
      w.ah = *a.dev->CreateAh(a.pd, AvToB(pair, g));
      w.remote_qpn = qb;
      w.remote_qkey = 0x11111111;
      ASSERT_TRUE(a.dev->PostSend(qa, w).ok());
    }
    ASSERT_TRUE(WaitWithInfo(pair, b, b.rcq, std::size(kEntries), &rwc, &rinfo));
    ASSERT_TRUE(WaitWithInfo(pair, a, a.scq, std::size(kEntries), &swc, &sinfo));
  }
  std::vector<Frame> frames = ReadFrames(path);
  std::vector<const Frame*> sent = DatagramsTo(frames, qb, mac_a);
  ASSERT_EQ(sent.size(), std::size(kEntries));
  for (size_t i = 0; i < std::size(kEntries); ++i) {
    SCOPED_TRACE(::testing::Message() << "datagram to B's GID entry " << kEntries[i]);
    ASSERT_EQ(rwc[i].status, IBV_WC_SUCCESS);
    ASSERT_EQ(rwc[i].wr_id, kEntries[i]);
    // The frame went where the AH said (so the cases differ: every entry, every type).
    ASSERT_EQ(EntryOf(table_b, sent[i]->pkt), kEntries[i]);
    ExpectInfoOfFrame(rinfo[i], *sent[i], table_b);
    EXPECT_FALSE(sinfo[i].valid) << "a send completion arrived with no packet";
  }
  EXPECT_EQ(rinfo[0].network_type, wire::NetworkType::kRoceV2Ipv4);
  EXPECT_EQ(rinfo[1].network_type, wire::NetworkType::kRoceV2Ipv6);
  EXPECT_EQ(rinfo[2].network_type, wire::NetworkType::kRoceV1);
  EXPECT_TRUE(rinfo[3].has_vlan);
  EXPECT_FALSE(rinfo[0].has_vlan);
  // The SL of a UD receive is the frame's L3 type, as mlx5 reports it (A17.4.5.1): a UDP
  // header (bit 3) and IPv4 (2), IPv6 (1) or a GRH (0).
  EXPECT_EQ(rwc[0].sl, 0xa);
  EXPECT_EQ(rwc[1].sl, 0x9);
  EXPECT_EQ(rwc[2].sl, 0x0);
  EXPECT_EQ(rwc[3].sl, 0xa);
}

// Brings the device's GSI QP1 to RTS (IBTA 13.5.1: QPN 1, the well-known Q_Key).
void GsiToRts(Host& h) {
  QpInitAttr init;
  init.type = kQpTypeGsi;
  init.pd = h.pd;
  init.send_cq = h.scq;
  init.recv_cq = h.rcq;
  init.max_send_wr = 16;
  init.max_recv_wr = 16;
  ASSERT_TRUE(h.dev->CreateQp(init).ok());
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_INIT;
  attr.pkey_index = 0;
  attr.qkey = kGsiQkey;
  ASSERT_TRUE(h.dev->ModifyQp(1, attr, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_QKEY).ok());
  attr = {};
  attr.qp_state = IBV_QPS_RTR;
  ASSERT_TRUE(h.dev->ModifyQp(1, attr, IBV_QP_STATE).ok());
  attr.qp_state = IBV_QPS_RTS;
  attr.sq_psn = 1;
  ASSERT_TRUE(h.dev->ModifyQp(1, attr, IBV_QP_STATE | IBV_QP_SQ_PSN).ok());
}

TEST(RecvInfoTest, GsiQp1TellsWhichInterfaceEachMadWasFor) {
  // One QP1 serves every interface of the port: the tag says which GID entry (and so
  // which vdev), RoCE version and VLAN each MAD came in on, in any order.
  const std::string path = PcapPath("gsi");
  constexpr uint32_t kOrder[] = {3, 1, 0, 2, 3};
  wire::MacAddr mac_a{};
  std::vector<GidEntry> table_b;
  std::vector<ibv_wc> rwc;
  std::vector<RecvInfo> rinfo;
  {
    EnginePair pair(1, 4 << 20, path.c_str());
    Host& a = pair.a;
    Host& b = pair.b;
    GsiToRts(a);
    GsiToRts(b);
    ASSERT_FALSE(HasFatalFailure());
    mac_a = a.dev->GetGid(0)->mac;
    table_b = GidTable(b);
    for (uint64_t i = 0; i < std::size(kOrder); ++i) {
      ASSERT_TRUE(b.dev->PostRecv(1, MakeRecv(i, b, i * 4096, 4096)).ok());
      SendWr w = MakeSend(i, IBV_WR_SEND, a, 0, 256);  // a MAD is 256 bytes
      w.ah = *a.dev->CreateAh(a.pd, AvToB(pair, kOrder[i]));
      w.remote_qpn = 1;
      w.remote_qkey = kGsiQkey;
      ASSERT_TRUE(a.dev->PostSend(1, w).ok());
    }
    ASSERT_TRUE(WaitWithInfo(pair, b, b.rcq, std::size(kOrder), &rwc, &rinfo));
  }
  std::vector<Frame> frames = ReadFrames(path);
  std::vector<const Frame*> sent = DatagramsTo(frames, 1, mac_a);
  ASSERT_EQ(sent.size(), std::size(kOrder));
  for (size_t i = 0; i < std::size(kOrder); ++i) {
    SCOPED_TRACE(::testing::Message() << "MAD " << i << " to B's GID entry " << kOrder[i]);
    ASSERT_EQ(rwc[i].status, IBV_WC_SUCCESS);
    EXPECT_EQ(rwc[i].qp_num, 1u);
    EXPECT_EQ(rwc[i].src_qp, 1u);
    ASSERT_EQ(EntryOf(table_b, sent[i]->pkt), kOrder[i]);
    ExpectInfoOfFrame(rinfo[i], *sent[i], table_b);
  }
}

TEST(RecvInfoTest, RcReceiveCarriesTheTagOfItsLastPacket) {
  const std::string path = PcapPath("rc");
  uint32_t qb = 0;
  std::vector<GidEntry> table_b;
  std::vector<ibv_wc> rwc;
  std::vector<RecvInfo> rinfo;
  {
    EnginePair pair(1, 4 << 20, path.c_str());
    uint32_t qa;
    pair.Connect(QpOptions{.gid_index = 2}, &qa, &qb);  // RoCEv1
    Host& a = pair.a;
    Host& b = pair.b;
    table_b = GidTable(b);
    ASSERT_TRUE(b.dev->PostRecv(qb, MakeRecv(7, b, 0, 8192)).ok());
    ASSERT_TRUE(a.dev->PostSend(qa, MakeSend(7, IBV_WR_SEND, a, 0, 3000)).ok());
    ASSERT_TRUE(WaitWithInfo(pair, b, b.rcq, 1, &rwc, &rinfo));
  }
  std::vector<Frame> frames = ReadFrames(path);
  const Frame* last = nullptr;
  for (const Frame& f : frames) {
    if (f.pkt.bth.opcode == wire::op::kRcSendLast && f.pkt.bth.dest_qp == qb) last = &f;
  }
  ASSERT_NE(last, nullptr);
  ASSERT_EQ(rwc[0].status, IBV_WC_SUCCESS);
  ExpectInfoOfFrame(rinfo[0], *last, table_b);
  EXPECT_EQ(rinfo[0].network_type, wire::NetworkType::kRoceV1);
}

// A CompletionSink double that keeps what the engine hands it.
class RecordingSink : public CompletionSink {
 public:
  bool Deliver(uint64_t, const ibv_wc& wc, bool, const RecvInfo* info) override {
    wcs.push_back(wc);
    infos.push_back(info ? *info : RecvInfo{});
    had_info.push_back(info != nullptr);
    return true;
  }
  std::vector<ibv_wc> wcs;
  std::vector<RecvInfo> infos;
  std::vector<bool> had_info;
};

TEST(RecvInfoTest, SinkGetsTheTagOfReceivesAndNoneForSends) {
  const std::string path = PcapPath("sink");
  uint32_t qb = 0;
  wire::MacAddr mac_a{};
  std::vector<GidEntry> table_b;
  RecordingSink recv_sink, send_sink;
  {
    EnginePair pair(1, 4 << 20, path.c_str());
    uint32_t qa, ah_ab, ah_ba;
    pair.CreateUd(QpOptions{.type = IBV_QPT_UD, .gid_index = 1}, &qa, &qb, &ah_ab, &ah_ba);
    Host& a = pair.a;
    Host& b = pair.b;
    mac_a = a.dev->GetGid(0)->mac;
    table_b = GidTable(b);
    ASSERT_TRUE(b.dev->AttachCqSink(b.rcq, &recv_sink, 0).ok());
    ASSERT_TRUE(a.dev->AttachCqSink(a.scq, &send_sink, 0).ok());
    ASSERT_TRUE(b.dev->PostRecv(qb, MakeRecv(1, b, 0, 4096)).ok());
    SendWr w = MakeSend(1, IBV_WR_SEND, a, 0, 64);
    w.ah = ah_ab;
    w.remote_qpn = qb;
    w.remote_qkey = 0x11111111;
    ASSERT_TRUE(a.dev->PostSend(qa, w).ok());
    ASSERT_TRUE(pair.RunUntil([&] { return !recv_sink.wcs.empty() && !send_sink.wcs.empty(); }));
  }
  std::vector<Frame> frames = ReadFrames(path);
  std::vector<const Frame*> sent = DatagramsTo(frames, qb, mac_a);
  ASSERT_EQ(sent.size(), 1u);
  ASSERT_EQ(recv_sink.wcs.size(), 1u);
  EXPECT_EQ(recv_sink.wcs[0].status, IBV_WC_SUCCESS);
  ASSERT_TRUE(recv_sink.had_info[0]);
  ExpectInfoOfFrame(recv_sink.infos[0], *sent[0], table_b);
  EXPECT_EQ(recv_sink.infos[0].network_type, wire::NetworkType::kRoceV2Ipv6);
  ASSERT_EQ(send_sink.wcs.size(), 1u);
  EXPECT_FALSE(send_sink.had_info[0]) << "no packet made a send completion";
}

}  // namespace
}  // namespace vrdma::driver::testing
