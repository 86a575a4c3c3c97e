// vdev/nldev/nl_message.h: attributes written as the kernel lays them out, and read back;
// attributes that overrun their message are refused.
#include "vdev/nldev/nl_message.h"

#include <gtest/gtest.h>
#include <linux/netlink.h>

#include <cstring>

namespace vrdma::vdev::nldev {
namespace {

TEST(NlMessage, WritesHeaderAndPaddedAttributes) {
  NlMessage m(0x1401, NLM_F_MULTI, 7, 42);
  m.PutU8(9, 3);
  m.PutString(2, "vdev_a");
  size_t nest = m.BeginNest(20);
  m.PutU64(4, 0x1122334455667788ull);
  m.EndNest(nest);
  std::vector<uint8_t> b = std::move(m).Finish();
  nlmsghdr h;
  std::memcpy(&h, b.data(), sizeof h);
  EXPECT_EQ(h.nlmsg_len, b.size());
  EXPECT_EQ(h.nlmsg_type, 0x1401);
  EXPECT_EQ(h.nlmsg_flags, NLM_F_MULTI);
  EXPECT_EQ(h.nlmsg_seq, 7u);
  EXPECT_EQ(h.nlmsg_pid, 42u);
  // u8: 5 bytes padded to 8; "vdev_a\0": 11 padded to 12; nest: 4 + 12.
  EXPECT_EQ(b.size(), NLMSG_HDRLEN + 8 + 12 + 16);
  auto attrs = ParseAttrs(std::span<const uint8_t>(b).subspan(NLMSG_HDRLEN));
  ASSERT_TRUE(attrs.has_value());
  ASSERT_EQ(attrs->size(), 3u);
  EXPECT_EQ((*attrs)[0].type, 9);
  EXPECT_EQ((*attrs)[0].value.size(), 1u);
  EXPECT_STREQ(reinterpret_cast<const char*>((*attrs)[1].value.data()), "vdev_a");
  auto inner = ParseAttrs((*attrs)[2].value);
  ASSERT_TRUE(inner.has_value());
  ASSERT_EQ(inner->size(), 1u);
  uint64_t v;
  std::memcpy(&v, (*inner)[0].value.data(), sizeof v);
  EXPECT_EQ(v, 0x1122334455667788ull);
}

TEST(ParseAttrs, RefusesOverrunsAndShortHeaders) {
  const uint8_t overrun[] = {200, 0, 1, 0, 0, 0, 0, 0};  // length 200 in 8 bytes
  EXPECT_FALSE(ParseAttrs(overrun).has_value());
  const uint8_t short_len[] = {2, 0, 1, 0, 0, 0, 0, 0};  // shorter than its header
  EXPECT_FALSE(ParseAttrs(short_len).has_value());
  const uint8_t trailing[] = {8, 0, 1, 0, 1, 2, 3, 4, 9, 9};  // 2 bytes: no header, ignored
  auto a = ParseAttrs(trailing);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->size(), 1u);
  const uint8_t unpadded_last[] = {5, 0, 1, 0, 7};  // the last attribute's padding left out
  a = ParseAttrs(unpadded_last);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->size(), 1u);
}

}  // namespace
}  // namespace vrdma::vdev::nldev
