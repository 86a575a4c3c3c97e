// The CRC-32 engines behind Crc32Update, exposed so tests and benchmarks can run
// each one directly. Same contract as Crc32Update: raw state, no inversions.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vrdma::driver::wire::internal {

// Slicing-by-8 tables; any CPU.
uint32_t Crc32Table(uint32_t state, const void* data, size_t len);

// Carry-less multiplication folding (PCLMULQDQ); call only if CpuHasClmul().
uint32_t Crc32Clmul(uint32_t state, const void* data, size_t len);

bool CpuHasClmul();

// The same folding four lanes at a time on 512-bit registers (AVX-512 VPCLMULQDQ); call
// only if CpuHasVpclmul().
uint32_t Crc32Vpclmul(uint32_t state, const void* data, size_t len);

bool CpuHasVpclmul();

// Below this many bytes Crc32Update does not use the VPCLMULQDQ engine.
inline constexpr size_t kVpclmulMinLen = 256;

// Below this many bytes Crc32Update uses the tables even on a PCLMULQDQ CPU.
inline constexpr size_t kClmulMinLen = 64;

}  // namespace vrdma::driver::wire::internal
