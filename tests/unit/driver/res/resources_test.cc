// Resource tables and their limits, memory-region bounds, CQ arming and resize, SRQ
// limits: through the RoceDevice verbs and on the small pieces directly.
#include <cstring>

#include "driver/port/packet_pool.h"
#include "driver/res/completion_queue.h"
#include "driver/res/memory_region.h"
#include "driver/res/object_table.h"
#include "driver/transport/device.h"
#include "gtest/gtest.h"

namespace vrdma::driver {
namespace {

TEST(ObjectTableTest, AllocateFreeReuseWithNewGeneration) {
  ObjectTable<int> t(2, 10);
  uint32_t h1, h2, h3;
  ASSERT_NE(t.Allocate(&h1), nullptr);
  ASSERT_NE(t.Allocate(&h2), nullptr);
  EXPECT_EQ(t.Allocate(&h3), nullptr) << "table of 2 is full";
  EXPECT_GE(h1, 10u);
  uint8_t gen = t.Generation(h1);
  t.Free(h1);
  EXPECT_EQ(t.Get(h1), nullptr);
  ASSERT_NE(t.Allocate(&h3), nullptr);
  EXPECT_EQ(h3, h1);
  EXPECT_NE(t.Generation(h3), gen) << "a reused slot gets a new key byte";
  EXPECT_EQ(t.Get(9), nullptr);
  EXPECT_EQ(t.Get(12), nullptr);
  EXPECT_EQ(t.in_use(), 2u);
}

TEST(MemoryRegionTest, TranslateChecksBoundsWithoutOverflow) {
  uint8_t buf[100];
  MemoryRegion mr;
  mr.iova = 1000;
  mr.length = 100;
  mr.host = buf;
  EXPECT_EQ(TranslateMr(mr, 1000, 100), buf);
  EXPECT_EQ(TranslateMr(mr, 1099, 1), buf + 99);
  EXPECT_EQ(TranslateMr(mr, 1100, 0), buf + 100);
  EXPECT_EQ(TranslateMr(mr, 1099, 2), nullptr);
  EXPECT_EQ(TranslateMr(mr, 999, 1), nullptr);
  EXPECT_EQ(TranslateMr(mr, 1001, UINT64_MAX), nullptr);
  EXPECT_EQ(TranslateMr(mr, UINT64_MAX, 2), nullptr);
}

TEST(CompletionQueueTest, ArmingFiresOncePerArm) {
  CompletionQueue cq;
  cq.Init(4);
  ibv_wc wc{};
  cq.Push(wc, false);
  EXPECT_FALSE(cq.TakeEvent()) << "not armed";
  cq.Arm(/*solicited_only=*/true);
  cq.Push(wc, false);
  EXPECT_FALSE(cq.TakeEvent()) << "unsolicited success does not satisfy solicited arming";
  cq.Push(wc, true);
  EXPECT_TRUE(cq.TakeEvent());
  EXPECT_FALSE(cq.TakeEvent());
  EXPECT_TRUE(cq.Push(wc, false));
  EXPECT_FALSE(cq.overrun());
  EXPECT_FALSE(cq.Push(wc, false)) << "depth 4 is full";
  EXPECT_TRUE(cq.overrun());
}

TEST(CompletionQueueTest, ResizeKeepsCompletions) {
  CompletionQueue cq;
  cq.Init(4);
  for (int i = 0; i < 3; ++i) {
    ibv_wc wc{};
    wc.wr_id = i;
    cq.Push(wc, false);
  }
  EXPECT_FALSE(cq.Resize(2));
  EXPECT_TRUE(cq.Resize(100));
  ibv_wc out[8];
  ASSERT_EQ(cq.Poll(out, 8), 3);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(out[i].wr_id, static_cast<uint64_t>(i));
}

TEST(CompletionQueueTest, ACqWithASinkKeepsNoRingOfItsOwn) {
  // A client's CQ is its ring in shared memory (the sink), charged to its vdev: the
  // engine keeps no second ring of the CQ's depth beside it, uncharged (issue 16, goal 7).
  struct Sink : CompletionSink {
    bool Deliver(uint64_t, const ibv_wc&, bool, const RecvInfo*) override { return true; }
  } sink;
  CompletionQueue cq;
  cq.Init(65536);
  EXPECT_GE(cq.ring_bytes(), 65536u * sizeof(ibv_wc));
  cq.SetSink(&sink, 0);
  EXPECT_LT(cq.ring_bytes(), 1024u);
  EXPECT_EQ(cq.depth(), 65536u) << "its depth is still the one asked for";
  EXPECT_TRUE(cq.Resize(1 << 20));
  EXPECT_EQ(cq.depth(), 1u << 20);
  EXPECT_LT(cq.ring_bytes(), 1024u) << "a resize makes none either";
  // Without the sink, the first completion makes the ring, as deep as the CQ.
  cq.SetSink(nullptr, 0);
  ibv_wc wc{};
  for (int i = 0; i < 3; ++i) {
    wc.wr_id = i;
    ASSERT_TRUE(cq.Push(wc, false));
  }
  EXPECT_GE(cq.ring_bytes(), (1u << 20) * sizeof(ibv_wc));
  ibv_wc out[4];
  ASSERT_EQ(cq.Poll(out, 4), 3);
  EXPECT_EQ(out[2].wr_id, 2u);
  EXPECT_FALSE(cq.overrun());
}

TEST(CompletionQueueTest, KeepsWhereEachPacketArrivedBesideItsCompletion) {
  CompletionQueue cq;
  cq.Init(2);
  RecvInfo v1{.valid = true,
              .gid_index = 5,
              .network_type = wire::NetworkType::kRoceV1,
              .has_vlan = true,
              .vlan_id = 42,
              .smac = {2, 0, 0, 0, 0, 9}};
  ibv_wc wc{};
  wc.wr_id = 1;
  ASSERT_TRUE(cq.Push(wc, false, &v1));
  wc.wr_id = 2;
  ASSERT_TRUE(cq.Push(wc, false));  // a send: no packet
  ibv_wc out[4];
  RecvInfo info[4];
  ASSERT_EQ(cq.Poll(out, info, 1), 1);
  EXPECT_EQ(out[0].wr_id, 1u);
  EXPECT_EQ(info[0], v1);
  // The slot that held v1 is reused by a completion without a packet: none reported.
  wc.wr_id = 3;
  ASSERT_TRUE(cq.Push(wc, false));
  wc.wr_id = 4;
  RecvInfo v2 = v1;
  v2.gid_index = 6;
  v2.network_type = wire::NetworkType::kRoceV2Ipv6;
  ASSERT_TRUE(cq.Resize(4));
  ASSERT_TRUE(cq.Push(wc, false, &v2));
  ASSERT_EQ(cq.Poll(out, info, 4), 3);
  EXPECT_EQ(out[0].wr_id, 2u);
  EXPECT_FALSE(info[0].valid);
  EXPECT_EQ(out[1].wr_id, 3u);
  EXPECT_FALSE(info[1].valid);
  EXPECT_EQ(out[2].wr_id, 4u);
  EXPECT_EQ(info[2], v2);
}

class DeviceResourcesTest : public ::testing::Test {
 protected:
  DeviceResourcesTest() {
    RoceDeviceConfig cfg;
    cfg.limits.max_pd = 2;
    cfg.limits.max_mr = 3;
    cfg.limits.max_cq = 2;
    cfg.limits.max_qp = 2;
    cfg.limits.max_srq = 1;
    cfg.limits.max_ah = 1;
    cfg.pool = Pool();
    dev_ = std::make_unique<RoceDevice>(cfg);
    GidEntry g;
    g.valid = true;
    EXPECT_TRUE(dev_->SetGid(0, g).ok());
  }
  static rte_mempool* Pool() {
    static rte_mempool* p = *CreatePacketPool("res_test_pool", 1023);
    return p;
  }
  std::unique_ptr<RoceDevice> dev_;
  uint8_t mem_[4096];
};

TEST_F(DeviceResourcesTest, QueryDeviceReportsTheLimitsTablesAreSizedBy) {
  ibv_device_attr attr;
  dev_->QueryDevice(&attr);
  EXPECT_EQ(attr.max_pd, 2);
  EXPECT_EQ(attr.max_mr, 3);
  EXPECT_EQ(attr.max_cq, 2);
  EXPECT_EQ(attr.max_qp, 2);
  EXPECT_EQ(attr.max_srq, 1);
  EXPECT_EQ(attr.max_ah, 1);
  EXPECT_EQ(attr.max_sge, static_cast<int>(kMaxSgePerWqe));
  EXPECT_EQ(attr.atomic_cap, IBV_ATOMIC_HCA);
  EXPECT_EQ(attr.phys_port_cnt, 1);
  // An OUI no vendor was assigned (locally administered bit set), never 0.
  EXPECT_EQ(attr.vendor_id, 0x767264u);
  EXPECT_NE(attr.vendor_id & 0x020000u, 0u);
  EXPECT_EQ(attr.vendor_part_id, 1u);
  ibv_port_attr port;
  dev_->QueryPort(&port);
  EXPECT_EQ(port.state, IBV_PORT_ACTIVE);
  EXPECT_EQ(port.link_layer, IBV_LINK_LAYER_ETHERNET);
  EXPECT_EQ(port.gid_tbl_len, 16);
}

TEST_F(DeviceResourcesTest, CreationStopsAtTheLimits) {
  uint32_t pd = *dev_->AllocPd();
  ASSERT_TRUE(dev_->AllocPd().ok());
  EXPECT_EQ(dev_->AllocPd().status().code(), absl::StatusCode::kResourceExhausted);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(dev_->RegMr(pd, 0, mem_, sizeof(mem_), 0).ok());
  EXPECT_EQ(dev_->RegMr(pd, 0, mem_, sizeof(mem_), 0).status().code(),
            absl::StatusCode::kResourceExhausted);
  uint32_t cq = *dev_->CreateCq(16);
  ASSERT_TRUE(dev_->CreateCq(16).ok());
  EXPECT_FALSE(dev_->CreateCq(16).ok());
  QpInitAttr init;
  init.pd = pd;
  init.send_cq = init.recv_cq = cq;
  init.max_send_wr = init.max_recv_wr = 4;
  ASSERT_TRUE(dev_->CreateQp(init).ok());
  ASSERT_TRUE(dev_->CreateQp(init).ok());
  EXPECT_EQ(dev_->CreateQp(init).status().code(), absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(dev_->CreateSrq(pd, 8, 1, 0).ok());
  EXPECT_FALSE(dev_->CreateSrq(pd, 8, 1, 0).ok());
  ASSERT_TRUE(dev_->CreateAh(pd, AddressVector{}).ok());
  EXPECT_FALSE(dev_->CreateAh(pd, AddressVector{}).ok());
}

TEST_F(DeviceResourcesTest, BadArgumentsAreRejected) {
  uint32_t pd = *dev_->AllocPd();
  EXPECT_FALSE(dev_->RegMr(pd + 7, 0, mem_, 16, 0).ok()) << "unknown PD";
  EXPECT_FALSE(dev_->RegMr(pd, 0, mem_, 16, IBV_ACCESS_REMOTE_WRITE).ok())
      << "remote write without local write";
  EXPECT_FALSE(dev_->RegMr(pd, UINT64_MAX - 4, mem_, 16, 0).ok()) << "range wraps";
  EXPECT_FALSE(dev_->CreateCq(0).ok());
  EXPECT_FALSE(dev_->CreateCq(1 << 30).ok());
  uint32_t cq = *dev_->CreateCq(4);
  QpInitAttr init;
  init.pd = pd;
  init.send_cq = cq;
  init.recv_cq = cq + 5;
  EXPECT_FALSE(dev_->CreateQp(init).ok()) << "unknown CQ";
  init.recv_cq = cq;
  init.max_send_sge = kMaxSgePerWqe + 1;
  EXPECT_FALSE(dev_->CreateQp(init).ok()) << "beyond max_sge";
  init.max_send_sge = 1;
  init.type = IBV_QPT_RAW_PACKET;
  EXPECT_FALSE(dev_->CreateQp(init).ok());
  AddressVector av;
  av.sgid_index = 9;
  EXPECT_FALSE(dev_->CreateAh(pd, av).ok()) << "no GID at index 9";
}

TEST_F(DeviceResourcesTest, BusyObjectsCannotBeDestroyed) {
  uint32_t pd = *dev_->AllocPd();
  uint32_t cq = *dev_->CreateCq(4);
  MrKeys mr = *dev_->RegMr(pd, 0x1000, mem_, sizeof(mem_), IBV_ACCESS_LOCAL_WRITE);
  QpInitAttr init;
  init.pd = pd;
  init.send_cq = init.recv_cq = cq;
  uint32_t qp = *dev_->CreateQp(init);
  EXPECT_EQ(dev_->DeallocPd(pd).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(dev_->DestroyCq(cq).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(dev_->DestroyQp(qp).ok());
  ASSERT_TRUE(dev_->DestroyCq(cq).ok());
  ASSERT_TRUE(dev_->DeregMr(mr.lkey).ok());
  EXPECT_FALSE(dev_->DeregMr(mr.lkey).ok()) << "already deregistered";
  EXPECT_EQ(dev_->FindMr(mr.lkey), nullptr);
  ASSERT_TRUE(dev_->DeallocPd(pd).ok());
}

TEST_F(DeviceResourcesTest, StaleKeyOfAReusedSlotIsRefused) {
  uint32_t pd = *dev_->AllocPd();
  MrKeys first = *dev_->RegMr(pd, 0, mem_, 16, 0);
  ASSERT_TRUE(dev_->DeregMr(first.lkey).ok());
  MrKeys second = *dev_->RegMr(pd, 0, mem_, 16, 0);
  EXPECT_EQ(KeyIndex(first.lkey), KeyIndex(second.lkey));
  EXPECT_NE(first.lkey, second.lkey);
  EXPECT_EQ(dev_->FindMr(first.lkey), nullptr);
  EXPECT_NE(dev_->FindMr(second.lkey), nullptr);
}

TEST_F(DeviceResourcesTest, InvalidModifyChangesNothing) {
  uint32_t pd = *dev_->AllocPd();
  uint32_t cq = *dev_->CreateCq(4);
  QpInitAttr init;
  init.pd = pd;
  init.send_cq = init.recv_cq = cq;
  uint32_t qp = *dev_->CreateQp(init);
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_RTS;  // RESET -> RTS does not exist
  a.qp_access_flags = IBV_ACCESS_REMOTE_WRITE;
  a.timeout = 9;
  EXPECT_FALSE(dev_->ModifyQp(qp, a, IBV_QP_STATE | IBV_QP_ACCESS_FLAGS | IBV_QP_TIMEOUT).ok());
  a.qp_state = IBV_QPS_INIT;
  a.port_num = 2;  // no such port: the whole modify fails
  EXPECT_FALSE(
      dev_->ModifyQp(qp, a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS)
          .ok());
  ibv_qp_attr q;
  ASSERT_TRUE(dev_->QueryQp(qp, &q, nullptr).ok());
  EXPECT_EQ(q.qp_state, IBV_QPS_RESET);
  EXPECT_EQ(q.qp_access_flags, 0);
  EXPECT_NE(q.timeout, 9);
  a.port_num = 1;
  ASSERT_TRUE(
      dev_->ModifyQp(qp, a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS)
          .ok());
  ASSERT_TRUE(dev_->QueryQp(qp, &q, nullptr).ok());
  EXPECT_EQ(q.qp_state, IBV_QPS_INIT);
  EXPECT_EQ(q.qp_access_flags, IBV_ACCESS_REMOTE_WRITE);
}

TEST_F(DeviceResourcesTest, GsiQpIsQpnOneAndUnique) {
  uint32_t pd = *dev_->AllocPd();
  uint32_t cq = *dev_->CreateCq(4);
  QpInitAttr init;
  init.type = kQpTypeGsi;
  init.pd = pd;
  init.send_cq = init.recv_cq = cq;
  auto gsi = dev_->CreateQp(init);
  ASSERT_TRUE(gsi.ok());
  ASSERT_NE(dev_->FindQp(1), nullptr);
  EXPECT_EQ(dev_->FindQp(1)->qkey, kGsiQkey);
  EXPECT_EQ(dev_->CreateQp(init).status().code(), absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(dev_->DestroyQp(1).ok());
  EXPECT_EQ(dev_->FindQp(1), nullptr);
}

}  // namespace
}  // namespace vrdma::driver
