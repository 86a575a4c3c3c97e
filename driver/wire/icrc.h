// Invariant CRC of RoCE packets (IBTA 7.8.1 and annexes A16 / A17.8).
#pragma once

#include <cstddef>
#include <cstdint>

#include "driver/wire/headers.h"

namespace vrdma::driver::wire {

// CRC-32 (IEEE 802.3 polynomial, reflected 0xEDB88320) running state: no initial or
// final inversion here, so pieces can be chained. Table-driven (slicing) with a
// carry-less-multiply folding path on CPUs that have PCLMULQDQ.
uint32_t Crc32Update(uint32_t state, const void* data, size_t len);

// ICRC of a frame whose network header starts at `l3_off` and whose ICRC occupies
// the last 4 bytes of `frame_len`; variant fields are masked to ones as the spec says.
uint32_t ComputeIcrc(const uint8_t* frame, uint32_t l3_off, uint32_t frame_len, NetworkType type);

// The same ICRC for a frame in pieces: its headers in frame[0, hdr_end), then
// `payload_len` bytes at `payload`, then `pad` zero bytes (a zero-copy frame whose
// payload stays in client memory).
uint32_t ComputeIcrcGather(const uint8_t* frame, uint32_t l3_off, uint32_t hdr_end,
                           const uint8_t* payload, uint32_t payload_len, uint32_t pad,
                           NetworkType type);

}  // namespace vrdma::driver::wire
