// The fault guard: client memory the daemon maps (registered MRs) can lose pages under
// it — a file truncated, or any hole the first line (vdev/shm's classification and seal
// checks) failed to foresee — and a load or store on such a page raises SIGBUS, which
// would kill the daemon and every tenant's device with it. The guard keeps a fixed,
// lock-free table of the client ranges the daemon has mapped. Its SIGBUS handler, for a
// fault inside one of them, maps an anonymous page over the faulting page (so the
// interrupted copy completes, harmlessly), marks the range as faulted and bumps a global
// generation; for a fault anywhere else, it restores the default action so that a real
// daemon bug still crashes.
//
// The engine, after each copy to or from client memory, compares the generation with the
// one it last saw (one relaxed load: no system call, no lock); on a change it marks every
// MR over a faulted range poisoned (MemoryRegion::poisoned) and fails the operation as
// the spec says for an unusable memory region. vdev/shm (ClientMemory) registers the
// ranges; vrdmad installs the handler.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/functional/function_ref.h"

namespace vrdma::driver::fault_guard {

// At most this many client ranges (one per registration) at once.
inline constexpr uint32_t kMaxRanges = 1u << 16;

// Installs the SIGBUS handler, once per process (later calls do nothing). False when
// sigaction fails.
bool Install();
bool Installed();

// Adds [base, base + len) as client memory. Returns the slot to remove it with, or -1
// when the table is full (the caller must then refuse the mapping). `repair_unit` is the
// largest page size mapped in the range (a power of two): a lost page of a hugetlbfs
// mapping can only be replaced whole, aligned, as the kernel splits such a mapping only
// at huge-page boundaries.
int AddRange(const void* base, size_t len, size_t repair_unit = 0);
// Removes a range (before it is unmapped).
void RemoveRange(int slot);

// Faults repaired since the process started.
extern std::atomic<uint64_t> g_generation;
inline uint64_t Generation() {
  // The copy just before must not be moved after this load: the handler's update is
  // ordered with this thread's own accesses by a signal fence (a compiler barrier only).
  std::atomic_signal_fence(std::memory_order_seq_cst);
  return g_generation.load(std::memory_order_relaxed);
}

// Calls f(begin, end) for every registered range that has faulted since it was added.
void ForEachFaulted(absl::FunctionRef<void(uintptr_t begin, uintptr_t end)> f);

// Whether [p, p + len) lies inside a range that has faulted (slow: scans the table).
bool Faulted(const void* p, size_t len);

}  // namespace vrdma::driver::fault_guard
