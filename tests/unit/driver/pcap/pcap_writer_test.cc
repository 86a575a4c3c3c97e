// PcapWriter output read back with libpcap, and its file header byte by byte.
#include "driver/pcap/pcap_writer.h"

#include <pcap/pcap.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace vrdma::driver {
namespace {

using Bytes = std::vector<uint8_t>;

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "vrdma_" + std::to_string(getpid()) + "_" + name;
}

struct Record {
  Bytes data;
  uint32_t len;
  uint64_t ts_ns;
};

std::vector<Record> ReadBack(const std::string& path) {
  std::vector<Record> out;
  char err[PCAP_ERRBUF_SIZE] = {};
  pcap_t* p =
      pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, err);
  if (p == nullptr) {
    ADD_FAILURE() << err;
    return out;
  }
  EXPECT_EQ(pcap_datalink(p), DLT_EN10MB);
  EXPECT_EQ(pcap_get_tstamp_precision(p), PCAP_TSTAMP_PRECISION_NANO);
  pcap_pkthdr* hdr;
  const u_char* data;
  while (pcap_next_ex(p, &hdr, &data) == 1) {
    out.push_back({Bytes(data, data + hdr->caplen), hdr->len,
                   static_cast<uint64_t>(hdr->ts.tv_sec) * 1'000'000'000 +
                       static_cast<uint64_t>(hdr->ts.tv_usec)});
  }
  pcap_close(p);
  return out;
}

TEST(PcapWriterTest, FramesAndNanosecondTimestampsReadBackWithLibpcap) {
  const std::string path = TempPath("frames.pcap");
  PcapWriter w;
  ASSERT_TRUE(w.Open(path).ok());
  EXPECT_TRUE(w.is_open());
  const Bytes a(60, 0x11);
  Bytes b(1514);
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(i);
  ASSERT_TRUE(w.Write(a.data(), 60, 1'795'525'606'731'685'041ull).ok());
  ASSERT_TRUE(w.Write(b.data(), 1514, 1'795'525'606'999'999'999ull).ok());
  ASSERT_TRUE(w.Write(a.data(), 0, 5).ok());
  ASSERT_TRUE(w.Close().ok());
  EXPECT_FALSE(w.is_open());

  const std::vector<Record> r = ReadBack(path);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].data, a);
  EXPECT_EQ(r[0].ts_ns, 1'795'525'606'731'685'041ull);
  EXPECT_EQ(r[1].data, b);
  EXPECT_EQ(r[1].len, 1514u);
  EXPECT_EQ(r[1].ts_ns, 1'795'525'606'999'999'999ull);
  EXPECT_TRUE(r[2].data.empty());
  EXPECT_EQ(r[2].ts_ns, 5u);
  std::remove(path.c_str());
}

TEST(PcapWriterTest, FileHeaderIsClassicPcapWithNanosecondMagic) {
  const std::string path = TempPath("header.pcap");
  PcapWriter w;
  ASSERT_TRUE(w.Open(path).ok());
  ASSERT_TRUE(w.Flush().ok());
  std::ifstream in(path, std::ios::binary);
  const Bytes file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_EQ(file.size(), 24u);
  const Bytes expected = {0x4d, 0x3c, 0xb2, 0xa1,  // magic 0xa1b23c4d, little endian host
                          2,    0,    4,    0,     // version 2.4
                          0,    0,    0,    0,    0, 0, 0, 0,  // thiszone, sigfigs
                          0xff, 0xff, 0,    0,                 // snaplen 65535
                          1,    0,    0,    0};                // LINKTYPE_ETHERNET
  EXPECT_EQ(file, expected);
  ASSERT_TRUE(w.Close().ok());
  std::remove(path.c_str());
}

TEST(PcapWriterTest, LongFramesAreCutAtSnapLen) {
  const std::string path = TempPath("long.pcap");
  PcapWriter w;
  ASSERT_TRUE(w.Open(path).ok());
  const Bytes big(PcapWriter::kSnapLen + 100, 0x42);
  ASSERT_TRUE(w.Write(big.data(), static_cast<uint32_t>(big.size()), 1).ok());
  ASSERT_TRUE(w.Close().ok());
  const std::vector<Record> r = ReadBack(path);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].data.size(), PcapWriter::kSnapLen);
  EXPECT_EQ(r[0].len, big.size());
  std::remove(path.c_str());
}

TEST(PcapWriterTest, ErrorsAreStatuses) {
  PcapWriter w;
  const uint8_t byte = 0;
  EXPECT_EQ(w.Write(&byte, 1, 0).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(w.Flush().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(w.Close().ok());  // closing a closed writer is fine
  const absl::Status st = w.Open("/nonexistent-dir/x.pcap");
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("/nonexistent-dir/x.pcap"), std::string::npos);
  const std::string path = TempPath("twice.pcap");
  ASSERT_TRUE(w.Open(path).ok());
  EXPECT_EQ(w.Open(path).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(w.Close().ok());
  ASSERT_TRUE(w.Open(path).ok());  // reopen after close
  ASSERT_TRUE(w.Close().ok());
  std::remove(path.c_str());
}

TEST(PcapWriterTest, RealtimeClock) {
  const uint64_t t = RealtimeNs();
  EXPECT_GT(t, 1'700'000'000ull * 1'000'000'000);  // after 2023
  EXPECT_GE(RealtimeNs(), t);
}

}  // namespace
}  // namespace vrdma::driver
