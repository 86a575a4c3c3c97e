// Moving pages under the application's other threads (DESIGN.md, "Memory").
//
// Registration copies private pages into a memfd and maps it over them; deregistration
// copies them back into private memory. A write another thread makes between the copy and
// the remap would be undone by the remap: on a NIC, pinning does not move pages at all, so
// to the other threads the two steps must look like one. A remap window makes them so:
//
// - the range is write-protected (mprotect) for the time of the copy and the remap;
// - a thread that writes into it meanwhile takes SIGSEGV, and the provider's handler makes
//   it wait (a futex) until the window closes, then returns: the write is made again, on the
//   pages now mapped there;
// - the copy and the remap run on a stack of the provider's own (makecontext), with the
//   signals the thread can defer blocked: the registering thread's stack, or a handler's
//   frames, may lie in the range it moves (a buffer on the stack);
// - faults the window did not cause go to the handler installed before the provider's
//   (or the default action), so an application's own SIGSEGV handling is kept. The
//   provider's handler goes back in front at each window if the program replaced it.
//
// A system call another thread makes that writes into the range during the window (read()
// into a buffer on the same page) fails with EFAULT rather than waiting: the kernel does
// not raise SIGSEGV for it. That is the one difference left from a NIC.
#pragma once

#include <cstdint>

namespace vrdma::provider {

// Runs `move(arg)` in a remap window over [lo, hi) (page-aligned), whose pages have
// protection `prot`; returns what `move` returns (0 or an errno). `move` runs on the
// provider's stack and must leave [lo, hi) mapped with `prot` (done) or as it found it
// (failed; the window then restores `prot`); it must not allocate (a thread stopped in
// the window may hold the allocator's lock) and must not write into [lo, hi). One window
// at a time: the memfd table's lock is held (mr_share.h). Allocation-free.
int InRemapWindow(uint64_t lo, uint64_t hi, int prot, int (*move)(void*), void* arg);

}  // namespace vrdma::provider
