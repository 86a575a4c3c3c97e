#include "vdev/nldev/nl_message.h"

#include <linux/netlink.h>

#include <cstring>

namespace vrdma::vdev::nldev {

namespace {

size_t Align(size_t n) { return (n + NLA_ALIGNTO - 1) & ~static_cast<size_t>(NLA_ALIGNTO - 1); }

}  // namespace

void NlAttrs::Put(uint16_t type, const void* value, size_t len) {
  nlattr h{static_cast<uint16_t>(NLA_HDRLEN + len), type};
  size_t at = bytes_.size();
  bytes_.resize(at + Align(NLA_HDRLEN + len), 0);
  std::memcpy(bytes_.data() + at, &h, sizeof h);
  if (len) std::memcpy(bytes_.data() + at + NLA_HDRLEN, value, len);
}

void NlAttrs::PutString(uint16_t type, std::string_view s) {
  std::vector<char> z(s.begin(), s.end());
  z.push_back(0);
  Put(type, z.data(), z.size());
}

size_t NlAttrs::BeginNest(uint16_t type) {
  size_t at = bytes_.size();
  Put(type, nullptr, 0);
  return at;
}

void NlAttrs::EndNest(size_t at) {
  // Nests are written without NLA_F_NESTED, as nla_nest_start_noflag (nldev.c) does.
  uint16_t len = static_cast<uint16_t>(bytes_.size() - at);
  std::memcpy(bytes_.data() + at, &len, sizeof len);
}

void NlAttrs::Append(std::span<const uint8_t> attrs) {
  bytes_.insert(bytes_.end(), attrs.begin(), attrs.end());
}

NlMessage::NlMessage(uint16_t type, uint16_t flags, uint32_t seq, uint32_t portid) {
  nlmsghdr h{};
  h.nlmsg_type = type;
  h.nlmsg_flags = flags;
  h.nlmsg_seq = seq;
  h.nlmsg_pid = portid;
  bytes_.resize(NLMSG_HDRLEN);
  std::memcpy(bytes_.data(), &h, sizeof h);
}

std::vector<uint8_t> NlMessage::Finish() && {
  uint32_t len = static_cast<uint32_t>(bytes_.size());
  std::memcpy(bytes_.data(), &len, sizeof len);
  return std::move(bytes_);
}

std::optional<std::vector<NlAttr>> ParseAttrs(std::span<const uint8_t> payload) {
  std::vector<NlAttr> out;
  size_t at = 0;
  while (payload.size() - at >= NLA_HDRLEN) {
    nlattr h;
    std::memcpy(&h, payload.data() + at, sizeof h);
    if (h.nla_len < NLA_HDRLEN || h.nla_len > payload.size() - at) return std::nullopt;
    out.push_back(NlAttr{static_cast<uint16_t>(h.nla_type & NLA_TYPE_MASK),
                         payload.subspan(at + NLA_HDRLEN, h.nla_len - NLA_HDRLEN)});
    at += Align(h.nla_len);
    if (at > payload.size()) break;  // the last attribute's padding may be left out
  }
  return out;
}

}  // namespace vrdma::vdev::nldev
