// ibv_init_ah_from_wc's pure part: the addresses in a received GRH area, and the GID
// index a reply goes out from.
#include "vdev/provider/ah_from_grh.h"

#include <gtest/gtest.h>

#include <cstring>

namespace vrdma::provider {
namespace {

TEST(AhFromGrh, RoceV2OverIpv4TakesTheIpHeaderInTheLast20Bytes) {
  uint8_t area[40];
  std::memset(area, 0xaa, 20);  // the unused half: never read as a GRH
  const uint8_t ip[20] = {0x45, 0x28, 0,  60, 0, 0, 0x40, 0,  64, 17,
                          0,    0,    10, 77, 0, 2, 10,   77, 0,  1};
  std::memcpy(area + 20, ip, 20);
  GrhAddresses a = AddressesOfGrh(reinterpret_cast<const ibv_grh*>(area));
  const uint8_t sgid[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 77, 0, 2};
  const uint8_t dgid[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 77, 0, 1};
  EXPECT_EQ(std::memcmp(a.sgid, sgid, 16), 0);
  EXPECT_EQ(std::memcmp(a.dgid, dgid, 16), 0);
  EXPECT_EQ(a.traffic_class, 0x28);
  EXPECT_EQ(a.flow_label, 0u);
}

TEST(AhFromGrh, Ipv6AndRoceV1GrhsAreReadAsGrhs) {
  ibv_grh g{};
  g.version_tclass_flow = htonl(6u << 28 | 0x5au << 20 | 0xbcdef);
  for (int i = 0; i < 16; ++i) {
    g.sgid.raw[i] = static_cast<uint8_t>(0x10 + i);
    g.dgid.raw[i] = static_cast<uint8_t>(0x40 + i);
  }
  // Whatever the second half holds (here a byte that looks like IPv4's version 4).
  reinterpret_cast<uint8_t*>(&g)[20] = 0x45;
  GrhAddresses a = AddressesOfGrh(&g);
  EXPECT_EQ(std::memcmp(a.sgid, g.sgid.raw, 16), 0);
  EXPECT_EQ(std::memcmp(a.dgid, g.dgid.raw, 16), 0);
  EXPECT_EQ(a.traffic_class, 0x5a);
  EXPECT_EQ(a.flow_label, 0xbcdefu);
}

proto::QueryGidTableReply Table() {
  proto::QueryGidTableReply t{};
  t.count = 6;
  const uint8_t ll[16] = {0xfe, 0x80, 0,    0,    0,    0,    0,    0,
                          0,    0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55};
  const uint8_t v4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 77, 0, 1};
  const uint32_t types[6] = {IBV_GID_TYPE_ROCE_V1, IBV_GID_TYPE_ROCE_V2, IBV_GID_TYPE_ROCE_V1,
                             IBV_GID_TYPE_ROCE_V2, IBV_GID_TYPE_ROCE_V1, IBV_GID_TYPE_ROCE_V2};
  for (int i = 0; i < 6; ++i) {
    std::memcpy(t.entries[i].gid, i < 2 ? ll : v4, 16);
    t.entries[i].type = types[i];
    t.entries[i].valid = 1;
  }
  t.entries[4].gid[15] = 9;  // another address
  t.entries[5].gid[15] = 9;
  return t;
}

TEST(AhFromGrh, FindsOurGidPreferringRoceV2) {
  proto::QueryGidTableReply t = Table();
  const uint8_t v4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 77, 0, 1};
  EXPECT_EQ(FindGidIndex(t, v4), 3);
  EXPECT_EQ(FindGidIndex(t, t.entries[0].gid), 1);
  // Only a RoCEv1 entry left: that one.
  t.entries[3].valid = 0;
  EXPECT_EQ(FindGidIndex(t, v4), 2);
  // Invalid entries and entries past count are not ours.
  t.entries[2].valid = 0;
  EXPECT_EQ(FindGidIndex(t, v4), -1);
  t = Table();
  t.count = 3;
  EXPECT_EQ(FindGidIndex(t, v4), 2);
  t.count = 0xffffffff;  // a count past the table is bounded by kMaxGids
  uint8_t none[16] = {1};
  EXPECT_EQ(FindGidIndex(t, none), -1);
}

}  // namespace
}  // namespace vrdma::provider
