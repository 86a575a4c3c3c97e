// Invariant CRC of RoCE packets (IBTA 7.8.1 and annexes A16 / A17.8).
#pragma once

#include <cstddef>
#include <cstdint>

#include "driver/wire/headers.h"

namespace vrdma::wire {

// CRC-32 (IEEE 802.3 polynomial, reflected 0xEDB88320) running state: no initial or
// final inversion here, so pieces can be chained. Table-driven (slicing) with a
// carry-less-multiply folding path on CPUs that have PCLMULQDQ.
uint32_t Crc32Update(uint32_t state, const void* data, size_t len);

// ICRC of a frame whose network header starts at `l3_off` and whose ICRC occupies
// the last 4 bytes of `frame_len`; variant fields are masked to ones as the spec says.
uint32_t ComputeIcrc(const uint8_t* frame, uint32_t l3_off, uint32_t frame_len, NetworkType type);

}  // namespace vrdma::wire
