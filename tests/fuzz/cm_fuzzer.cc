// libFuzzer target: arbitrary bytes into the CM wire codec (cm/wire). What ParseMad or
// ParseCmaHeader accepts is built again and parsed again, and must come back equal; the
// bytes built from it are a fixed point (built again, they do not change). An input is
// tried as it is and, so that short inputs reach the message tables, also laid over a
// valid CM header of each attribute.
#include <array>
#include <cstdint>
#include <cstring>
#include <span>

#include "cm/wire/cm_messages.h"
#include "cm/wire/cma_header.h"

namespace {

using namespace vrdma::cm::wire;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

void CheckCmaHeader(std::span<const uint8_t> bytes) {
  absl::StatusOr<CmaHeader> parsed = ParseCmaHeader(bytes);
  if (!parsed.ok()) return;
  std::array<uint8_t, kCmaHeaderSize> built{};
  BuildCmaHeader(*parsed, built);
  absl::StatusOr<CmaHeader> again = ParseCmaHeader(built);
  Check(again.ok() && *again == *parsed);
  std::array<uint8_t, kCmaHeaderSize> rebuilt{};
  BuildCmaHeader(*again, rebuilt);
  Check(rebuilt == built);
}

void CheckServiceId(uint64_t service_id) {
  uint16_t ps = 0;
  uint16_t port = 0;
  if (ParseIpServiceId(service_id, &ps, &port)) Check(ServiceIdOf(ps, port) == service_id);
}

void CheckMad(std::span<const uint8_t> bytes) {
  absl::StatusOr<Mad> parsed = ParseMad(bytes);
  if (!parsed.ok()) return;
  Check(parsed->header.attr_id == static_cast<uint16_t>(AttrOf(parsed->message)));
  std::array<uint8_t, kMadSize> built{};
  BuildMad(parsed->header, parsed->message, built);
  absl::StatusOr<Mad> again = ParseMad(built);
  Check(again.ok() && *again == *parsed);
  std::array<uint8_t, kMadSize> rebuilt{};
  BuildMad(again->header, again->message, rebuilt);
  Check(rebuilt == built);

  if (const Req* req = std::get_if<Req>(&parsed->message)) {
    CheckCmaHeader(req->private_data);
    CheckServiceId(req->service_id);
  }
  if (const SidrReq* sidr = std::get_if<SidrReq>(&parsed->message)) {
    CheckCmaHeader(sidr->private_data);
    CheckServiceId(sidr->service_id);
  }
}

// The input over the payload of a MAD whose header is the CM's, attribute `attr`.
void CheckAsPayload(std::span<const uint8_t> bytes, uint16_t attr) {
  std::array<uint8_t, kMadSize> mad{};
  mad[0] = kBaseVersion;
  mad[1] = kMgmtClassCm;
  mad[2] = kCmClassVersion;
  mad[3] = kMethodSend;
  mad[16] = static_cast<uint8_t>(attr >> 8);
  mad[17] = static_cast<uint8_t>(attr);
  const size_t n = bytes.size() < kCmPayloadSize ? bytes.size() : kCmPayloadSize;
  if (n != 0) std::memcpy(mad.data() + kMadHeaderSize, bytes.data(), n);
  CheckMad(mad);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  CheckMad(bytes);
  CheckCmaHeader(bytes);
  if (size >= 1) {
    // The first byte picks the attribute (0x10..0x1a and a few beyond), the rest is payload.
    CheckAsPayload(bytes.subspan(1), static_cast<uint16_t>(0x10 + data[0] % 12));
  }
  if (size >= 8) {
    uint64_t service_id = 0;
    for (size_t i = 0; i < 8; ++i) service_id = (service_id << 8) | data[i];
    CheckServiceId(service_id);
  }
  return 0;
}
