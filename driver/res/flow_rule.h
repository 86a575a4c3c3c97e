// Flow steering rules of raw packet QPs (ibv_create_flow): which received frames a raw
// packet QP takes. The engine's own form of a rule, checked and translated from the verbs
// flow specs by the layer that speaks verbs (vdev/flow_spec.cc). Every field matches as
// (frame & mask) == (value & mask); a zero mask matches anything.
#pragma once

#include <array>
#include <cstdint>

namespace vrdma::driver {

struct FlowMatch {
  // Ethernet (IBV_FLOW_SPEC_ETH). ether_type is the one after any 802.1Q tag; vlan_tag
  // is the tag's TCI (0 for an untagged frame). Host byte order.
  std::array<uint8_t, 6> dst_mac{}, dst_mac_mask{};
  std::array<uint8_t, 6> src_mac{}, src_mac_mask{};
  uint16_t ether_type = 0, ether_type_mask = 0;
  uint16_t vlan_tag = 0, vlan_tag_mask = 0;
  // IP (IBV_FLOW_SPEC_IPV4[_EXT], IBV_FLOW_SPEC_IPV6): `ip_version` 4 or 6 when the rule
  // names a family (then only frames of it match), 0 otherwise. An IPv4 address is the
  // first 4 bytes of src_ip/dst_ip. `hop_limit` is IPv4's TTL.
  uint8_t ip_version = 0;
  std::array<uint8_t, 16> src_ip{}, src_ip_mask{};
  std::array<uint8_t, 16> dst_ip{}, dst_ip_mask{};
  uint8_t proto = 0, proto_mask = 0;  // IPv4 protocol, IPv6 next header
  uint8_t tos = 0, tos_mask = 0;      // IPv4 TOS, IPv6 traffic class
  uint8_t hop_limit = 0, hop_limit_mask = 0;
  uint32_t flow_label = 0, flow_label_mask = 0;  // IPv6, 20 bits
  // TCP or UDP (IBV_FLOW_SPEC_TCP / _UDP): `l4_proto` 6 or 17 when the rule names one.
  uint8_t l4_proto = 0;
  uint16_t src_port = 0, src_port_mask = 0;
  uint16_t dst_port = 0, dst_port_mask = 0;
};

struct FlowRule {
  // IBV_FLOW_ATTR_NORMAL: frames matching `match`, before anything else looks at them
  // (RoCE packets too, as a NIC's steering table does); kAllDefault: every frame for the
  // QP's interface that no normal rule and no RoCE QP took; kMcDefault: the same for
  // multicast and broadcast frames only.
  enum class Kind : uint8_t { kNormal, kAllDefault, kMcDefault };
  Kind kind = Kind::kNormal;
  uint16_t priority = 0;  // lower first (ibv_flow_attr::priority)
  FlowMatch match;
};

}  // namespace vrdma::driver
