// The communication manager's MADs on the wire (IBTA Vol 1, chapter 12, and the common
// MAD header of 13.4.2): parsed from and built into the 256 bytes a QP1 datagram carries.
// Every multi-byte field is big-endian on the wire and host order here; GIDs and private
// data are bytes. Parsing copies out of the buffer and checks what the spec fixes (base
// and class version, management class, method, attribute), never trusting a length.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <variant>

#include "absl/status/statusor.h"

namespace vrdma::cm::wire {

using Gid = std::array<uint8_t, 16>;

inline constexpr size_t kMadSize = 256;
inline constexpr size_t kMadHeaderSize = 24;
inline constexpr size_t kCmPayloadSize = kMadSize - kMadHeaderSize;  // 232

// MAD common header (IBTA 13.4.3): the CM's class (0x07), version 2, method Send.
inline constexpr uint8_t kBaseVersion = 1;
inline constexpr uint8_t kMgmtClassCm = 0x07;
inline constexpr uint8_t kCmClassVersion = 2;
inline constexpr uint8_t kMethodSend = 0x03;

// CM attribute IDs (IBTA Table 213).
enum class CmAttr : uint16_t {
  kClassPortInfo = 0x0001,
  kReq = 0x0010,
  kMra = 0x0011,
  kRej = 0x0012,
  kRep = 0x0013,
  kRtu = 0x0014,
  kDreq = 0x0015,
  kDrep = 0x0016,
  kSidrReq = 0x0017,
  kSidrRep = 0x0018,
  kLap = 0x0019,
  kApr = 0x001a,
};

struct MadHeader {
  uint8_t base_version = kBaseVersion;
  uint8_t mgmt_class = kMgmtClassCm;
  uint8_t class_version = kCmClassVersion;
  uint8_t method = kMethodSend;
  uint16_t status = 0;
  uint16_t class_specific = 0;
  uint64_t transaction_id = 0;
  uint16_t attr_id = 0;
  uint32_t attr_mod = 0;
  bool operator==(const MadHeader&) const = default;
};

// A path as REQ carries it (primary and alternate, IBTA 12.6.5). On RoCE the LIDs are
// the permissive LID 0xFFFF and the GIDs carry the addresses.
struct CmPath {
  uint16_t local_lid = 0xffff;
  uint16_t remote_lid = 0xffff;
  Gid local_gid{};
  Gid remote_gid{};
  uint32_t flow_label = 0;  // 20 bits
  uint8_t packet_rate = 0;  // 6 bits
  uint8_t traffic_class = 0;
  uint8_t hop_limit = 0;
  uint8_t sl = 0;  // 4 bits
  bool subnet_local = false;
  uint8_t local_ack_timeout = 0;  // 5 bits
  bool operator==(const CmPath&) const = default;
};

// Transport service types of REQ (IBTA Table 214).
inline constexpr uint8_t kServiceRc = 0;
inline constexpr uint8_t kServiceUc = 1;
inline constexpr uint8_t kServiceRd = 2;

inline constexpr size_t kReqPrivateData = 92;
inline constexpr size_t kMraPrivateData = 222;
inline constexpr size_t kRejPrivateData = 148;
inline constexpr size_t kRejAriLength = 72;
inline constexpr size_t kRepPrivateData = 196;
inline constexpr size_t kRtuPrivateData = 224;
inline constexpr size_t kDreqPrivateData = 220;
inline constexpr size_t kDrepPrivateData = 224;
inline constexpr size_t kSidrReqPrivateData = 216;
inline constexpr size_t kSidrRepPrivateData = 136;
inline constexpr size_t kSidrRepInfoLength = 72;

struct Req {
  uint32_t local_comm_id = 0;
  uint64_t service_id = 0;
  uint64_t local_ca_guid = 0;
  uint32_t local_qkey = 0;
  uint32_t local_qpn = 0;  // 24 bits
  uint8_t responder_resources = 0;
  uint32_t local_eecn = 0;  // 24 bits
  uint8_t initiator_depth = 0;
  uint32_t remote_eecn = 0;                     // 24 bits
  uint8_t remote_cm_response_timeout = 0;       // 5 bits
  uint8_t transport_service_type = kServiceRc;  // 2 bits
  bool end_to_end_flow_control = false;
  uint32_t starting_psn = 0;              // 24 bits
  uint8_t local_cm_response_timeout = 0;  // 5 bits
  uint8_t retry_count = 0;                // 3 bits
  uint16_t partition_key = 0xffff;
  uint8_t path_mtu = 0;  // 4 bits, enum ibv_mtu
  bool rdc_exists = false;
  uint8_t rnr_retry_count = 0;  // 3 bits
  uint8_t max_cm_retries = 0;   // 4 bits
  bool srq = false;
  uint8_t extended_transport_type = 0;  // 3 bits
  CmPath primary;
  CmPath alternate{.local_lid = 0, .remote_lid = 0};  // all zero when there is none
  std::array<uint8_t, kReqPrivateData> private_data{};
  bool operator==(const Req&) const = default;
};

// MRA's "message MRAed" (IBTA Table 218).
inline constexpr uint8_t kMraReq = 0;
inline constexpr uint8_t kMraRep = 1;
inline constexpr uint8_t kMraLap = 2;

struct Mra {
  uint32_t local_comm_id = 0;
  uint32_t remote_comm_id = 0;
  uint8_t message_mraed = kMraReq;  // 2 bits
  uint8_t service_timeout = 0;      // 5 bits
  std::array<uint8_t, kMraPrivateData> private_data{};
  bool operator==(const Mra&) const = default;
};

// REJ's "message rejected" (IBTA Table 220).
inline constexpr uint8_t kRejectedReq = 0;
inline constexpr uint8_t kRejectedRep = 1;
inline constexpr uint8_t kRejectedOther = 2;

// REJ reasons (IBTA Table 221), the ones a CM on RoCE gives.
enum class RejReason : uint16_t {
  kNoQp = 1,
  kNoEec = 2,
  kNoResources = 3,
  kTimeout = 4,
  kUnsupportedReq = 5,
  kInvalidCommId = 6,
  kInvalidCommInstance = 7,
  kInvalidServiceId = 8,
  kInvalidTransportType = 9,
  kStaleConnection = 10,
  kRdcNotExist = 11,
  kInvalidGid = 12,
  kInvalidLid = 13,
  kInvalidSl = 14,
  kInvalidTrafficClass = 15,
  kInvalidHopLimit = 16,
  kInvalidPacketRate = 17,
  kInvalidAltGid = 18,
  kInvalidAltLid = 19,
  kInvalidAltSl = 20,
  kInvalidAltTrafficClass = 21,
  kInvalidAltHopLimit = 22,
  kInvalidAltPacketRate = 23,
  kPortCmRedirect = 24,
  kPortRedirect = 25,
  kInvalidMtu = 26,
  kInsufficientRespResources = 27,
  kConsumerReject = 28,
  kInvalidRnrRetry = 29,
  kDuplicateLocalCommId = 30,
  kInvalidClassVersion = 31,
  kInvalidFlowLabel = 32,
  kInvalidAltFlowLabel = 33,
  kVendorOptionNotSupported = 35,
};

struct Rej {
  uint32_t local_comm_id = 0;
  uint32_t remote_comm_id = 0;
  uint8_t message_rejected = kRejectedReq;  // 2 bits
  uint8_t reject_info_length = 0;           // 7 bits
  uint16_t reason = 0;
  std::array<uint8_t, kRejAriLength> ari{};
  std::array<uint8_t, kRejPrivateData> private_data{};
  bool operator==(const Rej&) const = default;
};

struct Rep {
  uint32_t local_comm_id = 0;
  uint32_t remote_comm_id = 0;
  uint32_t local_qkey = 0;
  uint32_t local_qpn = 0;     // 24 bits
  uint32_t local_eecn = 0;    // 24 bits
  uint32_t starting_psn = 0;  // 24 bits
  uint8_t responder_resources = 0;
  uint8_t initiator_depth = 0;
  uint8_t target_ack_delay = 0;   // 5 bits
  uint8_t failover_accepted = 0;  // 2 bits
  bool end_to_end_flow_control = false;
  uint8_t rnr_retry_count = 0;  // 3 bits
  bool srq = false;
  uint64_t local_ca_guid = 0;
  std::array<uint8_t, kRepPrivateData> private_data{};
  bool operator==(const Rep&) const = default;
};

struct Rtu {
  uint32_t local_comm_id = 0;
  uint32_t remote_comm_id = 0;
  std::array<uint8_t, kRtuPrivateData> private_data{};
  bool operator==(const Rtu&) const = default;
};

struct Dreq {
  uint32_t local_comm_id = 0;
  uint32_t remote_comm_id = 0;
  uint32_t remote_qpn_eecn = 0;  // 24 bits
  std::array<uint8_t, kDreqPrivateData> private_data{};
  bool operator==(const Dreq&) const = default;
};

struct Drep {
  uint32_t local_comm_id = 0;
  uint32_t remote_comm_id = 0;
  std::array<uint8_t, kDrepPrivateData> private_data{};
  bool operator==(const Drep&) const = default;
};

struct SidrReq {
  uint32_t request_id = 0;
  uint16_t partition_key = 0xffff;
  uint64_t service_id = 0;
  std::array<uint8_t, kSidrReqPrivateData> private_data{};
  bool operator==(const SidrReq&) const = default;
};

// SIDR_REP status (IBTA Table 225).
enum class SidrStatus : uint8_t {
  kValid = 0,
  kServiceIdNotSupported = 1,
  kRejected = 2,
  kNoQp = 3,
  kRedirect = 4,
  kUnsupportedVersion = 5,
};

struct SidrRep {
  uint32_t request_id = 0;
  uint8_t status = 0;
  uint8_t additional_info_length = 0;
  uint32_t qpn = 0;  // 24 bits
  uint64_t service_id = 0;
  uint32_t qkey = 0;
  std::array<uint8_t, kSidrRepInfoLength> class_port_info{};
  std::array<uint8_t, kSidrRepPrivateData> private_data{};
  bool operator==(const SidrRep&) const = default;
};

using CmMessage = std::variant<Req, Mra, Rej, Rep, Rtu, Dreq, Drep, SidrReq, SidrRep>;

struct Mad {
  MadHeader header;
  CmMessage message;
  bool operator==(const Mad&) const = default;
};

// Parses one CM MAD. InvalidArgument for a short buffer or a header that is not the CM's
// (base version 1, class 0x07, class version 2, method Send); Unimplemented for an
// attribute this CM does not handle (ClassPortInfo, LAP, APR). Bytes past kMadSize are
// ignored; reserved bits are not checked (IBTA: the receiver ignores them).
absl::StatusOr<Mad> ParseMad(std::span<const uint8_t> bytes);

// The attribute ID of a message.
CmAttr AttrOf(const CmMessage& message);

// Builds a CM MAD: `header` with its attr_id set from `message`, reserved fields zero.
void BuildMad(const MadHeader& header, const CmMessage& message, std::span<uint8_t, kMadSize> out);

}  // namespace vrdma::cm::wire
