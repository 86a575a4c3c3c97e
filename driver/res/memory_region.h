// Protection domains and memory regions (IBTA 10.6): key checks and IOVA translation.
#pragma once

#include <cstdint>

struct rte_mbuf_ext_shared_info;

namespace vrdma::driver {

struct ProtectionDomain {
  uint32_t owner = 0;  // opaque tag of the creator (vdev / client), for accounting
};

struct MemoryRegion {
  uint32_t pd = 0;
  uint64_t iova = 0;  // start address in the consumer's address space
  uint64_t length = 0;
  uint8_t* host = nullptr;  // where the engine reaches iova
  int access = 0;           // IBV_ACCESS_* flags
  uint32_t lkey = 0;
  uint32_t rkey = 0;
  bool invalidated = false;  // by SEND with Invalidate
  // A page of the client memory behind it vanished under the engine (driver/res/
  // fault_guard.h): every later access fails, as for an invalid key.
  bool poisoned = false;
  // Memory windows bound to it: it can be neither deregistered nor reregistered while
  // any is (IBTA 10.6.7.2.6).
  uint32_t windows = 0;
  uint32_t owner = 0;
  // Set when frames may carry this MR's bytes as external buffers (zero-copy transmit):
  // the reference count that keeps the memory mapped while a frame still points at it.
  rte_mbuf_ext_shared_info* tx_share = nullptr;
};

// Memory keys: slot index in bits 31..8, a generation byte in bits 7..0.
inline uint32_t MakeKey(uint32_t index, uint8_t generation) { return (index << 8) | generation; }
inline uint32_t KeyIndex(uint32_t key) { return key >> 8; }
inline uint8_t KeyGeneration(uint32_t key) { return static_cast<uint8_t>(key & 0xff); }

// Host address of [va, va + len) inside `mr`, or nullptr when out of bounds.
// Overflow-safe for any 64-bit va and len.
inline uint8_t* TranslateMr(const MemoryRegion& mr, uint64_t va, uint64_t len) {
  if (va < mr.iova) return nullptr;
  uint64_t off = va - mr.iova;
  if (off > mr.length || len > mr.length - off) return nullptr;
  return mr.host + off;
}

}  // namespace vrdma::driver
