// CM MADs as bytes. Each message has one field table, written as the IBTA lays it out
// (byte, bit counted from the most significant bit of that byte, width), and the same
// table both parses and builds: it is walked with a reader or with a writer.
#include "cm/wire/cm_messages.h"

#include <algorithm>
#include <concepts>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace vrdma::cm::wire {
namespace {

// Not constexpr: a Field that does not fit in a CM payload (the largest table) calls it,
// and so does not compile.
void FieldOutsideTheMad() {}

// Where a field lies, in the spec's Byte[Bit] notation: `bit` 0 is the most significant
// bit of byte `byte`; the field runs `width` bits on, across bytes, big-endian.
struct Field {
  consteval Field(size_t byte_offset, unsigned bit_offset, unsigned width_bits)
      : byte(byte_offset), bit(bit_offset), width(width_bits) {
    if (bit > 7 || width == 0 || width > 64 || FirstBit() + width > kCmPayloadSize * 8) {
      FieldOutsideTheMad();
    }
  }
  constexpr size_t FirstBit() const { return byte * 8 + bit; }

  size_t byte;
  unsigned bit;
  unsigned width;
};

bool Fits(std::span<const uint8_t> bytes, const Field& f) {
  return f.FirstBit() + f.width <= bytes.size() * 8;
}

// The big-endian bit reader: the field's bits, most significant first. 0 for a field
// that does not lie inside `bytes` (the tables never give one).
uint64_t GetBits(std::span<const uint8_t> bytes, const Field& f) {
  if (!Fits(bytes, f)) return 0;
  uint64_t value = 0;
  for (size_t pos = f.FirstBit(); pos < f.FirstBit() + f.width; ++pos) {
    value = (value << 1) | ((bytes[pos / 8] >> (7 - pos % 8)) & 1u);
  }
  return value;
}

// The writer: the low `width` bits of `value` (higher ones are dropped), leaving the
// other bits of the bytes it touches alone.
void PutBits(std::span<uint8_t> bytes, const Field& f, uint64_t value) {
  if (!Fits(bytes, f)) return;
  for (size_t i = 0; i < f.width; ++i) {
    const size_t pos = f.FirstBit() + f.width - 1 - i;  // least significant bit first
    const uint8_t mask = static_cast<uint8_t>(1u << (7 - pos % 8));
    if ((value >> i) & 1u) {
      bytes[pos / 8] |= mask;
    } else {
      bytes[pos / 8] &= static_cast<uint8_t>(~mask);
    }
  }
}

// Walks a table reading: each field is copied out of the bytes into the struct.
class FieldReader {
 public:
  explicit FieldReader(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  template <typename T>
  void Bits(const Field& f, T& value) const {
    value = static_cast<T>(GetBits(bytes_, f));
  }
  template <size_t N>
  void Bytes(size_t offset, std::array<uint8_t, N>& out) const {
    if (offset > bytes_.size() || bytes_.size() - offset < N) return;
    std::copy_n(bytes_.begin() + offset, N, out.begin());
  }
  void Reserved(const Field&) const {}  // the receiver ignores reserved bits
  FieldReader At(size_t offset) const {
    return FieldReader(bytes_.subspan(std::min(offset, bytes_.size())));
  }

 private:
  std::span<const uint8_t> bytes_;
};

// Walks a table writing: each field of the struct goes into the bytes, reserved ones zero.
class FieldWriter {
 public:
  explicit FieldWriter(std::span<uint8_t> bytes) : bytes_(bytes) {}

  template <typename T>
  void Bits(const Field& f, const T& value) const {
    PutBits(bytes_, f, static_cast<uint64_t>(value));
  }
  template <size_t N>
  void Bytes(size_t offset, const std::array<uint8_t, N>& in) const {
    if (offset > bytes_.size() || bytes_.size() - offset < N) return;
    std::copy_n(in.begin(), N, bytes_.begin() + offset);
  }
  void Reserved(const Field& f) const { PutBits(bytes_, f, 0); }
  FieldWriter At(size_t offset) const {
    return FieldWriter(bytes_.subspan(std::min(offset, bytes_.size())));
  }

 private:
  std::span<uint8_t> bytes_;
};

// `M` is `T` (reading into it) or `const T` (writing from it).
template <typename M, typename T>
concept Is = std::same_as<std::remove_const_t<M>, T>;

// MAD common header (IBTA 13.4.3); offsets from the start of the MAD.
template <typename Io, Is<MadHeader> M>
void HeaderFields(const Io& io, M& h) {
  io.Bits({0, 0, 8}, h.base_version);
  io.Bits({1, 0, 8}, h.mgmt_class);
  io.Bits({2, 0, 8}, h.class_version);
  io.Bits({3, 0, 8}, h.method);  // the R bit and the method
  io.Bits({4, 0, 16}, h.status);
  io.Bits({6, 0, 16}, h.class_specific);
  io.Bits({8, 0, 64}, h.transaction_id);
  io.Bits({16, 0, 16}, h.attr_id);
  io.Reserved({18, 0, 16});
  io.Bits({20, 0, 32}, h.attr_mod);
}

// The rest of the tables take offsets from the start of the CM payload (MAD byte 24).
//
// Enhanced Connection Establishment (IBA comment 9434; Linux since 2020, as
// CM_REQ_VENDOR_ID, CM_REP_VENDOR_ID_H/M/L, CM_SIDR_REP_VENDOR_ID_H/L) puts a 24-bit vendor
// ID in bits the original tables reserve, in REQ, REP and SIDR_REP. The structs do not
// keep it, so this CM speaks as a peer without ECE: it sends zero there (no vendor
// option), and ignores what a peer sends.

// A REQ path (IBTA 12.6.5), from its first byte: the primary's is REQ byte 52, the
// alternate's byte 96. Bit 5 of the alternate's last byte is SAP Supported, which this
// CM neither sets nor reads: it is written zero like the reserved bits around it.
template <typename Io, Is<CmPath> M>
void PathFields(const Io& io, M& p) {
  io.Bits({0, 0, 16}, p.local_lid);
  io.Bits({2, 0, 16}, p.remote_lid);
  io.Bytes(4, p.local_gid);
  io.Bytes(20, p.remote_gid);
  io.Bits({36, 0, 20}, p.flow_label);
  io.Reserved({38, 4, 6});
  io.Bits({39, 2, 6}, p.packet_rate);
  io.Bits({40, 0, 8}, p.traffic_class);
  io.Bits({41, 0, 8}, p.hop_limit);
  io.Bits({42, 0, 4}, p.sl);
  io.Bits({42, 4, 1}, p.subnet_local);
  io.Reserved({42, 5, 3});
  io.Bits({43, 0, 5}, p.local_ack_timeout);
  io.Reserved({43, 5, 3});
}

// REQ (IBTA 12.6.5).
template <typename Io, Is<Req> M>
void Fields(const Io& io, M& m) {
  io.Bits({0, 0, 32}, m.local_comm_id);
  io.Reserved({4, 0, 8});
  io.Reserved({5, 0, 24});  // ECE's vendor ID (see above)
  io.Bits({8, 0, 64}, m.service_id);
  io.Bits({16, 0, 64}, m.local_ca_guid);
  io.Reserved({24, 0, 32});
  io.Bits({28, 0, 32}, m.local_qkey);
  io.Bits({32, 0, 24}, m.local_qpn);
  io.Bits({35, 0, 8}, m.responder_resources);
  io.Bits({36, 0, 24}, m.local_eecn);
  io.Bits({39, 0, 8}, m.initiator_depth);
  io.Bits({40, 0, 24}, m.remote_eecn);
  io.Bits({43, 0, 5}, m.remote_cm_response_timeout);
  io.Bits({43, 5, 2}, m.transport_service_type);
  io.Bits({43, 7, 1}, m.end_to_end_flow_control);
  io.Bits({44, 0, 24}, m.starting_psn);
  io.Bits({47, 0, 5}, m.local_cm_response_timeout);
  io.Bits({47, 5, 3}, m.retry_count);
  io.Bits({48, 0, 16}, m.partition_key);
  io.Bits({50, 0, 4}, m.path_mtu);
  io.Bits({50, 4, 1}, m.rdc_exists);
  io.Bits({50, 5, 3}, m.rnr_retry_count);
  io.Bits({51, 0, 4}, m.max_cm_retries);
  io.Bits({51, 4, 1}, m.srq);
  io.Bits({51, 5, 3}, m.extended_transport_type);
  PathFields(io.At(52), m.primary);
  PathFields(io.At(96), m.alternate);
  io.Bytes(140, m.private_data);
}

// MRA (IBTA 12.6.6).
template <typename Io, Is<Mra> M>
void Fields(const Io& io, M& m) {
  io.Bits({0, 0, 32}, m.local_comm_id);
  io.Bits({4, 0, 32}, m.remote_comm_id);
  io.Bits({8, 0, 2}, m.message_mraed);
  io.Reserved({8, 2, 6});
  io.Bits({9, 0, 5}, m.service_timeout);
  io.Reserved({9, 5, 3});
  io.Bytes(10, m.private_data);
}

// REJ (IBTA 12.6.7).
template <typename Io, Is<Rej> M>
void Fields(const Io& io, M& m) {
  io.Bits({0, 0, 32}, m.local_comm_id);
  io.Bits({4, 0, 32}, m.remote_comm_id);
  io.Bits({8, 0, 2}, m.message_rejected);
  io.Reserved({8, 2, 6});
  io.Bits({9, 0, 7}, m.reject_info_length);
  io.Reserved({9, 7, 1});
  io.Bits({10, 0, 16}, m.reason);
  io.Bytes(12, m.ari);
  io.Bytes(84, m.private_data);
}

// REP (IBTA 12.6.8).
template <typename Io, Is<Rep> M>
void Fields(const Io& io, M& m) {
  io.Bits({0, 0, 32}, m.local_comm_id);
  io.Bits({4, 0, 32}, m.remote_comm_id);
  io.Bits({8, 0, 32}, m.local_qkey);
  io.Bits({12, 0, 24}, m.local_qpn);
  io.Reserved({15, 0, 8});  // ECE's vendor ID, high byte (see above)
  io.Bits({16, 0, 24}, m.local_eecn);
  io.Reserved({19, 0, 8});  // ... middle byte
  io.Bits({20, 0, 24}, m.starting_psn);
  io.Reserved({23, 0, 8});  // ... low byte
  io.Bits({24, 0, 8}, m.responder_resources);
  io.Bits({25, 0, 8}, m.initiator_depth);
  io.Bits({26, 0, 5}, m.target_ack_delay);
  io.Bits({26, 5, 2}, m.failover_accepted);
  io.Bits({26, 7, 1}, m.end_to_end_flow_control);
  io.Bits({27, 0, 3}, m.rnr_retry_count);
  io.Bits({27, 3, 1}, m.srq);
  io.Reserved({27, 4, 4});
  io.Bits({28, 0, 64}, m.local_ca_guid);
  io.Bytes(36, m.private_data);
}

// RTU (IBTA 12.6.9).
template <typename Io, Is<Rtu> M>
void Fields(const Io& io, M& m) {
  io.Bits({0, 0, 32}, m.local_comm_id);
  io.Bits({4, 0, 32}, m.remote_comm_id);
  io.Bytes(8, m.private_data);
}

// DREQ (IBTA 12.6.10).
template <typename Io, Is<Dreq> M>
void Fields(const Io& io, M& m) {
  io.Bits({0, 0, 32}, m.local_comm_id);
  io.Bits({4, 0, 32}, m.remote_comm_id);
  io.Bits({8, 0, 24}, m.remote_qpn_eecn);
  io.Reserved({11, 0, 8});
  io.Bytes(12, m.private_data);
}

// DREP (IBTA 12.6.11).
template <typename Io, Is<Drep> M>
void Fields(const Io& io, M& m) {
  io.Bits({0, 0, 32}, m.local_comm_id);
  io.Bits({4, 0, 32}, m.remote_comm_id);
  io.Bytes(8, m.private_data);
}

// SIDR_REQ (IBTA 12.11.1).
template <typename Io, Is<SidrReq> M>
void Fields(const Io& io, M& m) {
  io.Bits({0, 0, 32}, m.request_id);
  io.Bits({4, 0, 16}, m.partition_key);
  io.Reserved({6, 0, 16});
  io.Bits({8, 0, 64}, m.service_id);
  io.Bytes(16, m.private_data);
}

// SIDR_REP (IBTA 12.11.2).
template <typename Io, Is<SidrRep> M>
void Fields(const Io& io, M& m) {
  io.Bits({0, 0, 32}, m.request_id);
  io.Bits({4, 0, 8}, m.status);
  io.Bits({5, 0, 8}, m.additional_info_length);
  io.Reserved({6, 0, 16});  // ECE's vendor ID, high 16 bits (see above)
  io.Bits({8, 0, 24}, m.qpn);
  io.Reserved({11, 0, 8});  // ... low byte
  io.Bits({12, 0, 64}, m.service_id);
  io.Bits({20, 0, 32}, m.qkey);
  io.Bytes(24, m.class_port_info);
  io.Bytes(96, m.private_data);
}

// The attribute ID of each message type (IBTA Table 213).
template <typename T>
constexpr CmAttr kAttrOf = CmAttr::kClassPortInfo;
template <>
constexpr CmAttr kAttrOf<Req> = CmAttr::kReq;
template <>
constexpr CmAttr kAttrOf<Mra> = CmAttr::kMra;
template <>
constexpr CmAttr kAttrOf<Rej> = CmAttr::kRej;
template <>
constexpr CmAttr kAttrOf<Rep> = CmAttr::kRep;
template <>
constexpr CmAttr kAttrOf<Rtu> = CmAttr::kRtu;
template <>
constexpr CmAttr kAttrOf<Dreq> = CmAttr::kDreq;
template <>
constexpr CmAttr kAttrOf<Drep> = CmAttr::kDrep;
template <>
constexpr CmAttr kAttrOf<SidrReq> = CmAttr::kSidrReq;
template <>
constexpr CmAttr kAttrOf<SidrRep> = CmAttr::kSidrRep;

template <typename T>
CmMessage ParsePayload(const FieldReader& payload) {
  T message;
  Fields(payload, message);
  return message;
}

// The CM's header (IBTA 13.4.3): base version 1, class 0x07, class version 2, method
// Send, the only method the CM sends its messages with (chapter 12).
absl::Status CheckHeader(const MadHeader& h) {
  if (h.base_version != kBaseVersion) {
    return absl::InvalidArgumentError(
        absl::StrFormat("CM MAD: base version %u, not %u", h.base_version, kBaseVersion));
  }
  if (h.mgmt_class != kMgmtClassCm) {
    return absl::InvalidArgumentError(
        absl::StrFormat("CM MAD: management class 0x%02x, not the CM's", h.mgmt_class));
  }
  if (h.class_version != kCmClassVersion) {
    return absl::InvalidArgumentError(
        absl::StrFormat("CM MAD: class version %u, not %u", h.class_version, kCmClassVersion));
  }
  if (h.method != kMethodSend) {
    return absl::InvalidArgumentError(absl::StrFormat("CM MAD: method 0x%02x, not Send", h.method));
  }
  return absl::OkStatus();
}

// The message an attribute ID names. Unimplemented for the CM's attributes this CM does
// not handle; InvalidArgument for an ID the CM class does not define (IBTA Table 213).
absl::StatusOr<CmMessage> ParseMessage(uint16_t attr_id, const FieldReader& payload) {
  switch (static_cast<CmAttr>(attr_id)) {
    case CmAttr::kReq:
      return ParsePayload<Req>(payload);
    case CmAttr::kMra:
      return ParsePayload<Mra>(payload);
    case CmAttr::kRej:
      return ParsePayload<Rej>(payload);
    case CmAttr::kRep:
      return ParsePayload<Rep>(payload);
    case CmAttr::kRtu:
      return ParsePayload<Rtu>(payload);
    case CmAttr::kDreq:
      return ParsePayload<Dreq>(payload);
    case CmAttr::kDrep:
      return ParsePayload<Drep>(payload);
    case CmAttr::kSidrReq:
      return ParsePayload<SidrReq>(payload);
    case CmAttr::kSidrRep:
      return ParsePayload<SidrRep>(payload);
    case CmAttr::kClassPortInfo:
    case CmAttr::kLap:
    case CmAttr::kApr:
      return absl::UnimplementedError(
          absl::StrFormat("CM MAD: attribute 0x%04x is not handled", attr_id));
  }
  return absl::InvalidArgumentError(absl::StrFormat("CM MAD: unknown attribute 0x%04x", attr_id));
}

}  // namespace

absl::StatusOr<Mad> ParseMad(std::span<const uint8_t> bytes) {
  if (bytes.size() < kMadSize) {
    return absl::InvalidArgumentError(
        absl::StrFormat("CM MAD: %u bytes, shorter than a MAD", bytes.size()));
  }
  const std::span<const uint8_t> mad = bytes.first(kMadSize);
  MadHeader header;
  HeaderFields(FieldReader(mad.first(kMadHeaderSize)), header);
  if (absl::Status st = CheckHeader(header); !st.ok()) return st;
  absl::StatusOr<CmMessage> message =
      ParseMessage(header.attr_id, FieldReader(mad.subspan(kMadHeaderSize)));
  if (!message.ok()) return message.status();
  return Mad{header, *std::move(message)};
}

CmAttr AttrOf(const CmMessage& message) {
  return std::visit([](const auto& m) { return kAttrOf<std::decay_t<decltype(m)>>; }, message);
}

void BuildMad(const MadHeader& header, const CmMessage& message, std::span<uint8_t, kMadSize> out) {
  std::fill(out.begin(), out.end(), uint8_t{0});
  MadHeader h = header;
  h.attr_id = static_cast<uint16_t>(AttrOf(message));
  HeaderFields(FieldWriter(out.first(kMadHeaderSize)), h);
  const FieldWriter payload(out.subspan(kMadHeaderSize));
  std::visit([&payload](const auto& m) { Fields(payload, m); }, message);
}

}  // namespace vrdma::cm::wire
