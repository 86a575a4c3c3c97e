// Protocol behaviours beyond single operations: duplicate atomics are not executed twice,
// max_rd_atomic limits outstanding READs, SRQ limit and SQ-drained events, and what the
// engine puts on the wire as Wireshark reads it.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "gmock/gmock.h"
#include "tests/unit/driver/transport/engine_pair.h"

namespace vrdma::driver::testing {
namespace {

TEST(ProtocolTest, DuplicatedAtomicsExecuteOnce) {
  EnginePair pair;
  uint32_t qa, qb;
  pair.Connect(QpOptions{}, &qa, &qb);
  // Every frame in both directions arrives twice.
  FaultConfig dup;
  dup.duplicate = 1.0;
  pair.link().SetFaults(TestLink::kAtoB, dup);
  pair.link().SetFaults(TestLink::kBtoA, dup);
  std::memset(pair.b.at(0), 0, 8);
  for (int i = 0; i < 50; ++i) {
    SendWr w = MakeSend(i, IBV_WR_ATOMIC_FETCH_AND_ADD, pair.a, 8 * i, 8);
    w.remote_addr = pair.b.va(0);
    w.rkey = pair.b.mr.rkey;
    w.compare_add = 1;
    ASSERT_TRUE(pair.a.dev->PostSend(qa, w).ok());
  }
  std::vector<ibv_wc> wc;
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 50, &wc));
  uint64_t v;
  std::memcpy(&v, pair.b.at(0), 8);
  EXPECT_EQ(v, 50u);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(wc[i].status, IBV_WC_SUCCESS);
    std::memcpy(&v, pair.a.at(8 * i), 8);
    EXPECT_EQ(v, static_cast<uint64_t>(i)) << "fetch-add " << i << " returned a wrong original";
  }
  EXPECT_GT(pair.b.dev->counters().rx_duplicate, 0u);
}

TEST(ProtocolTest, MaxRdAtomicBoundsOutstandingReads) {
  EnginePair pair;
  QpOptions opt;
  opt.rd_atomic = 1;
  uint32_t qa, qb;
  pair.Connect(opt, &qa, &qb);
  FillPattern(pair.b.at(0), 64 * 1024, 3);
  for (int i = 0; i < 16; ++i) {
    SendWr w = MakeSend(i, IBV_WR_RDMA_READ, pair.a, 100000 + 4096 * i, 4096);
    w.remote_addr = pair.b.va(4096 * i);
    w.rkey = pair.b.mr.rkey;
    ASSERT_TRUE(pair.a.dev->PostSend(qa, w).ok());
  }
  // One READ at a time: after the first engine pass only one request is out.
  pair.Step();
  EXPECT_EQ(pair.a.dev->FindQp(qa)->req.rd_atomic_outstanding, 1u);
  std::vector<ibv_wc> wc;
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 16, &wc));
  for (const ibv_wc& c : wc) EXPECT_EQ(c.status, IBV_WC_SUCCESS);
  EXPECT_EQ(0, std::memcmp(pair.a.at(100000), pair.b.at(0), 64 * 1024));
}

// ibv_query_device(3): max_qp_init_rd_atom bounds max_rd_atomic (the initiator's
// depth, rdma_rxe's 128), max_qp_rd_atom bounds max_dest_rd_atomic (responder
// resources, 16). perftest gives max_rd_atomic the peer's max_qp_rd_atom: against rxe,
// 128.
TEST(ProtocolTest, InitiatorDepthIsRxesResponderResourcesSixteen) {
  EnginePair pair;
  ibv_device_attr attr{};
  pair.a.dev->QueryDevice(&attr);
  EXPECT_EQ(attr.max_qp_init_rd_atom, 128);
  EXPECT_EQ(attr.max_qp_rd_atom, 16);
  uint32_t qa, qb;
  QpOptions bad;
  bad.rd_atomic = 17;  // responder resources above the limit
  absl::Status st = pair.TryConnect(bad, &qa, &qb);
  EXPECT_TRUE(absl::IsInvalidArgument(st)) << st;
  EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr("max_dest_rd_atomic"));
  bad.rd_atomic = 16;
  bad.init_rd_atomic = 129;
  st = pair.TryConnect(bad, &qa, &qb);
  EXPECT_TRUE(absl::IsInvalidArgument(st)) << st;
  EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr("max_rd_atomic"));

  QpOptions opt;
  opt.init_rd_atomic = 128;
  pair.Connect(opt, &qa, &qb);
  FillPattern(pair.b.at(0), 64 * 1024, 5);
  for (int i = 0; i < 64; ++i) {
    SendWr w = MakeSend(i, i % 2 ? IBV_WR_RDMA_READ : IBV_WR_ATOMIC_FETCH_AND_ADD, pair.a,
                        100000 + 1024 * i, i % 2 ? 1024 : 8);
    w.remote_addr = pair.b.va(1024 * i);
    w.rkey = pair.b.mr.rkey;
    w.compare_add = 1;
    ASSERT_TRUE(pair.a.dev->PostSend(qa, w).ok());
  }
  std::vector<ibv_wc> wc;
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 64, &wc));
  for (const ibv_wc& c : wc) EXPECT_EQ(c.status, IBV_WC_SUCCESS);
}

// A requester that re-asks for a READ from a lost response goes back N: it re-sends that
// READ from the missing PSN and every request after it. The responder's queued responses
// from that PSN on are then superseded and not sent (the duplicate request restarts the
// stream, IBTA 9.7.5.1.4 / o9-26, as rdma_rxe does): under loss the responder sends little
// more than the lost responses, the responses already on the wire, and the replay.
TEST(ProtocolTest, ReReadSupersedesQueuedResponses) {
  EnginePair pair(/*seed=*/7, 8 << 20);
  QpOptions opt;
  opt.timeout = 12;  // 16 ms: recovery by the requester's gap detection, not timeouts
  uint32_t qa, qb;
  pair.Connect(opt, &qa, &qb);
  FaultConfig lossy;
  lossy.drop = 0.05;
  lossy.delay_ns = 20'000;
  pair.link().SetFaults(TestLink::kBtoA, lossy);
  constexpr uint32_t kLen = 64 * 1024, kReads = 64;
  FillPattern(pair.b.at(0), kLen * 16, 11);
  for (uint32_t i = 0; i < kReads; ++i) {
    SendWr w = MakeSend(i, IBV_WR_RDMA_READ, pair.a, (4 << 20) + kLen * (i % 16), kLen);
    w.remote_addr = pair.b.va(kLen * (i % 16));
    w.rkey = pair.b.mr.rkey;
    ASSERT_TRUE(pair.a.dev->PostSend(qa, w).ok());
  }
  std::vector<ibv_wc> wc;
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, kReads, &wc, 20'000'000'000));
  for (const ibv_wc& c : wc) EXPECT_EQ(c.status, IBV_WC_SUCCESS);
  EXPECT_EQ(0, std::memcmp(pair.a.at(4 << 20), pair.b.at(0), kLen * 16));
  // Every re-request answers a lost response, and no response arrives twice: the
  // responder answered each request once, the requester asked once per loss.
  const LinkCounters& link = pair.link().counters(TestLink::kBtoA);
  const DeviceCounters& c = pair.a.dev->counters();
  std::printf(
      "READ responses needed %u, sent %llu, lost %llu; requester: re-requests %llu, "
      "duplicates %llu, out of sequence %llu, timeouts %llu\n",
      kReads * (kLen / 1024), static_cast<unsigned long long>(link.sent),
      static_cast<unsigned long long>(link.dropped), static_cast<unsigned long long>(c.retransmits),
      static_cast<unsigned long long>(c.rx_duplicate),
      static_cast<unsigned long long>(c.rx_out_of_sequence),
      static_cast<unsigned long long>(c.timeouts));
  EXPECT_GT(c.retransmits, 0u);
  EXPECT_LE(c.retransmits, link.dropped);
  EXPECT_EQ(c.rx_duplicate, 0u);
}

// A port that takes only part of a burst (a NIC whose transmit ring is full): the rest
// waits, in order, for the next pass, and nothing is dropped or sent twice.
TEST(ProtocolTest, FramesAPortRefusesWaitInOrder) {
  EnginePair pair;
  uint32_t qa, qb;
  pair.Connect(QpOptions{}, &qa, &qb);
  FaultConfig narrow;
  narrow.accept_per_burst = 5;
  pair.link().SetFaults(TestLink::kAtoB, narrow);
  pair.link().SetFaults(TestLink::kBtoA, narrow);
  constexpr uint32_t kLen = 1 << 20;
  FillPattern(pair.a.at(0), kLen, 4);
  FillPattern(pair.b.at(kLen), kLen, 5);
  SendWr write = MakeSend(1, IBV_WR_RDMA_WRITE, pair.a, 0, kLen);
  write.remote_addr = pair.b.va(0);
  write.rkey = pair.b.mr.rkey;
  SendWr read = MakeSend(2, IBV_WR_RDMA_READ, pair.a, 2 * kLen, kLen);
  read.remote_addr = pair.b.va(kLen);
  read.rkey = pair.b.mr.rkey;
  ASSERT_TRUE(pair.a.dev->PostSend(qa, write).ok());
  ASSERT_TRUE(pair.a.dev->PostSend(qa, read).ok());
  std::vector<ibv_wc> wc;
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 2, &wc));
  for (const ibv_wc& c : wc) EXPECT_EQ(c.status, IBV_WC_SUCCESS);
  EXPECT_EQ(0, std::memcmp(pair.b.at(0), pair.a.at(0), kLen));
  EXPECT_EQ(0, std::memcmp(pair.a.at(2 * kLen), pair.b.at(kLen), kLen));
  for (Host* h : {&pair.a, &pair.b}) {
    EXPECT_GT(h->dev->counters().tx_port_busy, 0u);
    EXPECT_EQ(h->dev->counters().tx_dropped, 0u);
    EXPECT_EQ(h->dev->counters().retransmits, 0u);
  }
}

TEST(ProtocolTest, SrqLimitEventFiresOnceWhenArmed) {
  EnginePair pair;
  QpOptions opt;
  opt.srq = true;
  uint32_t qa, qb;
  pair.Connect(opt, &qa, &qb);
  uint32_t srq = pair.SrqOf(pair.b);
  for (int i = 0; i < 6; ++i)
    ASSERT_TRUE(pair.b.dev->PostSrqRecv(srq, MakeRecv(i, pair.b, 0, 64)).ok());
  ASSERT_TRUE(pair.b.dev->ModifySrq(srq, 0, 4, IBV_SRQ_LIMIT).ok());
  for (int i = 0; i < 4; ++i)
    ASSERT_TRUE(pair.a.dev->PostSend(qa, MakeSend(i, IBV_WR_SEND, pair.a, 0, 8)).ok());
  std::vector<ibv_wc> wc;
  ASSERT_TRUE(pair.WaitCq(pair.b, pair.b.rcq, 4, &wc));
  int events = 0;
  AsyncEvent ev;
  while (pair.b.dev->PollAsyncEvent(&ev)) {
    if (ev.type == IBV_EVENT_SRQ_LIMIT_REACHED) {
      EXPECT_EQ(ev.element, srq);
      ++events;
    }
  }
  EXPECT_EQ(events, 1) << "the limit disarms itself";
  EXPECT_EQ(*pair.b.dev->SrqLimit(srq), 0u);
}

TEST(ProtocolTest, SqdReportsDrainedAndResumes) {
  EnginePair pair;
  uint32_t qa, qb;
  pair.Connect(QpOptions{}, &qa, &qb);
  ASSERT_TRUE(pair.b.dev->PostRecv(qb, MakeRecv(1, pair.b, 0, 64)).ok());
  ASSERT_TRUE(pair.a.dev->PostSend(qa, MakeSend(1, IBV_WR_SEND, pair.a, 0, 8)).ok());
  pair.Step();  // WR 1 is on the wire: SQD lets it finish
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_SQD;
  ASSERT_TRUE(pair.a.dev->ModifyQp(qa, attr, IBV_QP_STATE).ok());
  ASSERT_TRUE(pair.a.dev->PostSend(qa, MakeSend(2, IBV_WR_SEND, pair.a, 0, 8)).ok());
  bool drained = false;
  ASSERT_TRUE(pair.RunUntil([&] {
    AsyncEvent ev;
    while (pair.a.dev->PollAsyncEvent(&ev)) drained |= ev.type == IBV_EVENT_SQ_DRAINED;
    return drained;
  }));
  std::vector<ibv_wc> wc;
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 1, &wc));
  EXPECT_EQ(wc[0].wr_id, 1u);
  pair.RunUntil([] { return false; }, 2'000'000);
  ibv_wc none;
  EXPECT_EQ(*pair.a.dev->PollCq(pair.a.scq, &none, 1), 0) << "SQD starts no new WQE";
  ASSERT_TRUE(pair.b.dev->PostRecv(qb, MakeRecv(2, pair.b, 0, 64)).ok());
  attr.qp_state = IBV_QPS_RTS;
  ASSERT_TRUE(pair.a.dev->ModifyQp(qa, attr, IBV_QP_STATE).ok());
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 2, &wc));
  EXPECT_EQ(wc[1].wr_id, 2u);
}

std::string Shell(const std::string& cmd) {
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  pclose(f);
  return out;
}

TEST(ProtocolTest, WiresharkReadsTheEnginesTraffic) {
  ASSERT_EQ(access("/usr/bin/tshark", X_OK), 0) << "tshark is missing: apt-get install tshark";
  std::string path = ::testing::TempDir() + "engine_traffic.pcap";
  {
    EnginePair pair(1, 4 << 20, path.c_str());
    for (uint32_t gid : {0u, 1u, 2u}) {  // RoCEv2/IPv4, RoCEv2/IPv6, RoCEv1
      QpOptions opt;
      opt.gid_index = gid;
      uint32_t qa, qb;
      pair.Connect(opt, &qa, &qb);
      ASSERT_TRUE(pair.b.dev->PostRecv(qb, MakeRecv(1, pair.b, 0, 5000)).ok());
      ASSERT_TRUE(
          pair.a.dev->PostSend(qa, MakeSend(1, IBV_WR_SEND_WITH_IMM, pair.a, 0, 3000)).ok());
      SendWr w = MakeSend(2, IBV_WR_RDMA_WRITE, pair.a, 0, 2500);
      w.remote_addr = pair.b.va(8192);
      w.rkey = pair.b.mr.rkey;
      ASSERT_TRUE(pair.a.dev->PostSend(qa, w).ok());
      w = MakeSend(3, IBV_WR_RDMA_READ, pair.a, 8192, 2500);
      w.remote_addr = pair.b.va(0);
      w.rkey = pair.b.mr.rkey;
      ASSERT_TRUE(pair.a.dev->PostSend(qa, w).ok());
      w = MakeSend(4, IBV_WR_ATOMIC_CMP_AND_SWP, pair.a, 16384, 8);
      w.remote_addr = pair.b.va(16384);
      w.rkey = pair.b.mr.rkey;
      ASSERT_TRUE(pair.a.dev->PostSend(qa, w).ok());
      std::vector<ibv_wc> wc;
      ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 4, &wc));
    }
  }
  std::string opcodes =
      Shell("tshark -r " + path + " -Y infiniband -T fields -e infiniband.bth.opcode 2>&1");
  // SEND FIRST, SEND LAST with immediate, WRITE FIRST/MIDDLE/LAST, READ request and
  // response FIRST/LAST, ACK, ATOMIC ACK, COMPARE SWAP.
  for (const char* op : {"0", "3", "6", "7", "8", "12", "13", "15", "17", "18", "19"}) {
    EXPECT_NE(("\n" + opcodes).find(std::string("\n") + op + "\n"), std::string::npos)
        << "opcode " << op << " missing from:\n"
        << opcodes;
  }
  std::string frames = Shell("tshark -r " + path + " 2>/dev/null | wc -l");
  std::string ib = Shell("tshark -r " + path + " -Y infiniband 2>/dev/null | wc -l");
  EXPECT_EQ(frames, ib) << "every frame must decode as InfiniBand";
  EXPECT_EQ(Shell("tshark -r " + path + " -Y _ws.malformed 2>/dev/null"), "");
  // The one error Wireshark reports is UDP checksum 0 over IPv6: RoCEv2 senders leave
  // the UDP checksum 0 (the ICRC covers the packet) and rxe's receiving socket accepts
  // that, but Wireshark holds IPv6 to RFC 8200. Anything else is a defect.
  EXPECT_EQ(Shell("tshark -r " + path +
                  " -Y '_ws.expert.severity == error' -T fields "
                  "-e _ws.expert.message 2>/dev/null | grep -v '^Illegal checksum value (0)$'"),
            "");
  EXPECT_NE(Shell("tshark -r " + path + " -Y 'eth.type == 0x8915' 2>/dev/null | wc -l"), "0\n")
      << "RoCEv1 frames expected";
  EXPECT_NE(Shell("tshark -r " + path + " -Y 'ipv6 && udp.dstport == 4791' 2>/dev/null | wc -l"),
            "0\n");
}

}  // namespace
}  // namespace vrdma::driver::testing
