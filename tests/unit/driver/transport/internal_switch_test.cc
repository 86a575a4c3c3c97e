// One physical device whose port is its internal switch: QPs on it (in issue 3, of
// different virtual devices, each with its own GIDs) talk through the full protocol with
// no wire, with the ICRC computed and checked or offloaded to the trusted switch. Direct
// execution (direct_test.cc) is off here: every operation goes by frames.
#include <cstring>

#include "driver/port/loopback_port.h"
#include "tests/unit/driver/transport/engine_pair.h"

namespace vrdma::driver::testing {
namespace {

class InternalSwitchTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    RoceDeviceConfig cfg;
    cfg.pool = SharedPool();
    cfg.port = &port_;
    cfg.icrc_offload = GetParam();
    cfg.direct = false;
    dev_ = std::make_unique<RoceDevice>(cfg);
    for (uint8_t i = 0; i < 2; ++i) {
      wire::Gid gid{};
      gid[10] = gid[11] = 0xff;
      gid[12] = 10;
      gid[15] = static_cast<uint8_t>(i + 1);
      ASSERT_TRUE(dev_->SetGid(i, GidEntry{true,
                                           gid,
                                           wire::NetworkType::kRoceV2Ipv4,
                                           {2, 0, 0, 0, 0, static_cast<uint8_t>(i + 1)},
                                           false,
                                           0})
                      .ok());
    }
    pd_ = *dev_->AllocPd();
    cq_ = *dev_->CreateCq(1024);
    mem_.assign(1 << 20, 0);
    mr_ = *dev_->RegMr(pd_, 0x10000, mem_.data(), mem_.size(),
                       IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ |
                           IBV_ACCESS_REMOTE_ATOMIC);
    for (int i = 0; i < 2; ++i) {
      QpInitAttr init;
      init.pd = pd_;
      init.send_cq = init.recv_cq = cq_;
      init.max_send_wr = init.max_recv_wr = 64;
      qp_[i] = *dev_->CreateQp(init);
    }
    for (int i = 0; i < 2; ++i) {
      ibv_qp_attr a{};
      a.qp_state = IBV_QPS_INIT;
      a.port_num = 1;
      a.qp_access_flags =
          IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;
      ASSERT_TRUE(
          dev_->ModifyQp(qp_[i], a,
                         IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS)
              .ok());
      AddressVector av;
      av.sgid_index = static_cast<uint8_t>(i);
      av.dgid = dev_->GetGid(1 - i)->gid;
      av.dmac = dev_->GetGid(1 - i)->mac;
      a = {};
      a.qp_state = IBV_QPS_RTR;
      a.path_mtu = IBV_MTU_1024;
      a.dest_qp_num = qp_[1 - i];
      a.max_dest_rd_atomic = 4;
      a.min_rnr_timer = 1;
      ASSERT_TRUE(dev_->ModifyQp(qp_[i], a,
                                 IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
                                     IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC |
                                     IBV_QP_MIN_RNR_TIMER,
                                 &av)
                      .ok());
    }
    for (int i = 0; i < 2; ++i) {
      ibv_qp_attr a{};
      a.qp_state = IBV_QPS_RTS;
      a.timeout = 10;
      a.retry_cnt = 3;
      a.rnr_retry = 3;
      a.max_rd_atomic = 4;
      ASSERT_TRUE(dev_->ModifyQp(qp_[i], a,
                                 IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
                                     IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC)
                      .ok());
    }
  }

  std::vector<ibv_wc> Wait(size_t n) {
    std::vector<ibv_wc> out;
    for (uint64_t t = 0; out.size() < n && t < 100'000'000; t += 1000) {
      dev_->Poll(t);
      ibv_wc wc[16];
      int got = *dev_->PollCq(cq_, wc, 16);
      out.insert(out.end(), wc, wc + got);
    }
    return out;
  }

  SendWr Wr(uint64_t id, ibv_wr_opcode op, uint64_t local, uint32_t len, uint64_t remote) {
    SendWr w;
    w.wr_id = id;
    w.opcode = op;
    w.send_flags = IBV_SEND_SIGNALED;
    w.num_sge = 1;
    w.sg_list[0] = Sge{0x10000 + local, len, mr_.lkey};
    w.remote_addr = 0x10000 + remote;
    w.rkey = mr_.rkey;
    return w;
  }

  // SEND, WRITE, READ and FETCH_AND_ADD between the two QPs, data checked.
  void ExchangeEveryOperation() {
    FillPattern(mem_.data(), 200000, 1);
    RecvWr r;
    r.wr_id = 100;
    r.num_sge = 1;
    r.sg_list[0] = Sge{0x10000 + 300000, 100000, mr_.lkey};
    ASSERT_TRUE(dev_->PostRecv(qp_[1], r).ok());
    ASSERT_TRUE(dev_->PostSend(qp_[0], Wr(1, IBV_WR_SEND, 0, 70000, 0)).ok());
    ASSERT_TRUE(dev_->PostSend(qp_[0], Wr(2, IBV_WR_RDMA_WRITE, 0, 90000, 500000)).ok());
    ASSERT_TRUE(dev_->PostSend(qp_[1], Wr(3, IBV_WR_RDMA_READ, 700000, 80000, 100000)).ok());
    SendWr fa = Wr(4, IBV_WR_ATOMIC_FETCH_AND_ADD, 900000, 8, 950000);
    fa.compare_add = 3;
    ASSERT_TRUE(dev_->PostSend(qp_[0], fa).ok());
    std::vector<ibv_wc> wc = Wait(5);
    ASSERT_EQ(wc.size(), 5u);
    for (const ibv_wc& c : wc) EXPECT_EQ(c.status, IBV_WC_SUCCESS) << c.wr_id;
    EXPECT_EQ(0, std::memcmp(mem_.data(), mem_.data() + 300000, 70000));
    EXPECT_EQ(0, std::memcmp(mem_.data(), mem_.data() + 500000, 90000));
    EXPECT_EQ(0, std::memcmp(mem_.data() + 100000, mem_.data() + 700000, 80000));
    uint64_t v;
    std::memcpy(&v, mem_.data() + 950000, 8);
    EXPECT_EQ(v, 3u);
    EXPECT_EQ(port_.dropped(), 0u);
    EXPECT_GT(dev_->counters().rx_packets, 200u);
  }

  LoopbackPort port_;
  std::unique_ptr<RoceDevice> dev_;
  uint32_t pd_ = 0, cq_ = 0, qp_[2] = {};
  std::vector<uint8_t> mem_;
  MrKeys mr_{};
};

TEST_P(InternalSwitchTest, QpsOfOneDeviceExchangeEveryOperation) {
  ExchangeEveryOperation();
  // Without a share for its pages, an MR's payloads are copied into the frames.
  EXPECT_EQ(dev_->counters().tx_zero_copy, 0u);
  EXPECT_EQ(dev_->counters().rx_in_place, 0u);
}

TEST_P(InternalSwitchTest, PayloadsMoveOnceFromMrToMr) {
  // With its pages shared for transmit, a frame's payload stays in the sender's MR and
  // the receiving QP copies it from there (one copy, not two); each frame's reference
  // on the pages is given back once it has been received.
  MrShare share;
  ASSERT_TRUE(dev_->SetMrTxShare(mr_.lkey, &share.info).ok());
  ExchangeEveryOperation();
  const DeviceCounters& c = dev_->counters();
  // 70000 B SEND, 90000 B WRITE and 80000 B of READ responses at MTU 1024: every
  // payload of at least 512 B (zero_copy_min) leaves from the MR.
  EXPECT_GE(c.tx_zero_copy, 68u + 88u + 78u);
  EXPECT_EQ(c.rx_in_place, c.tx_zero_copy);
  EXPECT_EQ(share.refs(), 1);
}

TEST(InternalSwitchIcrcTest, OffloadedFramesCarryNoIcrcAndAreNotChecked) {
  // With offload the engine leaves the ICRC field 0 and does not check it; without, a
  // frame with a wrong ICRC is dropped and counted.
  wire::RocePacket h;
  h.bth.opcode = wire::op::kRcSendOnly;
  uint8_t buf[256];
  ASSERT_NE(wire::EncodeHeaders(&h, 16, buf, sizeof(buf)), 0u);
  std::memset(buf + h.frame_len - 4 - 16, 0x5a, 16);
  wire::SealFrame(buf, h, /*with_icrc=*/false);
  uint32_t icrc;
  std::memcpy(&icrc, buf + h.frame_len - 4, 4);
  EXPECT_EQ(icrc, 0u);
  wire::RocePacket parsed;
  EXPECT_EQ(wire::ParseFrame(buf, h.frame_len, &parsed, {.verify_icrc = false}),
            wire::DropReason::kNone);
  EXPECT_EQ(wire::ParseFrame(buf, h.frame_len, &parsed, {.verify_icrc = true}),
            wire::DropReason::kBadIcrc);
}

INSTANTIATE_TEST_SUITE_P(IcrcOffload, InternalSwitchTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Offloaded" : "Computed"; });

}  // namespace
}  // namespace vrdma::driver::testing
