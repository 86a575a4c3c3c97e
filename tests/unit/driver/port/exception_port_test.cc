#include "driver/port/exception_port.h"

#include <cstring>
#include <deque>
#include <initializer_list>
#include <vector>

#include "driver/port/packet_pool.h"
#include "gtest/gtest.h"

namespace vrdma::driver {
namespace {

rte_mempool* Pool() {
  static rte_mempool* pool = *CreatePacketPool("exception_test_pool", 1023);
  return pool;
}

// A port whose receive side is a queue the test fills and whose transmit side keeps
// what it was given; it takes at most `accept` frames per TxBurst.
class QueuePort : public PacketPort {
 public:
  ~QueuePort() override {
    for (rte_mbuf* m : rx) rte_pktmbuf_free(m);
    for (rte_mbuf* m : tx) rte_pktmbuf_free(m);
  }
  uint16_t RxBurst(rte_mbuf** pkts, uint16_t n) override {
    uint16_t k = 0;
    while (k < n && !rx.empty()) {
      pkts[k++] = rx.front();
      rx.pop_front();
    }
    return k;
  }
  uint16_t TxBurst(rte_mbuf** pkts, uint16_t n) override {
    uint16_t k = n < accept ? n : accept;
    tx.insert(tx.end(), pkts, pkts + k);
    return k;
  }
  std::string_view Name() const override { return "queue"; }
  std::deque<rte_mbuf*> rx;
  std::vector<rte_mbuf*> tx;
  uint16_t accept = 0xffff;
};

rte_mbuf* Frame(std::initializer_list<uint8_t> bytes, uint32_t len = 128) {
  rte_mbuf* m = rte_pktmbuf_alloc(Pool());
  uint8_t* p = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, static_cast<uint16_t>(len)));
  std::memset(p, 0, len);
  std::memcpy(p, bytes.begin(), bytes.size());
  return m;
}

// Byte layouts after the two MAC addresses (offset 12).
std::vector<uint8_t> Frame12(std::initializer_list<uint8_t> tail) {
  std::vector<uint8_t> f(12, 0xaa);
  f.insert(f.end(), tail);
  return f;
}

std::vector<uint8_t> Ipv4Udp(uint16_t dport, uint16_t frag = 0, uint8_t proto = 17) {
  std::vector<uint8_t> f = Frame12({0x08, 0x00});
  std::vector<uint8_t> ip(20, 0);
  ip[0] = 0x45;
  ip[6] = static_cast<uint8_t>(frag >> 8);
  ip[7] = static_cast<uint8_t>(frag);
  ip[9] = proto;
  f.insert(f.end(), ip.begin(), ip.end());
  f.insert(f.end(), {0x12, 0x34, static_cast<uint8_t>(dport >> 8), static_cast<uint8_t>(dport)});
  return f;
}

bool Roce(const std::vector<uint8_t>& f) {
  return IsRoceFrame(f.data(), static_cast<uint32_t>(f.size()));
}

TEST(IsRoceFrameTest, RoceV1AndV2AreRoceEverythingElseIsNot) {
  EXPECT_TRUE(Roce(Frame12({0x89, 0x15})));
  EXPECT_TRUE(Roce(Frame12({0x81, 0x00, 0x00, 0x07, 0x89, 0x15})));  // VLAN 7
  EXPECT_TRUE(Roce(Ipv4Udp(4791)));
  EXPECT_FALSE(Roce(Ipv4Udp(4792)));
  EXPECT_FALSE(Roce(Ipv4Udp(4791, 0, 6)));    // TCP to 4791
  EXPECT_FALSE(Roce(Ipv4Udp(4791, 0x0010)));  // a later fragment: no UDP header
  EXPECT_TRUE(Roce(Ipv4Udp(4791, 0x2000)));   // more-fragments set, offset 0

  std::vector<uint8_t> v6 = Frame12({0x86, 0xdd});
  std::vector<uint8_t> ip6(40, 0);
  ip6[0] = 0x60;
  ip6[6] = 17;
  v6.insert(v6.end(), ip6.begin(), ip6.end());
  v6.insert(v6.end(), {0xc0, 0x00, 0x12, 0xb7});
  EXPECT_TRUE(Roce(v6));
  v6[12 + 2 + 6] = 58;  // ICMPv6 (neighbour discovery)
  EXPECT_FALSE(Roce(v6));

  EXPECT_FALSE(Roce(Frame12({0x08, 0x06})));  // ARP
  // Truncated headers are not RoCE (the kernel gets them, as from any NIC).
  std::vector<uint8_t> cut = Ipv4Udp(4791);
  cut.resize(12 + 2 + 20 + 2);
  EXPECT_FALSE(Roce(cut));
  EXPECT_FALSE(Roce(Frame12({0x81, 0x00, 0x00})));
}

TEST(ExceptionPortTest, RoceToTheEngineTheRestToTheKernelAndBack) {
  QueuePort wire, kernel;
  ExceptionPort port(&wire, &kernel);
  std::vector<uint8_t> roce = Ipv4Udp(4791), arp = Frame12({0x08, 0x06}), tcp = Ipv4Udp(80, 0, 6);
  auto make = [](const std::vector<uint8_t>& b, uint8_t tag) {
    rte_mbuf* m = rte_pktmbuf_alloc(Pool());
    uint8_t* p = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, 128));
    std::memset(p, 0, 128);
    std::memcpy(p, b.data(), b.size());
    p[127] = tag;
    return m;
  };
  wire.rx = {make(arp, 1), make(roce, 2), make(tcp, 3), make(roce, 4)};
  kernel.rx = {make(arp, 5)};  // the kernel's ARP reply
  rte_mbuf* got[8];
  ASSERT_EQ(port.RxBurst(got, 8), 2);
  EXPECT_EQ(rte_pktmbuf_mtod(got[0], uint8_t*)[127], 2);
  EXPECT_EQ(rte_pktmbuf_mtod(got[1], uint8_t*)[127], 4);
  rte_pktmbuf_free(got[0]);
  rte_pktmbuf_free(got[1]);
  ASSERT_EQ(kernel.tx.size(), 2u);
  EXPECT_EQ(rte_pktmbuf_mtod(kernel.tx[0], uint8_t*)[127], 1);
  EXPECT_EQ(rte_pktmbuf_mtod(kernel.tx[1], uint8_t*)[127], 3);
  ASSERT_EQ(wire.tx.size(), 1u);
  EXPECT_EQ(rte_pktmbuf_mtod(wire.tx[0], uint8_t*)[127], 5);
  EXPECT_EQ(port.counters().to_kernel, 2u);
  EXPECT_EQ(port.counters().from_kernel, 1u);

  // The engine's own frames go to the wire only.
  rte_mbuf* out = make(roce, 6);
  EXPECT_EQ(port.TxBurst(&out, 1), 1);
  EXPECT_EQ(wire.tx.size(), 2u);
  EXPECT_EQ(kernel.tx.size(), 2u);
}

TEST(ExceptionPortTest, FramesAKernelInterfaceRefusesAreFreedAndCounted) {
  QueuePort wire, kernel;
  kernel.accept = 1;
  ExceptionPort port(&wire, &kernel);
  unsigned before = rte_mempool_avail_count(Pool());
  for (int i = 0; i < 100; ++i)
    wire.rx.push_back(Frame({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x06}));
  rte_mbuf* got[64];
  EXPECT_EQ(port.RxBurst(got, 64), 0);
  EXPECT_EQ(port.RxBurst(got, 64), 0);
  EXPECT_EQ(port.counters().to_kernel, 2u);  // one per burst offered
  EXPECT_EQ(port.counters().dropped, 98u);
  for (rte_mbuf* m : kernel.tx) rte_pktmbuf_free(m);
  kernel.tx.clear();
  EXPECT_EQ(rte_mempool_avail_count(Pool()), before);
}

}  // namespace
}  // namespace vrdma::driver
