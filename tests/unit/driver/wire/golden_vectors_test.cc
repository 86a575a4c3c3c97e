// Real rdma_rxe captures (/work/shared/vectors, see its README): every RoCE frame parses,
// its ICRC verifies, and re-encoding the parsed headers gives the captured bytes.
#include <pcap/pcap.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "driver/wire/codec.h"
#include "driver/wire/icrc.h"
#include "driver/wire/opcode.h"
#include "gtest/gtest.h"
#include "tests/unit/driver/wire/frame_builder.h"

#ifndef VRDMA_VECTORS_DIR
#error "VRDMA_VECTORS_DIR must name the golden capture directory"
#endif

namespace vrdma::driver::wire {
namespace {

using Bytes = std::vector<uint8_t>;

std::string VectorPath(const char* name) { return std::string(VRDMA_VECTORS_DIR) + "/" + name; }

// Reads every frame of a pcap or pcapng file; fails the test if it cannot.
std::vector<Bytes> ReadCapture(const std::string& path) {
  std::vector<Bytes> frames;
  char err[PCAP_ERRBUF_SIZE] = {};
  pcap_t* pcap = pcap_open_offline(path.c_str(), err);
  if (pcap == nullptr) {
    ADD_FAILURE() << "cannot open golden capture " << path << ": " << err;
    return frames;
  }
  EXPECT_EQ(pcap_datalink(pcap), DLT_EN10MB);
  pcap_pkthdr* hdr = nullptr;
  const u_char* data = nullptr;
  int rc;
  while ((rc = pcap_next_ex(pcap, &hdr, &data)) == 1) {
    EXPECT_EQ(hdr->caplen, hdr->len) << "frame " << frames.size() + 1 << " was cut by snaplen";
    frames.emplace_back(data, data + hdr->caplen);
  }
  EXPECT_EQ(rc, PCAP_ERROR_BREAK) << pcap_geterr(pcap);
  pcap_close(pcap);
  return frames;
}

struct Summary {
  int roce = 0;
  int not_roce = 0;
  std::map<uint8_t, int> opcodes;
};

// Parses every frame: RoCE frames must verify and re-encode exactly, the rest must be
// kNotRoce.
Summary CheckCapture(const std::vector<Bytes>& frames) {
  Summary s;
  for (size_t i = 0; i < frames.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << "frame " << i + 1);
    const Bytes& f = frames[i];
    RocePacket pkt;
    const DropReason r = ParseFrame(f.data(), static_cast<uint32_t>(f.size()), &pkt);
    if (r != DropReason::kNone) {
      EXPECT_EQ(r, DropReason::kNotRoce) << DropReasonName(r);
      ++s.not_roce;
      continue;
    }
    ++s.roce;
    ++s.opcodes[pkt.bth.opcode];
    EXPECT_EQ(pkt.frame_len, f.size());  // captured at the sender: no Ethernet padding
    const uint32_t icrc = ComputeIcrc(f.data(), pkt.l3_off, pkt.frame_len, pkt.net.type);
    EXPECT_EQ(icrc, testing::ReferenceIcrc(f));

    RocePacket again = pkt;
    const Bytes payload(pkt.payload, pkt.payload + pkt.payload_len);
    const Bytes rebuilt = testing::BuildFrame(&again, payload);
    EXPECT_EQ(rebuilt, Bytes(f.begin(), f.begin() + pkt.frame_len));
  }
  return s;
}

TEST(GoldenVectorsTest, DirectoryIsThere) {
  ASSERT_TRUE(std::filesystem::is_directory(VRDMA_VECTORS_DIR))
      << "golden vectors missing: " << VRDMA_VECTORS_DIR;
}

TEST(GoldenVectorsTest, RxePairRoceV2) {
  const std::vector<Bytes> frames = ReadCapture(VectorPath("rxe-pair-rocev2.pcapng"));
  ASSERT_EQ(frames.size(), 285u);
  const Summary s = CheckCapture(frames);
  // tshark -r rxe-pair-rocev2.pcapng -Y 'udp.port==4791' | wc -l  ->  185
  EXPECT_EQ(s.roce, 185);
  EXPECT_EQ(s.not_roce, 100);  // ARP, TCP (perftest's port 18515), ICMPv6
  // tshark ... -T fields -e infiniband.bth.opcode | sort | uniq -c
  const std::map<uint8_t, int> expected = {
      {op::kRcSendOnly, 20},        {op::kRcWriteFirst, 20},  {op::kRcWriteMiddle, 40},
      {op::kRcWriteLast, 20},       {op::kRcWriteOnly, 5},    {op::kRcReadRequest, 5},
      {op::kRcReadResponseOnly, 5}, {op::kRcAcknowledge, 45}, {op::kUdSendOnly, 25},
  };
  EXPECT_EQ(s.opcodes, expected);
}

TEST(GoldenVectorsTest, RxeCmRequestUnanswered) {
  const std::vector<Bytes> frames = ReadCapture(VectorPath("rxe-cm-req-unanswered.pcapng"));
  ASSERT_EQ(frames.size(), 44u);
  const Summary s = CheckCapture(frames);
  // 'udp.port==4791' also matches the 5 ICMP port-unreachable replies, which quote the
  // UDP header of the CM REQ they answer; they are not RoCE frames.
  EXPECT_EQ(s.roce, 5);
  EXPECT_EQ(s.not_roce, 39);
  EXPECT_EQ(s.opcodes, (std::map<uint8_t, int>{{op::kUdSendOnly, 5}}));
}

TEST(GoldenVectorsTest, CmMadsGoToQp1WithTheGsiQkey) {
  const std::vector<Bytes> frames = ReadCapture(VectorPath("rxe-pair-rocev2.pcapng"));
  int mads = 0;
  for (const Bytes& f : frames) {
    RocePacket pkt;
    if (ParseFrame(f.data(), static_cast<uint32_t>(f.size()), &pkt) != DropReason::kNone) continue;
    if (pkt.bth.opcode != op::kUdSendOnly || pkt.bth.dest_qp != 1) continue;
    ++mads;
    EXPECT_EQ(pkt.deth.qkey, 0x80010000u);
    EXPECT_EQ(pkt.deth.src_qp, 1u);
    EXPECT_EQ(pkt.payload_len, 256u);  // one MAD
    EXPECT_EQ(pkt.net.type, NetworkType::kRoceV2Ipv4);
    EXPECT_EQ(pkt.net.udp_checksum, 0);  // rxe sends no UDP checksum
  }
  EXPECT_GT(mads, 0);
}

TEST(GoldenVectorsTest, IcrcByteOrderOnTheWire) {
  // Frame 31 is an ACK; Wireshark shows "Invariant CRC: 0x8c894b6c", the four bytes read
  // in network order. The CRC value is 0x6c4b898c: least significant byte first.
  const std::vector<Bytes> frames = ReadCapture(VectorPath("rxe-pair-rocev2.pcapng"));
  ASSERT_GE(frames.size(), 31u);
  const Bytes& f = frames[30];
  RocePacket pkt;
  ASSERT_EQ(ParseFrame(f.data(), static_cast<uint32_t>(f.size()), &pkt), DropReason::kNone);
  ASSERT_EQ(pkt.bth.opcode, op::kRcAcknowledge);
  EXPECT_EQ(Bytes(f.end() - 4, f.end()), (Bytes{0x8c, 0x89, 0x4b, 0x6c}));
  EXPECT_EQ(ComputeIcrc(f.data(), pkt.l3_off, pkt.frame_len, pkt.net.type), 0x6c4b898cu);
}

}  // namespace
}  // namespace vrdma::driver::wire
