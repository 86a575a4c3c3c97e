#include "vdev/flow_spec.h"

#include <arpa/inet.h>
#include <infiniband/verbs.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace vrdma::vdev {
namespace {

// Every spec starts with its type and size (struct ibv_flow_spec_*).
struct SpecHeader {
  uint32_t type;  // enum ibv_flow_spec_type
  uint16_t size;
};

template <typename Spec>
bool Read(const uint8_t* p, uint16_t size, Spec* out) {
  if (size != sizeof(Spec)) return false;
  std::memcpy(out, p, sizeof(Spec));
  return true;
}

void Mac(const uint8_t (&v)[6], std::array<uint8_t, 6>* out) { std::memcpy(out->data(), v, 6); }

}  // namespace

int ParseFlowAttr(const uint8_t* bytes, size_t len, driver::FlowRule* out, std::string* why) {
  ibv_flow_attr attr;
  if (len < sizeof attr) {
    *why = "create_flow: shorter than struct ibv_flow_attr";
    return EINVAL;
  }
  std::memcpy(&attr, bytes, sizeof attr);
  // attr.size is not read: the specs say their sizes, as for ib_uverbs' command.
  if (attr.comp_mask) {
    *why = "create_flow: comp_mask";
    return EINVAL;
  }
  if (attr.port != 1) {
    *why = absl::StrCat("create_flow: port ", int{attr.port}, ": a vdev has port 1");
    return EINVAL;
  }
  if (attr.flags) {
    *why = "create_flow: flags (DONT_TRAP, EGRESS) are not offered";
    return EOPNOTSUPP;
  }
  driver::FlowRule rule;
  rule.priority = attr.priority;
  switch (attr.type) {
    case IBV_FLOW_ATTR_NORMAL:
      rule.kind = driver::FlowRule::Kind::kNormal;
      break;
    case IBV_FLOW_ATTR_ALL_DEFAULT:
      rule.kind = driver::FlowRule::Kind::kAllDefault;
      break;
    case IBV_FLOW_ATTR_MC_DEFAULT:
      rule.kind = driver::FlowRule::Kind::kMcDefault;
      break;
    default:
      *why = absl::StrCat("create_flow: rule type ", attr.type, " not offered (sniffer)");
      return EOPNOTSUPP;
  }
  if (rule.kind != driver::FlowRule::Kind::kNormal && attr.num_of_specs) {
    *why = "create_flow: a default rule has no specs";
    return EINVAL;
  }
  driver::FlowMatch& m = rule.match;
  uint32_t seen = 0;  // spec types given (each at most once)
  size_t off = sizeof attr;
  for (uint8_t i = 0; i < attr.num_of_specs; ++i) {
    SpecHeader h;
    if (len - off < sizeof h) {
      *why = "create_flow: specs past the end";
      return EINVAL;
    }
    std::memcpy(&h.type, bytes + off, sizeof h.type);
    std::memcpy(&h.size, bytes + off + sizeof h.type, sizeof h.size);
    if (h.size < sizeof h || h.size > len - off) {
      *why = absl::StrCat("create_flow: spec ", int{i}, " of size ", h.size);
      return EINVAL;
    }
    const uint8_t* p = bytes + off;
    bool ok = true;
    uint32_t bit = 0;
    switch (h.type) {
      case IBV_FLOW_SPEC_ETH: {
        ibv_flow_spec_eth s;
        if (!(ok = Read(p, h.size, &s))) break;
        bit = 1;
        Mac(s.val.dst_mac, &m.dst_mac);
        Mac(s.mask.dst_mac, &m.dst_mac_mask);
        Mac(s.val.src_mac, &m.src_mac);
        Mac(s.mask.src_mac, &m.src_mac_mask);
        m.ether_type = ntohs(s.val.ether_type);
        m.ether_type_mask = ntohs(s.mask.ether_type);
        m.vlan_tag = ntohs(s.val.vlan_tag);
        m.vlan_tag_mask = ntohs(s.mask.vlan_tag);
        break;
      }
      case IBV_FLOW_SPEC_IPV4:
      case IBV_FLOW_SPEC_IPV4_EXT: {
        bit = 2;
        m.ip_version = 4;
        uint32_t src, smask, dst, dmask;
        if (h.type == IBV_FLOW_SPEC_IPV4) {
          ibv_flow_spec_ipv4 s;
          if (!(ok = Read(p, h.size, &s))) break;
          src = s.val.src_ip, smask = s.mask.src_ip, dst = s.val.dst_ip, dmask = s.mask.dst_ip;
        } else {
          ibv_flow_spec_ipv4_ext s;
          if (!(ok = Read(p, h.size, &s))) break;
          if (s.mask.flags) {
            *why = "create_flow: IPv4 flags are not matched";
            return EOPNOTSUPP;
          }
          src = s.val.src_ip, smask = s.mask.src_ip, dst = s.val.dst_ip, dmask = s.mask.dst_ip;
          m.proto = s.val.proto, m.proto_mask = s.mask.proto;
          m.tos = s.val.tos, m.tos_mask = s.mask.tos;
          m.hop_limit = s.val.ttl, m.hop_limit_mask = s.mask.ttl;
        }
        // Network order, as in the frame.
        std::memcpy(m.src_ip.data(), &src, 4);
        std::memcpy(m.src_ip_mask.data(), &smask, 4);
        std::memcpy(m.dst_ip.data(), &dst, 4);
        std::memcpy(m.dst_ip_mask.data(), &dmask, 4);
        break;
      }
      case IBV_FLOW_SPEC_IPV6: {
        ibv_flow_spec_ipv6 s;
        if (!(ok = Read(p, h.size, &s))) break;
        bit = 2;
        m.ip_version = 6;
        std::memcpy(m.src_ip.data(), s.val.src_ip, 16);
        std::memcpy(m.src_ip_mask.data(), s.mask.src_ip, 16);
        std::memcpy(m.dst_ip.data(), s.val.dst_ip, 16);
        std::memcpy(m.dst_ip_mask.data(), s.mask.dst_ip, 16);
        m.flow_label = ntohl(s.val.flow_label) & 0xfffff;
        m.flow_label_mask = ntohl(s.mask.flow_label) & 0xfffff;
        m.proto = s.val.next_hdr, m.proto_mask = s.mask.next_hdr;
        m.tos = s.val.traffic_class, m.tos_mask = s.mask.traffic_class;
        m.hop_limit = s.val.hop_limit, m.hop_limit_mask = s.mask.hop_limit;
        break;
      }
      case IBV_FLOW_SPEC_TCP:
      case IBV_FLOW_SPEC_UDP: {
        ibv_flow_spec_tcp_udp s;
        if (!(ok = Read(p, h.size, &s))) break;
        bit = 4;
        m.l4_proto = h.type == IBV_FLOW_SPEC_TCP ? 6 : 17;
        m.src_port = ntohs(s.val.src_port), m.src_port_mask = ntohs(s.mask.src_port);
        m.dst_port = ntohs(s.val.dst_port), m.dst_port_mask = ntohs(s.mask.dst_port);
        break;
      }
      default:
        // Tunnels, inner headers, actions and counters (IBV_FLOW_SPEC_INNER, VXLAN,
        // GRE, MPLS, ESP, ACTION_*): not offered.
        *why = absl::StrCat("create_flow: spec type 0x", absl::Hex(h.type), " not offered");
        return EOPNOTSUPP;
    }
    if (!ok) {
      *why = absl::StrCat("create_flow: spec type 0x", absl::Hex(h.type), " of size ", h.size);
      return EINVAL;
    }
    if (seen & bit) {
      *why = "create_flow: a header given twice";
      return EINVAL;
    }
    seen |= bit;
    off += h.size;
  }
  if (off != len) {
    *why = "create_flow: bytes after the last spec";
    return EINVAL;
  }
  *out = rule;
  return 0;
}

}  // namespace vrdma::vdev
