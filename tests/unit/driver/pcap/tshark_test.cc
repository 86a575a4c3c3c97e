// Frames built by the codec, written by PcapWriter, read by Wireshark's dissector
// (tshark): every frame must decode as InfiniBand with the right BTH opcode, and
// nothing may be malformed or flagged as an error.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "driver/pcap/pcap_writer.h"
#include "driver/wire/codec.h"
#include "driver/wire/opcode.h"
#include "gtest/gtest.h"
#include "tests/unit/driver/wire/frame_builder.h"

namespace vrdma::driver {
namespace {

using wire::NetworkType;
using wire::RocePacket;
namespace op = wire::op;
namespace aeth = wire::aeth;

constexpr char kTshark[] = "/usr/bin/tshark";
// The payloads are test patterns. Wireshark's RPC-over-RDMA heuristic claims SEND with
// Invalidate payloads and "reassembles" them across unrelated frames, then reports its
// own exception; it is not about our framing, so it is switched off.
constexpr char kTsharkOptions[] = " --disable-protocol rpcordma";

// Runs a shell command; returns its standard output (stderr goes to /dev/null: tshark
// warns when run as root).
std::string RunCommand(const std::string& cmd, int* exit_code) {
  std::string out;
  FILE* p = popen((cmd + " 2>/dev/null").c_str(), "r");
  if (p == nullptr) {
    *exit_code = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

std::vector<std::string> Lines(const std::string& s) {
  std::vector<std::string> lines;
  std::istringstream in(s);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

struct Sample {
  NetworkType type;
  bool vlan;
  uint8_t opcode;
  size_t payload;
  uint8_t syndrome = aeth::kAck | aeth::kCreditInvalid;
};

class TsharkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(access(kTshark, X_OK), 0)
        << kTshark << " is missing: install Debian's tshark package (apt-get install tshark); "
        << "this test checks frames with Wireshark's InfiniBand dissector";
  }
};

TEST_F(TsharkTest, WiresharkDecodesEveryFrameWithoutErrors) {
  const std::vector<Sample> samples = {
      {NetworkType::kRoceV2Ipv4, false, op::kRcSendOnly, 32},
      {NetworkType::kRoceV2Ipv4, false, op::kRcSendFirst, 1024},
      {NetworkType::kRoceV2Ipv4, false, op::kRcSendLastImm, 3},
      {NetworkType::kRoceV2Ipv4, false, op::kRcWriteFirst, 256},
      {NetworkType::kRoceV2Ipv4, false, op::kRcWriteMiddle, 256},
      {NetworkType::kRoceV2Ipv4, false, op::kRcWriteLastImm, 5},
      {NetworkType::kRoceV2Ipv4, false, op::kRcWriteOnly, 0},
      {NetworkType::kRoceV2Ipv4, false, op::kRcReadRequest, 0},
      {NetworkType::kRoceV2Ipv4, false, op::kRcReadResponseFirst, 1024},
      {NetworkType::kRoceV2Ipv4, false, op::kRcReadResponseOnly, 7},
      {NetworkType::kRoceV2Ipv4, false, op::kRcAcknowledge, 0},
      {NetworkType::kRoceV2Ipv4, false, op::kRcAcknowledge, 0,
       aeth::kNak | aeth::kNakRemoteAccessError},
      {NetworkType::kRoceV2Ipv4, false, op::kRcAcknowledge, 0, aeth::kNak | aeth::kNakPsnSeqError},
      {NetworkType::kRoceV2Ipv4, false, op::kRcAcknowledge, 0, aeth::kRnrNak | 14},
      {NetworkType::kRoceV2Ipv4, false, op::kRcCompareSwap, 0},
      {NetworkType::kRoceV2Ipv4, false, op::kRcFetchAdd, 0},
      {NetworkType::kRoceV2Ipv4, false, op::kRcAtomicAcknowledge, 0},
      {NetworkType::kRoceV2Ipv4, false, op::kRcSendLastInv, 8},
      {NetworkType::kRoceV2Ipv4, false, op::kRcSendOnlyInv, 8},
      {NetworkType::kRoceV2Ipv4, false, op::kUdSendOnly, 64},
      {NetworkType::kRoceV2Ipv4, false, op::kUdSendOnlyImm, 64},
      {NetworkType::kRoceV2Ipv4, false, op::kUcBase + op::kRcSendOnly, 16},
      {NetworkType::kRoceV2Ipv4, false, op::kUcBase + op::kRcWriteOnlyImm, 16},
      {NetworkType::kRoceV2Ipv6, false, op::kRcSendOnly, 100},
      {NetworkType::kRoceV2Ipv6, false, op::kRcWriteOnlyImm, 64},
      {NetworkType::kRoceV2Ipv6, false, op::kRcAcknowledge, 0,
       aeth::kNak | aeth::kNakInvalidRequest},
      {NetworkType::kRoceV2Ipv6, false, op::kRcFetchAdd, 0},
      {NetworkType::kRoceV2Ipv6, false, op::kRcAtomicAcknowledge, 0},
      {NetworkType::kRoceV2Ipv4, true, op::kRcReadResponseLast, 9},
      {NetworkType::kRoceV2Ipv6, true, op::kRcSendFirst, 512},
      {NetworkType::kRoceV1, true, op::kRcAcknowledge, 0},
      {NetworkType::kRoceV1, false, op::kRcSendOnly, 40},
      {NetworkType::kRoceV1, false, op::kRcWriteOnly, 128},
      {NetworkType::kRoceV1, false, op::kRcReadRequest, 0},
      {NetworkType::kRoceV1, false, op::kRcAcknowledge, 0,
       aeth::kNak | aeth::kNakRemoteOperationalError},
      {NetworkType::kRoceV1, false, op::kRcCompareSwap, 0},
      {NetworkType::kRoceV1, false, op::kRcAtomicAcknowledge, 0},
      {NetworkType::kRoceV1, false, op::kUdSendOnly, 48},
  };

  const std::string path =
      ::testing::TempDir() + "vrdma_tshark_" + std::to_string(getpid()) + ".pcap";
  PcapWriter writer;
  ASSERT_TRUE(writer.Open(path).ok());
  std::vector<std::string> expected;
  uint64_t ts = RealtimeNs();
  for (size_t i = 0; i < samples.size(); ++i) {
    const Sample& s = samples[i];
    RocePacket pkt = wire::testing::SamplePacket(s.type, s.opcode, s.vlan);
    pkt.aeth.syndrome = s.syndrome;
    const std::vector<uint8_t> frame =
        wire::testing::BuildFrame(&pkt, wire::testing::Pattern(s.payload));
    ASSERT_FALSE(frame.empty());
    ASSERT_TRUE(
        writer.Write(frame.data(), static_cast<uint32_t>(frame.size()), ts + i * 1000).ok());
    expected.push_back(std::to_string(i + 1) + "\t" + std::to_string(s.opcode));
  }
  ASSERT_TRUE(writer.Close().ok());

  int rc;
  const std::string fields =
      RunCommand(std::string(kTshark) + kTsharkOptions + " -r " + path +
                     " -Y infiniband -T fields -e frame.number -e infiniband.bth.opcode",
                 &rc);
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(Lines(fields), expected);

  const std::string verbose =
      RunCommand(std::string(kTshark) + kTsharkOptions + " -r " + path + " -V", &rc);
  ASSERT_EQ(rc, 0);
  size_t bth = 0;
  for (size_t at = 0; (at = verbose.find("Base Transport Header", at)) != std::string::npos; ++at) {
    ++bth;
  }
  EXPECT_EQ(bth, samples.size());
  EXPECT_EQ(verbose.find("Malformed"), std::string::npos);

  EXPECT_EQ(
      RunCommand(std::string(kTshark) + kTsharkOptions + " -r " + path + " -Y _ws.malformed", &rc),
      "");
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(RunCommand(std::string(kTshark) + kTsharkOptions + " -r " + path +
                           " -Y '_ws.expert.severity == error'",
                       &rc),
            "");
  EXPECT_EQ(rc, 0);

  // AETH syndromes decode as Wireshark reads them (ACK / NAK / RNR NAK).
  const std::string syndromes =
      RunCommand(std::string(kTshark) + kTsharkOptions + " -r " + path +
                     " -Y 'infiniband.bth.opcode == 17' -T fields -e infiniband.aeth.syndrome",
                 &rc);
  EXPECT_EQ(Lines(syndromes).size(), 7u);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace vrdma::driver
