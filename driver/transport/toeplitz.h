// The Toeplitz hash receive-side scaling uses (Microsoft's RSS specification, as NICs
// compute it): for every set bit of the input, the 32 key bits starting at that bit's
// position are XORed into the result.
#pragma once

#include <cstdint>

namespace vrdma::driver {

inline uint32_t Toeplitz(const uint8_t* key, uint32_t key_len, const uint8_t* in, uint32_t n) {
  uint32_t hash = 0;
  uint32_t window =
      key_len >= 4 ? static_cast<uint32_t>(key[0]) << 24 | key[1] << 16 | key[2] << 8 | key[3] : 0;
  for (uint32_t i = 0; i < n; ++i) {
    for (int b = 7; b >= 0; --b) {
      if (in[i] & (1u << b)) hash ^= window;
      // Shift the next key bit in (zeros past the key's end).
      uint32_t next_bit_index = (i + 4) * 8 + static_cast<uint32_t>(7 - b);
      uint32_t byte = next_bit_index / 8;
      uint32_t bit = byte < key_len ? (key[byte] >> (7 - next_bit_index % 8)) & 1u : 0;
      window = window << 1 | bit;
    }
  }
  return hash;
}

}  // namespace vrdma::driver
