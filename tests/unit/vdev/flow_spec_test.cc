// ibv_create_flow's rule bytes into the engine's FlowRule: the fields, network to host
// order, and every malformed or unoffered rule refused with the errno the kernel gives.
#include "vdev/flow_spec.h"

#include <arpa/inet.h>
#include <infiniband/verbs.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"

namespace vrdma::vdev {
namespace {

struct Rule {
  ibv_flow_attr attr{};
  ibv_flow_spec_eth eth{};
  ibv_flow_spec_ipv4_ext ip{};
  ibv_flow_spec_tcp_udp udp{};
};

Rule Valid() {
  Rule r;
  r.attr.type = IBV_FLOW_ATTR_NORMAL;
  r.attr.size = sizeof r.attr;  // as pyverbs leaves it: not read
  r.attr.priority = 3;
  r.attr.num_of_specs = 3;
  r.attr.port = 1;
  r.eth.type = IBV_FLOW_SPEC_ETH;
  r.eth.size = sizeof r.eth;
  const uint8_t mac[6] = {2, 0, 0, 0, 0, 7};
  std::memcpy(r.eth.val.dst_mac, mac, 6);
  std::memset(r.eth.mask.dst_mac, 0xff, 6);
  r.eth.val.ether_type = htons(0x0800);
  r.eth.mask.ether_type = 0xffff;
  r.ip.type = IBV_FLOW_SPEC_IPV4_EXT;
  r.ip.size = sizeof r.ip;
  r.ip.val.dst_ip = htonl(0x0a000002);
  r.ip.mask.dst_ip = 0xffffffff;
  r.ip.val.proto = 17;
  r.ip.mask.proto = 0xff;
  r.udp.type = IBV_FLOW_SPEC_UDP;
  r.udp.size = sizeof r.udp;
  r.udp.val.dst_port = htons(4791);
  r.udp.mask.dst_port = 0xffff;
  return r;
}

int Parse(const Rule& r, driver::FlowRule* out, size_t len = sizeof(Rule)) {
  std::string why;
  return ParseFlowAttr(reinterpret_cast<const uint8_t*>(&r), len, out, &why);
}

TEST(FlowSpec, FieldsInHostOrder) {
  driver::FlowRule f;
  ASSERT_EQ(Parse(Valid(), &f), 0);
  EXPECT_EQ(f.kind, driver::FlowRule::Kind::kNormal);
  EXPECT_EQ(f.priority, 3);
  EXPECT_EQ(f.match.dst_mac[5], 7);
  EXPECT_EQ(f.match.ether_type, 0x0800);
  EXPECT_EQ(f.match.ip_version, 4);
  EXPECT_EQ(f.match.dst_ip[0], 10);  // network order, as in the frame
  EXPECT_EQ(f.match.dst_ip[3], 2);
  EXPECT_EQ(f.match.proto, 17);
  EXPECT_EQ(f.match.l4_proto, 17);
  EXPECT_EQ(f.match.dst_port, 4791);
  EXPECT_EQ(f.match.dst_port_mask, 0xffff);
}

TEST(FlowSpec, MalformedIsEinvalUnofferedEopnotsupp) {
  driver::FlowRule f;
  Rule r = Valid();
  EXPECT_EQ(Parse(r, &f, sizeof(Rule) - 1), EINVAL);  // the last spec cut short
  EXPECT_EQ(Parse(r, &f, sizeof(Rule) + 4), EINVAL);  // bytes after the last spec
  EXPECT_EQ(Parse(r, &f, 3), EINVAL);
  r.udp.size = sizeof r.udp - 2;  // shorter than its type
  EXPECT_EQ(Parse(r, &f), EINVAL);
  r = Valid();
  r.udp.size = 0xffff;  // past the end
  EXPECT_EQ(Parse(r, &f), EINVAL);
  r = Valid();
  r.udp.type = IBV_FLOW_SPEC_ETH;  // Ethernet twice (and the wrong size for it)
  EXPECT_EQ(Parse(r, &f), EINVAL);
  r = Valid();
  r.attr.port = 2;
  EXPECT_EQ(Parse(r, &f), EINVAL);
  r = Valid();
  r.attr.comp_mask = 1;
  EXPECT_EQ(Parse(r, &f), EINVAL);
  r = Valid();
  r.attr.type = IBV_FLOW_ATTR_ALL_DEFAULT;  // a default rule has no specs
  EXPECT_EQ(Parse(r, &f), EINVAL);
  r = Valid();
  r.attr.type = IBV_FLOW_ATTR_SNIFFER;
  EXPECT_EQ(Parse(r, &f), EOPNOTSUPP);
  r = Valid();
  r.attr.flags = IBV_FLOW_ATTR_FLAGS_DONT_TRAP;
  EXPECT_EQ(Parse(r, &f), EOPNOTSUPP);
  r = Valid();
  r.ip.mask.flags = 0xff;
  EXPECT_EQ(Parse(r, &f), EOPNOTSUPP);
  r = Valid();
  r.udp.type = static_cast<ibv_flow_spec_type>(IBV_FLOW_SPEC_UDP | IBV_FLOW_SPEC_INNER);
  EXPECT_EQ(Parse(r, &f), EOPNOTSUPP);
}

TEST(FlowSpec, DefaultRules) {
  ibv_flow_attr a{};
  a.type = IBV_FLOW_ATTR_MC_DEFAULT;
  a.port = 1;
  driver::FlowRule f;
  std::string why;
  ASSERT_EQ(ParseFlowAttr(reinterpret_cast<const uint8_t*>(&a), sizeof a, &f, &why), 0);
  EXPECT_EQ(f.kind, driver::FlowRule::Kind::kMcDefault);
}

}  // namespace
}  // namespace vrdma::vdev
