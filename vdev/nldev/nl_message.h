// Netlink messages as the kernel writes and reads them (include/uapi/linux/netlink.h): a
// 16-byte nlmsghdr, then attributes, each an nlattr (u16 length, u16 type) and its value,
// padded to 4 bytes (NLA_ALIGNTO). Nested attributes hold attributes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace vrdma::vdev::nldev {

// Attributes being written: standalone (an entry built before it is known to fit) or
// after a message header (NlMessage).
class NlAttrs {
 public:
  void PutU8(uint16_t type, uint8_t v) { Put(type, &v, sizeof v); }
  void PutU32(uint16_t type, uint32_t v) { Put(type, &v, sizeof v); }
  // nla_put_u64_64bit: x86-64 reads unaligned u64s, so no RDMA_NLDEV_ATTR_PAD is needed.
  void PutU64(uint16_t type, uint64_t v) { Put(type, &v, sizeof v); }
  void PutString(uint16_t type, std::string_view s);  // NUL-terminated (NLA_NUL_STRING)
  void Put(uint16_t type, const void* value, size_t len);
  // A nested attribute: Begin returns its place, End sets its length.
  size_t BeginNest(uint16_t type);
  void EndNest(size_t at);
  // Attributes written elsewhere, appended as they are.
  void Append(std::span<const uint8_t> attrs);

  size_t size() const { return bytes_.size(); }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 protected:
  std::vector<uint8_t> bytes_;
};

class NlMessage : public NlAttrs {
 public:
  NlMessage(uint16_t type, uint16_t flags, uint32_t seq, uint32_t portid);
  // The message with nlmsg_len set.
  std::vector<uint8_t> Finish() &&;
};

// One attribute of a received message; its value is inside the message.
struct NlAttr {
  uint16_t type = 0;  // without NLA_F_NESTED and NLA_F_NET_BYTEORDER
  std::span<const uint8_t> value;
};

// The attributes in `payload`, in order; nullopt when one is shorter than its header or
// runs past the end (the kernel's nla_ok).
std::optional<std::vector<NlAttr>> ParseAttrs(std::span<const uint8_t> payload);

}  // namespace vrdma::vdev::nldev
