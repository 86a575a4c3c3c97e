#include "vdev/provider/remap_window.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "vdev/protocol/procmap_query.h"

namespace vrdma::provider {
namespace {

constexpr size_t kStackBytes = 256 * 1024;

// Odd while a window is open; the range of the open window, or of the last one.
std::atomic<uint32_t> g_generation{0};
std::atomic<uint64_t> g_lo{0}, g_hi{0};
std::atomic<long> g_mover{0};  // the thread moving the pages (its TID)
struct sigaction g_previous;   // the SIGSEGV action the provider's handler stands in front of

struct Job {
  uint64_t lo, hi;
  int prot;
  int (*move)(void*);
  void* arg;
  int result;
};
Job g_job;

// libc's own sigaction(), found once. UCX's libucs defines sigaction() and signal() over
// libc's and, while its error handling is on (UCX_HANDLE_ERRORS, on by default), ignores
// changes to the signals it handles, SIGSEGV among them: through it the provider's handler
// would never be installed, and a thread writing in a window would die in UCX's.
using SigactionFn = int (*)(int, const struct sigaction*, struct sigaction*);
SigactionFn g_sigaction = nullptr;
SigactionFn LibcSigaction() {
  void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  void* own = libc ? dlsym(libc, "sigaction") : nullptr;
  if (libc) dlclose(libc);
  return own ? reinterpret_cast<SigactionFn>(own) : &::sigaction;
}
ucontext_t g_caller, g_window;
void* g_stack = nullptr;

long Tid() { return syscall(SYS_gettid); }

// x86-64 says whether a fault was a write (page fault error code, bit 1); elsewhere every
// access fault in a range the provider protected is taken for one.
bool WasWrite(void* context) {
#if defined(__x86_64__)
  return (static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_ERR] & 2) != 0;
#else
  (void)context;
  return true;
#endif
}

// Whether `addr` lies in a writable mapping now (PROCMAP_QUERY; true where the kernel cannot
// say). Async-signal-safe.
bool WritableNow(uint64_t addr) {
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;
  proto::ProcmapQuery q;
  int err = proto::QueryMappingFrom(fd, addr, nullptr, 0, &q);
  close(fd);
  if (err == ENOTTY || err == EINVAL) return true;
  return err == 0 && q.vma_start <= addr && (q.vma_flags & proto::kVmaWritable);
}

// A fault the window did not cause: as if the provider's handler were not there.
void PassOn(int sig, siginfo_t* info, void* context) {
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction) g_previous.sa_sigaction(sig, info, context);
    return;
  }
  if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    g_previous.sa_handler(sig);
    return;
  }
  // The default action: a fault happens again when the instruction is retried, a signal
  // someone sent is sent again.
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  g_sigaction(sig, &dfl, nullptr);
  if (info->si_code <= 0) raise(sig);
}

void OnSegv(int sig, siginfo_t* info, void* context) {
  const int saved_errno = errno;
  const auto addr = reinterpret_cast<uint64_t>(info->si_addr);
  for (;;) {
    const uint32_t generation = g_generation.load(std::memory_order_acquire);
    const bool in_range = info->si_code == SEGV_ACCERR &&
                          addr >= g_lo.load(std::memory_order_relaxed) &&
                          addr < g_hi.load(std::memory_order_relaxed);
    if (in_range && (generation & 1) && Tid() != g_mover.load(std::memory_order_relaxed)) {
      // Wait for the window to close, then make the write again.
      while (g_generation.load(std::memory_order_acquire) == generation) {
        // (each argument of the variadic syscall() as a long: the kernel reads six registers)
        syscall(SYS_futex, &g_generation, static_cast<long>(FUTEX_WAIT_PRIVATE),
                static_cast<long>(generation), nullptr, nullptr, 0L);
      }
      errno = saved_errno;
      return;
    }
    if (!in_range || (generation & 1) || !WasWrite(context)) break;
    if (WritableNow(addr)) {
      errno = saved_errno;  // raised while a window was open, handled after it closed
      return;
    }
    // Not writable now: a fault of the program's own, unless the next window opened (and
    // write-protected the range) after `generation` was read. Then it is that window's.
    if (g_generation.load(std::memory_order_acquire) == generation) break;
  }
  errno = saved_errno;
  PassOn(sig, info, context);
}

// The provider's handler in front: installed at the first window, and again if the
// program has installed its own since (whose handler then gets the faults that are not
// the window's).
int HandlerInFront() {
  struct sigaction now;
  if (!g_sigaction) g_sigaction = LibcSigaction();
  if (g_sigaction(SIGSEGV, nullptr, &now) != 0) return errno;
  if ((now.sa_flags & SA_SIGINFO) && now.sa_sigaction == OnSegv) return 0;
  struct sigaction ours = {};
  ours.sa_sigaction = OnSegv;
  ours.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
  sigemptyset(&ours.sa_mask);
  g_previous = now;
  return g_sigaction(SIGSEGV, &ours, nullptr) == 0 ? 0 : errno;
}

// On the provider's stack: protect, move, and give the protection back if the move failed.
void RunWindow() {
  Job& j = g_job;
  auto* lo = reinterpret_cast<void*>(j.lo);
  if (mprotect(lo, j.hi - j.lo, j.prot & ~PROT_WRITE) != 0) {
    j.result = errno;
    return;
  }
  j.result = j.move(j.arg);
  if (j.result != 0) mprotect(lo, j.hi - j.lo, j.prot);
}

}  // namespace

int InRemapWindow(uint64_t lo, uint64_t hi, int prot, int (*move)(void*), void* arg) {
  // Pages no one can write need no window.
  if (!(prot & PROT_WRITE)) return move(arg);
  if (!g_stack) {
    void* s = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (s == MAP_FAILED) return errno;
    g_stack = s;
  }
  if (int err = HandlerInFront()) return err;
  g_job = Job{lo, hi, prot, move, arg, 0};
  if (getcontext(&g_window) != 0) return errno;
  g_window.uc_stack.ss_sp = g_stack;
  g_window.uc_stack.ss_size = kStackBytes;
  g_window.uc_link = &g_caller;
  // A handler of a signal this thread takes meanwhile could write into the range (its
  // frames, on a stack in the range): only the faults that cannot wait stay open.
  sigfillset(&g_window.uc_sigmask);
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGABRT}) {
    sigdelset(&g_window.uc_sigmask, sig);
  }
  makecontext(&g_window, RunWindow, 0);
  g_lo.store(lo, std::memory_order_relaxed);
  g_hi.store(hi, std::memory_order_relaxed);
  g_mover.store(Tid(), std::memory_order_relaxed);
  g_generation.fetch_add(1, std::memory_order_release);  // open
  const int err = swapcontext(&g_caller, &g_window) != 0 ? errno : g_job.result;
  g_generation.fetch_add(1, std::memory_order_release);  // closed
  syscall(SYS_futex, &g_generation, static_cast<long>(FUTEX_WAKE_PRIVATE),
          static_cast<long>(INT32_MAX), nullptr, nullptr, 0L);
  return err;
}

}  // namespace vrdma::provider
