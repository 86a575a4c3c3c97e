#include "driver/res/fault_guard.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <mutex>

namespace vrdma::driver::fault_guard {

std::atomic<uint64_t> g_generation{0};

namespace {

static_assert(std::atomic<uint64_t>::is_always_lock_free &&
                  std::atomic<uintptr_t>::is_always_lock_free &&
                  std::atomic<uint32_t>::is_always_lock_free,
              "the SIGBUS handler may only touch lock-free atomics");

// A slot is live while `end` is non-zero: AddRange publishes begin, then end (release);
// RemoveRange clears end first. The handler reads end, then begin.
struct Range {
  std::atomic<uintptr_t> begin{0};
  std::atomic<uintptr_t> end{0};
  std::atomic<uintptr_t> repair_unit{0};  // 0: the base page size
  std::atomic<uint32_t> faulted{0};
  std::atomic<uint32_t> used{0};
};

Range g_ranges[kMaxRanges];
std::atomic<uint32_t> g_high{0};  // slots at or above are unused
std::atomic<bool> g_installed{false};
struct sigaction g_previous;  // the action before Install (for faults not ours)
uintptr_t g_page = 4096;

// A page of private zeros over the `size`-aligned block holding addr (a raw system call:
// async-signal-safe).
bool MapZeros(uintptr_t addr, uintptr_t size) {
  const uintptr_t page = addr & ~(size - 1);
  // Every argument of the variadic syscall() as a long: the kernel reads six whole
  // registers (an int 0 as the sixth, the offset, leaves garbage in its upper half).
  long p = syscall(SYS_mmap, page, size, static_cast<long>(PROT_READ | PROT_WRITE),
                   static_cast<long>(MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED), -1L, 0L);
  return p == static_cast<long>(page);
}

// Async-signal-safe throughout: atomics that are lock-free, raw system calls.
void OnSigbus(int sig, siginfo_t* info, void* ctx) {
  const uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
  // si_code > 0: raised by the kernel for an access (not kill()/raise()/sigqueue()).
  if (info->si_code > 0) {
    const uint32_t n = g_high.load(std::memory_order_acquire);
    for (uint32_t i = 0; i < n; ++i) {
      Range& r = g_ranges[i];
      const uintptr_t end = r.end.load(std::memory_order_acquire);
      if (end == 0 || addr >= end) continue;
      if (addr < r.begin.load(std::memory_order_acquire)) continue;
      // A page of private zeros over the lost one: the faulting instruction runs again
      // on it and the copy completes; the engine sees the generation move and fails the
      // operation and the MR.
      // In a hugetlbfs mapping one base page cannot be replaced (the kernel splits it
      // only at its huge-page boundaries): then the whole huge page around the fault,
      // which lies in the range's reservation (vdev/shm/memory_layout.h). The smallest
      // block the kernel accepts is that huge page: a range may hold 2 MiB and 1 GiB
      // pages, and a larger block than the faulting page's would cover other mappings.
      const uintptr_t unit = r.repair_unit.load(std::memory_order_relaxed);
      bool repaired = false;
      for (uintptr_t size = g_page; !repaired && size <= (unit > g_page ? unit : g_page);
           size <<= 1) {
        repaired = MapZeros(addr, size);
      }
      if (repaired) {
        r.faulted.store(1, std::memory_order_relaxed);
        g_generation.fetch_add(1, std::memory_order_release);
        return;
      }
      break;  // could not repair: die as before
    }
  }
  // Not client memory: a bug of the daemon (or a SIGBUS sent to it). Hand it to the
  // action installed before, or to the default one: a core dump at the fault.
  if ((g_previous.sa_flags & SA_SIGINFO) && g_previous.sa_sigaction) {
    g_previous.sa_sigaction(sig, info, ctx);
    return;
  }
  if (!(g_previous.sa_flags & SA_SIGINFO) && g_previous.sa_handler != SIG_DFL &&
      g_previous.sa_handler != SIG_IGN && g_previous.sa_handler != SIG_ERR) {
    g_previous.sa_handler(sig);
    return;
  }
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(SIGBUS, &dfl, nullptr);
  // A fault runs the instruction again and takes the default action; a signal sent by
  // a process is raised again (blocked until this handler returns).
  if (info->si_code <= 0) raise(SIGBUS);
}

}  // namespace

bool Install() {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  if (g_installed.load()) return true;
  g_page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  struct sigaction sa = {};
  sa.sa_sigaction = OnSigbus;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGBUS, &sa, &g_previous) != 0) return false;
  g_installed.store(true);
  return true;
}

bool Installed() { return g_installed.load(); }

int AddRange(const void* base, size_t len, size_t repair_unit) {
  if (len == 0) return -1;
  for (uint32_t i = 0; i < kMaxRanges; ++i) {
    uint32_t expected = 0;
    if (!g_ranges[i].used.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
      continue;
    }
    Range& r = g_ranges[i];
    r.faulted.store(0, std::memory_order_relaxed);
    r.repair_unit.store(repair_unit, std::memory_order_relaxed);
    r.begin.store(reinterpret_cast<uintptr_t>(base), std::memory_order_release);
    r.end.store(reinterpret_cast<uintptr_t>(base) + len, std::memory_order_release);
    uint32_t high = g_high.load(std::memory_order_relaxed);
    while (high < i + 1 && !g_high.compare_exchange_weak(high, i + 1, std::memory_order_release)) {
    }
    return static_cast<int>(i);
  }
  return -1;
}

void RemoveRange(int slot) {
  if (slot < 0 || static_cast<uint32_t>(slot) >= kMaxRanges) return;
  Range& r = g_ranges[slot];
  r.end.store(0, std::memory_order_release);
  r.begin.store(0, std::memory_order_release);
  r.faulted.store(0, std::memory_order_relaxed);
  r.used.store(0, std::memory_order_release);
}

void ForEachFaulted(absl::FunctionRef<void(uintptr_t begin, uintptr_t end)> f) {
  const uint32_t n = g_high.load(std::memory_order_acquire);
  for (uint32_t i = 0; i < n; ++i) {
    Range& r = g_ranges[i];
    if (!r.faulted.load(std::memory_order_acquire)) continue;
    const uintptr_t end = r.end.load(std::memory_order_acquire);
    const uintptr_t begin = r.begin.load(std::memory_order_acquire);
    if (end != 0 && begin < end) f(begin, end);
  }
}

bool Faulted(const void* p, size_t len) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  bool hit = false;
  ForEachFaulted([&](uintptr_t begin, uintptr_t end) { hit |= a < end && a + len > begin; });
  return hit;
}

}  // namespace vrdma::driver::fault_guard
