// driver/'s faces: code outside driver/ names only driver/device.h and driver/ports.h.
// This test includes nothing else from driver/ and brings up what vrdmad does: a
// device on its internal switch, two interfaces in its GID table, and the shared QP1,
// which tells the interfaces' MADs apart by their receive tags.
#include <string>
#include <vector>

#include "driver/device.h"
#include "driver/ports.h"
#include "gtest/gtest.h"

namespace vrdma::driver {
namespace {

rte_mempool* FacePool() {
  static rte_mempool* pool = [] {
    auto p = CreatePacketPool("face_pool", 1023);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *p : nullptr;
  }();
  return pool;
}

TEST(FaceTest, Qp1OnTheInternalSwitchTellsTwoInterfacesApart) {
  ASSERT_NE(FacePool(), nullptr);
  LoopbackPort wire_port;
  PcapWriter pcap;
  const std::string path = ::testing::TempDir() + "vrdma_face.pcap";
  ASSERT_TRUE(pcap.Open(path).ok());
  PcapPort port(&wire_port, &pcap);
  RoceDeviceConfig cfg;
  cfg.pool = FacePool();
  cfg.port = &port;
  cfg.icrc_offload = true;          // the internal switch: frames never leave the device
  cfg.limits.gid_table_len = 1024;  // as a pdev's (vdev/pdev.cc)
  RoceDevice dev(cfg);

  // Interface 0: RoCEv2/IPv4 10.0.0.1, untagged, GID entry 0. Interface 1: RoCEv1
  // link-local on VLAN 7, GID entry 300: a pdev's table holds every vdev's block, so an
  // address vector's GID index must reach past 255 (the 17th vdev's entries start at 256).
  wire::Gid v4{};
  v4[10] = v4[11] = 0xff;
  v4[12] = 10;
  v4[15] = 1;
  wire::Gid v1{};
  v1[0] = 0xfe;
  v1[1] = 0x80;
  v1[15] = 2;
  const GidEntry ifaces[2] = {
      {true, v4, wire::NetworkType::kRoceV2Ipv4, {2, 0, 0, 0, 0, 1}, false, 0},
      {true, v1, wire::NetworkType::kRoceV1, {2, 0, 0, 0, 0, 2}, true, 7},
  };
  const uint32_t gid_index[2] = {0, 300};
  for (uint32_t i = 0; i < 2; ++i) ASSERT_TRUE(dev.SetGid(gid_index[i], ifaces[i]).ok());

  uint32_t pd = *dev.AllocPd();
  uint32_t cq = *dev.CreateCq(64);
  std::vector<uint8_t> mem(1 << 16);
  MrKeys mr = *dev.RegMr(pd, 0x10000, mem.data(), mem.size(), IBV_ACCESS_LOCAL_WRITE);
  QpInitAttr init;
  init.type = kQpTypeGsi;
  init.pd = pd;
  init.send_cq = init.recv_cq = cq;
  init.max_send_wr = init.max_recv_wr = 8;
  ASSERT_TRUE(dev.CreateQp(init).ok());
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_INIT;
  attr.qkey = kGsiQkey;
  ASSERT_TRUE(dev.ModifyQp(1, attr, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_QKEY).ok());
  attr.qp_state = IBV_QPS_RTR;
  ASSERT_TRUE(dev.ModifyQp(1, attr, IBV_QP_STATE).ok());
  attr.qp_state = IBV_QPS_RTS;
  ASSERT_TRUE(dev.ModifyQp(1, attr, IBV_QP_STATE | IBV_QP_SQ_PSN).ok());

  // One MAD to each interface, from that interface (QP1 to QP1 through the switch).
  for (uint32_t i = 0; i < 2; ++i) {
    RecvWr r;
    r.wr_id = 100 + i;
    r.num_sge = 1;
    r.sg_list[0] = Sge{0x10000 + i * 1024, 1024, mr.lkey};
    ASSERT_TRUE(dev.PostRecv(1, r).ok());
  }
  for (uint32_t i = 0; i < 2; ++i) {
    AddressVector av;
    av.dgid = ifaces[i].gid;
    av.sgid_index = static_cast<uint16_t>(gid_index[i]);
    av.dmac = ifaces[i].mac;
    SendWr w;
    w.wr_id = i;
    w.opcode = IBV_WR_SEND;
    w.send_flags = IBV_SEND_SIGNALED;
    w.num_sge = 1;
    w.sg_list[0] = Sge{0x10000 + 4096, 256, mr.lkey};
    w.ah = *dev.CreateAh(pd, av);
    w.remote_qpn = 1;
    w.remote_qkey = kGsiQkey;
    ASSERT_TRUE(dev.PostSend(1, w).ok());
  }
  std::vector<ibv_wc> recvs;
  std::vector<RecvInfo> tags;
  for (uint64_t now = 0; now < 1'000'000 && recvs.size() < 2; now += 1000) {
    dev.Poll(now);
    ibv_wc wc[4];
    RecvInfo info[4];
    int n = *dev.PollCq(cq, wc, info, 4);
    for (int i = 0; i < n; ++i) {
      if (wc[i].opcode != IBV_WC_RECV) {
        EXPECT_FALSE(info[i].valid) << "send completion";
        continue;
      }
      recvs.push_back(wc[i]);
      tags.push_back(info[i]);
    }
  }
  ASSERT_EQ(recvs.size(), 2u);
  for (uint32_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(::testing::Message() << "MAD for interface " << i);
    EXPECT_EQ(recvs[i].status, IBV_WC_SUCCESS);
    EXPECT_EQ(recvs[i].wr_id, 100u + i);
    EXPECT_EQ(recvs[i].byte_len, wire::kGrhLen + 256);
    EXPECT_TRUE(tags[i].valid);
    EXPECT_EQ(tags[i].gid_index, gid_index[i]);
    EXPECT_EQ(tags[i].network_type, ifaces[i].type);
    EXPECT_EQ(tags[i].has_vlan, ifaces[i].has_vlan);
    EXPECT_EQ(tags[i].vlan_id, ifaces[i].vlan_id);
    EXPECT_EQ(tags[i].smac, ifaces[i].mac) << "sent from that interface";
  }
  EXPECT_EQ(dev.counters().rx_not_for_us, 0u);
  EXPECT_TRUE(pcap.Close().ok());
}

}  // namespace
}  // namespace vrdma::driver
