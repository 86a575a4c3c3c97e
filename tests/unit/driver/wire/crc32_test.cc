// Crc32Update and both of its engines against a bitwise reference CRC.
#include <cstring>
#include <random>
#include <vector>

#include "driver/wire/crc32_internal.h"
#include "driver/wire/icrc.h"
#include "gtest/gtest.h"
#include "tests/unit/driver/wire/frame_builder.h"

namespace vrdma::driver::wire {
namespace {

using CrcFn = uint32_t (*)(uint32_t, const void*, size_t);
using testing::ReferenceCrc32;

std::vector<uint8_t> RandomBytes(size_t n, std::mt19937* rng) {
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>((*rng)());
  return v;
}

TEST(Crc32Test, StandardCheckValue) {
  const char* msg = "123456789";  // CRC-32/ISO-HDLC check value
  EXPECT_EQ(~ReferenceCrc32(0xffffffffu, reinterpret_cast<const uint8_t*>(msg), 9), 0xCBF43926u);
  EXPECT_EQ(~Crc32Update(0xffffffffu, msg, 9), 0xCBF43926u);
  EXPECT_EQ(Crc32Update(0x12345678u, msg, 0), 0x12345678u);  // raw state, no inversion
}

TEST(Crc32Test, PseudoLrhOfOnesGivesRxeSeed) {
  // rdma_rxe starts its ICRC from 0xdebb20e3: the state after 8 bytes of ones.
  const uint8_t ones[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  EXPECT_EQ(Crc32Update(0xffffffffu, ones, 8), 0xdebb20e3u);
}

class Crc32EngineTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    const std::string name = GetParam();
    if (name == "table") {
      fn_ = &internal::Crc32Table;
    } else if (name == "clmul") {
      if (!internal::CpuHasClmul()) GTEST_SKIP() << "CPU has no PCLMULQDQ";
      fn_ = &internal::Crc32Clmul;
    } else if (name == "vpclmul") {
      if (!internal::CpuHasVpclmul()) GTEST_SKIP() << "CPU has no AVX-512 VPCLMULQDQ";
      fn_ = &internal::Crc32Vpclmul;
    } else {
      fn_ = &Crc32Update;
    }
  }
  CrcFn fn_ = nullptr;
};

TEST_P(Crc32EngineTest, AllShortLengthsAndAlignments) {
  std::mt19937 rng(1);
  const std::vector<uint8_t> buf = RandomBytes(600, &rng);
  for (size_t align = 0; align < 16; ++align) {
    for (size_t len = 0; len <= 520; ++len) {
      const uint32_t state = static_cast<uint32_t>(rng());
      ASSERT_EQ(fn_(state, buf.data() + align, len), ReferenceCrc32(state, buf.data() + align, len))
          << "align " << align << " len " << len;
    }
  }
}

TEST_P(Crc32EngineTest, RandomLongBuffers) {
  std::mt19937 rng(2);
  const std::vector<uint8_t> buf = RandomBytes(70000, &rng);
  for (int i = 0; i < 60; ++i) {
    const size_t align = rng() % 64;
    const size_t len = rng() % (buf.size() - align);
    const uint32_t state = static_cast<uint32_t>(rng());
    ASSERT_EQ(fn_(state, buf.data() + align, len), ReferenceCrc32(state, buf.data() + align, len))
        << "align " << align << " len " << len;
  }
  for (size_t len : {4096u, 65536u, 4352u, 1024u + 7}) {
    ASSERT_EQ(fn_(0xffffffffu, buf.data() + 3, len),
              ReferenceCrc32(0xffffffffu, buf.data() + 3, len))
        << len;
  }
}

TEST_P(Crc32EngineTest, ChainsPiecesLikeOneBuffer) {
  std::mt19937 rng(3);
  const std::vector<uint8_t> buf = RandomBytes(20000, &rng);
  const uint32_t whole = ReferenceCrc32(0xffffffffu, buf.data(), buf.size());
  for (int i = 0; i < 50; ++i) {
    uint32_t state = 0xffffffffu;
    size_t pos = 0;
    while (pos < buf.size()) {
      const size_t n = std::min<size_t>(buf.size() - pos, rng() % 3000);
      state = fn_(state, buf.data() + pos, n);
      pos += n;
    }
    ASSERT_EQ(state, whole);
  }
}

TEST_P(Crc32EngineTest, SpecialPatterns) {
  for (uint8_t fill : {0x00, 0xff, 0x80, 0x01}) {
    std::vector<uint8_t> buf(5000, fill);
    for (uint32_t state : {0u, 0xffffffffu, 0x80000000u, 1u}) {
      ASSERT_EQ(fn_(state, buf.data(), buf.size()), ReferenceCrc32(state, buf.data(), buf.size()));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Engines, Crc32EngineTest,
                         ::testing::Values("table", "clmul", "vpclmul", "dispatch"),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace vrdma::driver::wire
