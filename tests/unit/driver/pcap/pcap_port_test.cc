// PcapPort around a fake PacketPort: received frames and accepted sent frames are
// recorded, in order, and rejected ones are not.
#include "driver/pcap/pcap_port.h"

#include <pcap/pcap.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "driver/pcap/pcap_writer.h"
#include "driver/port/packet_pool.h"
#include "gtest/gtest.h"

namespace vrdma::driver {
namespace {

using Bytes = std::vector<uint8_t>;

// Hands out queued mbufs on RxBurst; on TxBurst takes up to `accept` frames, scribbles
// over them and frees them at once, as a port that owns them may.
class FakePort : public PacketPort {
 public:
  uint16_t RxBurst(rte_mbuf** pkts, uint16_t n) override {
    uint16_t i = 0;
    while (i < n && !rx.empty()) {
      pkts[i++] = rx.front();
      rx.pop_front();
    }
    return i;
  }
  uint16_t TxBurst(rte_mbuf** pkts, uint16_t n) override {
    const uint16_t take = n < accept ? n : accept;
    for (uint16_t i = 0; i < take; ++i) {
      sent.emplace_back(rte_pktmbuf_mtod(pkts[i], uint8_t*),
                        rte_pktmbuf_mtod(pkts[i], uint8_t*) + rte_pktmbuf_data_len(pkts[i]));
      std::memset(rte_pktmbuf_mtod(pkts[i], uint8_t*), 0xdd, rte_pktmbuf_data_len(pkts[i]));
      rte_pktmbuf_free(pkts[i]);
    }
    return take;
  }
  std::string_view Name() const override { return "fake0"; }

  std::deque<rte_mbuf*> rx;
  std::vector<Bytes> sent;
  uint16_t accept = 64;
};

class PcapPortTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto pool = CreatePacketPool("pcap_port_test", 511);
    ASSERT_TRUE(pool.ok()) << pool.status();
    pool_ = *pool;
  }

  rte_mbuf* Mbuf(const Bytes& data) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    EXPECT_NE(m, nullptr);
    std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(data.size())), data.data(),
                data.size());
    return m;
  }

  static Bytes Frame(uint8_t tag, size_t len) {
    Bytes b(len);
    for (size_t i = 0; i < len; ++i) b[i] = static_cast<uint8_t>(tag + i);
    return b;
  }

  static std::vector<Bytes> ReadBack(const std::string& path) {
    std::vector<Bytes> out;
    char err[PCAP_ERRBUF_SIZE] = {};
    pcap_t* p = pcap_open_offline(path.c_str(), err);
    if (p == nullptr) {
      ADD_FAILURE() << err;
      return out;
    }
    pcap_pkthdr* hdr;
    const u_char* data;
    while (pcap_next_ex(p, &hdr, &data) == 1) out.emplace_back(data, data + hdr->caplen);
    pcap_close(p);
    return out;
  }

  static rte_mempool* pool_;
};

rte_mempool* PcapPortTest::pool_ = nullptr;

TEST_F(PcapPortTest, RecordsReceivedAndAcceptedFrames) {
  const std::string path =
      ::testing::TempDir() + "vrdma_pcap_port_" + std::to_string(getpid()) + ".pcap";
  PcapWriter writer;
  ASSERT_TRUE(writer.Open(path).ok());
  FakePort fake;
  PcapPort port(&fake, &writer);
  EXPECT_EQ(port.Name(), "pcap:fake0");

  // Two frames received, one of them in two segments.
  fake.rx.push_back(Mbuf(Frame(0x10, 60)));
  rte_mbuf* head = Mbuf(Frame(0x20, 40));
  rte_mbuf* tail = Mbuf(Frame(0x20 + 40, 30));
  ASSERT_EQ(rte_pktmbuf_chain(head, tail), 0);
  fake.rx.push_back(head);
  rte_mbuf* got[8];
  ASSERT_EQ(port.RxBurst(got, 8), 2);
  for (rte_mbuf* m : {got[0], got[1]}) rte_pktmbuf_free(m);

  // Three frames offered, two accepted: the third stays with the caller.
  fake.accept = 2;
  rte_mbuf* tx[3] = {Mbuf(Frame(0x30, 64)), Mbuf(Frame(0x40, 100)), Mbuf(Frame(0x50, 80))};
  ASSERT_EQ(port.TxBurst(tx, 3), 2);
  // Retried alone, it is accepted and recorded once.
  fake.accept = 64;
  ASSERT_EQ(port.TxBurst(&tx[2], 1), 1);
  ASSERT_EQ(port.RxBurst(got, 8), 0);  // nothing to record
  ASSERT_TRUE(port.status().ok());
  ASSERT_TRUE(writer.Close().ok());

  const std::vector<Bytes> recorded = ReadBack(path);
  ASSERT_EQ(recorded.size(), 5u);
  EXPECT_EQ(recorded[0], Frame(0x10, 60));
  EXPECT_EQ(recorded[1], Frame(0x20, 70));
  EXPECT_EQ(recorded[2], Frame(0x30, 64));  // as sent, not as the port left the mbuf
  EXPECT_EQ(recorded[3], Frame(0x40, 100));
  EXPECT_EQ(recorded[4], Frame(0x50, 80));
  ASSERT_EQ(fake.sent.size(), 3u);
  std::remove(path.c_str());
}

TEST_F(PcapPortTest, WriteErrorStopsRecordingButNotTraffic) {
  PcapWriter closed;  // never opened: every write fails
  FakePort fake;
  PcapPort port(&fake, &closed);
  fake.rx.push_back(Mbuf(Frame(1, 60)));
  rte_mbuf* got[4];
  ASSERT_EQ(port.RxBurst(got, 4), 1);
  rte_pktmbuf_free(got[0]);
  EXPECT_FALSE(port.status().ok());
  rte_mbuf* tx[2] = {Mbuf(Frame(2, 60)), Mbuf(Frame(3, 60))};
  EXPECT_EQ(port.TxBurst(tx, 2), 2);
  EXPECT_EQ(fake.sent.size(), 2u);
}

}  // namespace
}  // namespace vrdma::driver
