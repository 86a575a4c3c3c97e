// The provider's registered-memory path (mr_share.cc, mr_private.cc, remap_window.cc) in
// this process: its /proc/self/maps parser, how it knows its own MR memfds, and ShareRange /
// ReleasePages on real memory (no daemon needed: they only remap pages).
#include "vdev/provider/mr_share.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/lib/huge_pages.h"
#include "tests/unit/vdev/shm/maps_corpus.h"

// A library that keeps SIGSEGV to itself, as UCX's libucs does while its error handling
// is on: sigaction() over libc's, which ignores changes to SIGSEGV while it is set.
std::atomic<bool> g_segv_kept{false};
extern "C" int sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  static auto* libc = reinterpret_cast<int (*)(int, const struct sigaction*, struct sigaction*)>(
      dlsym(RTLD_NEXT, "sigaction"));
  return libc(sig, sig == SIGSEGV && g_segv_kept ? nullptr : act, old);
}

namespace vrdma::provider {
namespace {

const uint64_t kPage = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));

TEST(ProviderMaps, ReadsTheLinesAsTheDaemonDoes) {
  for (const testing::MapsCase& c : testing::kMapsCorpus) {
    SCOPED_TRACE(c.line);
    std::string line(c.line);
    MapsLine m;
    ASSERT_TRUE(ParseMapsLine(line.data(), &m));
    EXPECT_EQ(m.start, c.start);
    EXPECT_EQ(m.end, c.end);
    EXPECT_EQ(m.offset, c.offset);
    EXPECT_EQ(m.inode, c.inode);
    EXPECT_EQ(m.readable, c.perms[0] == 'r');
    EXPECT_EQ(m.writable, c.perms[1] == 'w');
    EXPECT_EQ(m.shared, c.perms[3] == 's');
    EXPECT_EQ(std::string_view(m.path), c.path);
  }
  for (const char* bad : {"", "garbage", "7f2b4c000000-7f2b4c021000 rw-s 00000000 00:01",
                          "7f2b4c000000 rw-s 00000000 00:01 1 /x"}) {
    std::string line(bad);
    MapsLine m;
    EXPECT_FALSE(ParseMapsLine(line.data(), &m)) << bad;
  }
}

TEST(ProviderMaps, KnowsItsOwnMemfdsByExactName) {
  EXPECT_TRUE(IsMrMemfdPath("/memfd:vrdma-mr (deleted)"));
  EXPECT_TRUE(IsMrMemfdPath("/memfd:vrdma-mr"));
  // An application's memfds, with our name as a prefix or not, and other files.
  for (const char* other :
       {"/memfd:vrdma-mrx (deleted)", "/memfd:vrdma-mr-cache (deleted)", "/memfd:vrdma-m (deleted)",
        "/memfd:app (deleted)", "/memfd:vrdma-mr (deleted) ", "/memfd:vrdma-mr (deleted) (deleted)",
        "/tmp/memfd:vrdma-mr", "memfd:vrdma-mr", "/memfd:", "", "/SYSV00000000 (deleted)",
        "/dev/zero (deleted)", "[heap]"}) {
    EXPECT_FALSE(IsMrMemfdPath(other)) << other;
  }
}

// The maps entry of the mapping holding `addr`.
std::optional<std::string> PathOf(const void* addr, bool* shared = nullptr) {
  FILE* f = std::fopen("/proc/self/maps", "re");
  if (!f) return std::nullopt;
  char line[4096];
  std::optional<std::string> out;
  auto a = reinterpret_cast<uint64_t>(addr);
  while (std::fgets(line, sizeof line, f)) {
    MapsLine m;
    if (ParseMapsLine(line, &m) && a >= m.start && a < m.end) {
      out = m.path;
      if (shared) *shared = m.shared;
    }
  }
  std::fclose(f);
  return out;
}

// The resident bytes of the mapping holding `addr` (smaps Rss), or -1.
long long RssOf(const void* addr) {
  FILE* f = std::fopen("/proc/self/smaps", "re");
  if (!f) return -1;
  char line[4096];
  bool in = false;
  long long kb = -1;
  auto a = reinterpret_cast<uint64_t>(addr);
  while (std::fgets(line, sizeof line, f)) {
    MapsLine m;
    if (ParseMapsLine(line, &m)) {
      in = a >= m.start && a < m.end;
    } else if (in && std::sscanf(line, "Rss: %lld kB", &kb) == 1) {
      break;
    }
  }
  std::fclose(f);
  return kb < 0 ? -1 : kb * 1024;
}

void Fill(uint8_t* p, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(seed + i * 31);
}
bool Holds(const uint8_t* p, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != static_cast<uint8_t>(seed + i * 31)) return false;
  }
  return true;
}

// Leaves the stack below the caller full of ones, where its next callee's frame and
// outgoing arguments will be.
__attribute__((noinline)) void FillStackBelow() {
  volatile unsigned char junk[4096];
  for (auto& b : junk) b = 0xff;
}

// ReadOwnPages's system call goes through the variadic syscall(), whose seventh argument
// (the kernel's sixth, flags) is passed on the stack: passed as an int 0, its upper half
// was whatever the stack held there, and the kernel refused the call (EINVAL).
TEST(ProviderPages, ReadOwnPagesWhateverTheStackHeld) {
  std::vector<unsigned char> from(3 * 4096), to(from.size());
  for (size_t i = 0; i < from.size(); ++i) from[i] = static_cast<unsigned char>(i * 7);
  for (int round = 0; round < 16; ++round) {
    FillStackBelow();
    std::fill(to.begin(), to.end(), 0);
    ASSERT_EQ(ReadOwnPages(to.data(), from.data(), from.size()), 0) << "round " << round;
    ASSERT_EQ(to, from);
  }
}

// Each ShareRangeTest runs twice: looking the mappings up with PROCMAP_QUERY (where the
// kernel has it, Linux 6.11) and reading the maps file, as on older kernels.
class ShareRangeTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { SetUseProcmapQuery(GetParam()); }
  void TearDown() override { SetUseProcmapQuery(true); }
};
INSTANTIATE_TEST_SUITE_P(Lookups, ShareRangeTest, ::testing::Bool(), [](const auto& info) {
  return std::string(info.param ? "ProcmapQuery" : "MapsFile");
});

TEST_P(ShareRangeTest, PrivatePagesMoveToAMemfdAndBack) {
  const size_t len = 3 * kPage;
  auto* p = static_cast<uint8_t*>(
      mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(p, MAP_FAILED);
  Fill(p, len, 3);
  // A range from inside the first page to inside the last: whole pages are shared.
  SharedPages sp;
  ASSERT_EQ(ShareRange(reinterpret_cast<uintptr_t>(p) + 100, len - 200, &sp), 0);
  EXPECT_EQ(sp.page_base, reinterpret_cast<uint64_t>(p));
  EXPECT_EQ(sp.page_length, len);
  ASSERT_EQ(sp.segments.size(), 1u);
  EXPECT_EQ(sp.segments[0].range_offset, 0u);
  EXPECT_EQ(sp.segments[0].length, len);
  EXPECT_EQ(sp.segments[0].by_reference, 0u);
  ASSERT_EQ(sp.fds.size(), 1u);
  ASSERT_EQ(sp.inodes.size(), 1u);
  bool shared = false;
  EXPECT_EQ(PathOf(p + kPage, &shared), "/memfd:vrdma-mr (deleted)");
  EXPECT_TRUE(shared);
  // Same contents, and the memfd (what the daemon maps) is those very pages.
  EXPECT_TRUE(Holds(p, len, 3));
  std::memcpy(p + kPage, "app", 3);
  char got[3];
  ASSERT_EQ(pread(sp.fds[0], got, 3, static_cast<off_t>(sp.segments[0].file_offset + kPage)), 3);
  EXPECT_EQ(std::memcmp(got, "app", 3), 0);
  ASSERT_EQ(pwrite(sp.fds[0], "dmn", 3, static_cast<off_t>(sp.segments[0].file_offset)), 3);
  EXPECT_EQ(std::memcmp(p, "dmn", 3), 0);
  // A second registration of part of it reuses the memfd.
  SharedPages again;
  ASSERT_EQ(ShareRange(reinterpret_cast<uintptr_t>(p) + kPage, kPage, &again), 0);
  ASSERT_EQ(again.inodes.size(), 1u);
  EXPECT_EQ(again.inodes[0], sp.inodes[0]);
  EXPECT_EQ(again.segments[0].file_offset, sp.segments[0].file_offset + kPage);
  // Released by one: still shared; by both: private again, contents kept.
  ReleasePages(sp.inodes);
  EXPECT_EQ(PathOf(p), "/memfd:vrdma-mr (deleted)");
  Fill(p, len, 9);
  ReleasePages(again.inodes);
  shared = true;
  EXPECT_EQ(PathOf(p + kPage, &shared), "");
  EXPECT_FALSE(shared);
  EXPECT_TRUE(Holds(p, len, 9));
  munmap(p, len);
}

// Registers [addr, addr + len) and releases it `times` times while another thread
// increments the word at `word` (a read, then a write): how far the word ends behind the
// thread's own count, that is how many of its writes a remap undid.
uint64_t WritesLostWhileRegistering(uintptr_t addr, uint64_t len, volatile uint64_t* word,
                                    int times) {
  *word = 0;
  std::atomic<bool> stop{false};
  uint64_t made = 0;
  std::thread writer([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      *word = *word + 1;
      ++made;
    }
  });
  for (int i = 0; i < times; ++i) {
    SharedPages sp;
    const int err = ShareRange(addr, len, &sp);
    EXPECT_EQ(err, 0);
    if (err) break;
    ReleasePages(sp.inodes);
  }
  stop = true;
  writer.join();
  EXPECT_GT(made, 0u);
  return made - *word;
}

// Registration copies pages into a memfd and maps it over them, deregistration copies them
// back: to another thread the two steps must look like one, as a NIC's pinning does not
// move pages at all. A thread incrementing a word on the page (as a mutex's owner writes
// its lock word next to a small buffer another thread registers) loses no increment while
// the page is registered and released over and over: a write made between the copy and
// the remap would be undone by the remap.
TEST_P(ShareRangeTest, WritesOtherThreadsMakeMeanwhileAreKept) {
  const size_t len = 2 * kPage;
  auto* p = static_cast<uint8_t*>(
      mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(p, MAP_FAILED);
  // Only the buffer's first bytes, as a small heap buffer: its whole page moves.
  EXPECT_EQ(WritesLostWhileRegistering(reinterpret_cast<uintptr_t>(p) + kPage, 16,
                                       reinterpret_cast<volatile uint64_t*>(p + kPage + 64), 300),
            0u);
  munmap(p, len);
}

// The same under a library that ignores changes to SIGSEGV's handler (UCX's): the
// provider installs its handler all the same (else the writer would die of the fault).
TEST_P(ShareRangeTest, WritesAreKeptUnderALibraryKeepingSigsegv) {
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  ASSERT_EQ(sigaction(SIGSEGV, &dfl, nullptr), 0);  // the provider's handler gone
  g_segv_kept = true;
  auto* p = static_cast<uint8_t*>(
      mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(p, MAP_FAILED);
  EXPECT_EQ(WritesLostWhileRegistering(reinterpret_cast<uintptr_t>(p), 8,
                                       reinterpret_cast<volatile uint64_t*>(p + 128), 100),
            0u);
  g_segv_kept = false;
  munmap(p, kPage);
}

// A buffer on the registering thread's own stack, and the pages below it, where the
// registration's own frames go: they keep being written (the registration runs on the
// provider's stack while the pages are write-protected, and its callers' frames are not
// touched meanwhile), and the buffer comes through intact.
TEST_P(ShareRangeTest, ABufferOnTheCallersStack) {
  volatile uint8_t buf[256];
  for (size_t i = 0; i < sizeof buf; ++i) buf[i] = static_cast<uint8_t>(i * 7);
  const auto below = reinterpret_cast<uintptr_t>(&buf[0]) - 4 * kPage;
  SharedPages sp;
  ASSERT_EQ(ShareRange(below, 4 * kPage + sizeof buf, &sp), 0);
  EXPECT_EQ(PathOf(const_cast<uint8_t*>(&buf[0])), "/memfd:vrdma-mr (deleted)");
  EXPECT_EQ(PathOf(reinterpret_cast<void*>(below)), "/memfd:vrdma-mr (deleted)");
  buf[4] = 99;
  ReleasePages(sp.inodes);
  bool shared = true;
  EXPECT_NE(PathOf(const_cast<uint8_t*>(&buf[0]), &shared), "/memfd:vrdma-mr (deleted)");
  EXPECT_FALSE(shared);
  bool same = true;
  for (size_t i = 0; i < sizeof buf; ++i) {
    same &= buf[i] == (i == 4 ? 99 : static_cast<uint8_t>(i * 7));
  }
  EXPECT_TRUE(same);
}

// The provider's SIGSEGV handler (the remap window's) takes only the faults a window
// caused: a program's own handler still gets its faults, whether installed before the
// first registration or after, and a program without one still dies of the fault.
sigjmp_buf g_faulted;
void* g_fault_addr = nullptr;
void OnAppSegv(int, siginfo_t* info, void*) {
  g_fault_addr = info->si_addr;
  siglongjmp(g_faulted, 1);
}
// Whether writing to `target` reached OnAppSegv, with `target` as the fault's address.
bool AppHandlerTakes(volatile uint8_t* target) {
  g_fault_addr = nullptr;
  if (sigsetjmp(g_faulted, 1) == 0) {
    *target = 1;
    return false;
  }
  return g_fault_addr == const_cast<uint8_t*>(target);
}

TEST_P(ShareRangeTest, TheProgramsOwnFaultsStayItsOwn) {
  auto* ro = static_cast<volatile uint8_t*>(
      mmap(nullptr, kPage, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(ro, MAP_FAILED);
  auto* rw = static_cast<uint8_t*>(
      mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(rw, MAP_FAILED);
  struct sigaction app = {}, dfl = {};
  app.sa_sigaction = OnAppSegv;
  app.sa_flags = SA_SIGINFO;
  dfl.sa_handler = SIG_DFL;
  for (bool handler_first : {true, false}) {
    SCOPED_TRACE(handler_first ? "handler before the registration" : "handler after it");
    if (handler_first) {
      ASSERT_EQ(sigaction(SIGSEGV, &app, nullptr), 0);
    }
    SharedPages sp;
    // Registered where the fault will be: the window's last range, closed since.
    ASSERT_EQ(ShareRange(reinterpret_cast<uintptr_t>(rw), 8, &sp), 0);
    if (!handler_first) {
      // In place of the provider's, which goes back in front at the next window.
      ASSERT_EQ(sigaction(SIGSEGV, &app, nullptr), 0);
    }
    ReleasePages(sp.inodes);
    mprotect(rw, kPage, PROT_READ);
    EXPECT_TRUE(AppHandlerTakes(ro));
    EXPECT_TRUE(AppHandlerTakes(rw));  // in the last window's range
    mprotect(rw, kPage, PROT_READ | PROT_WRITE);
    ASSERT_EQ(sigaction(SIGSEGV, &dfl, nullptr), 0);
  }
  // Without a handler of the program's: the default action.
  SharedPages sp;
  ASSERT_EQ(ShareRange(reinterpret_cast<uintptr_t>(rw), 8, &sp), 0);
  ReleasePages(sp.inodes);
  EXPECT_EXIT(*ro = 1, ::testing::KilledBySignal(SIGSEGV), "");
  munmap(const_cast<uint8_t*>(ro), kPage);
  munmap(rw, kPage);
}

// Only the pages a process has used are copied: a large private buffer touched in two
// places becomes a memfd with two pages allocated (the rest holes, reading as zeros as the
// untouched pages did), so registering it commits no more memory than was in use; and
// back, only the memfd's data is copied into the private memory again.
TEST_P(ShareRangeTest, UntouchedPrivatePagesStayHoles) {
  const size_t len = 16384 * kPage;
  auto* p = static_cast<uint8_t*>(
      mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(p, MAP_FAILED);
  // Base pages only: with transparent huge pages one write would make 2 MiB resident.
  madvise(p, len, MADV_NOHUGEPAGE);
  p[5] = 1;
  p[4000 * kPage + 7] = 2;
  SharedPages sp;
  ASSERT_EQ(ShareRange(reinterpret_cast<uintptr_t>(p), len, &sp), 0);
  ASSERT_EQ(sp.fds.size(), 1u);
  struct stat st;
  ASSERT_EQ(fstat(sp.fds[0], &st), 0);
  EXPECT_EQ(static_cast<size_t>(st.st_size), len);
  EXPECT_LE(static_cast<size_t>(st.st_blocks) * 512, 2 * kPage) << "untouched pages copied";
  EXPECT_EQ(p[5], 1);
  EXPECT_EQ(p[4000 * kPage + 7], 2);
  p[12000 * kPage] = 3;  // as the daemon's write would: one more page of the memfd
  ReleasePages(sp.inodes);
  EXPECT_EQ(PathOf(p), "");
  // Three pages resident again (each may be a transparent huge page of the new private
  // memory, where the system has them always on): far from the whole range.
  const long long rss = RssOf(p);
  EXPECT_GE(rss, 0);
  EXPECT_LE(rss, static_cast<long long>(3 * (2 << 20))) << "holes copied back";
  EXPECT_EQ(p[5], 1);
  EXPECT_EQ(p[4000 * kPage + 7], 2);
  EXPECT_EQ(p[12000 * kPage], 3);
  EXPECT_EQ(p[8000 * kPage], 0);
  munmap(p, len);
}

// Private huge pages (MAP_PRIVATE|MAP_HUGETLB): a range inside them moves, whole huge
// pages at a time, onto a hugetlbfs memfd of the same page size (what the daemon then
// maps), contents kept; released, they are private huge pages again with what was
// written.
TEST_P(ShareRangeTest, PrivateHugePagesMoveToAHugeMemfdAndBack) {
  VRDMA_REQUIRE_FREE_HUGE_PAGES(4);
  const size_t huge = 2 << 20, len = 2 * huge;
  auto* p = static_cast<uint8_t*>(
      mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0));
  ASSERT_NE(p, MAP_FAILED);
  Fill(p, len, 5);
  SharedPages sp;
  // From inside the first huge page to inside the second.
  ASSERT_EQ(ShareRange(reinterpret_cast<uintptr_t>(p) + huge - 100, 200, &sp), 0);
  EXPECT_EQ(sp.page_base, reinterpret_cast<uint64_t>(p) + huge - kPage);
  EXPECT_EQ(sp.page_length, 2 * kPage);
  ASSERT_EQ(sp.segments.size(), 1u);
  EXPECT_EQ(sp.segments[0].file_offset, huge - kPage) << "the offset in the whole-page copy";
  ASSERT_EQ(sp.fds.size(), 1u);
  struct stat st;
  ASSERT_EQ(fstat(sp.fds[0], &st), 0);
  EXPECT_EQ(static_cast<size_t>(st.st_blksize), huge);
  EXPECT_EQ(static_cast<size_t>(st.st_size), len);
  EXPECT_EQ(PathOf(p), "/memfd:vrdma-mr (deleted)");
  EXPECT_TRUE(Holds(p, len, 5));
  // The memfd is those very pages.
  void* view = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, sp.fds[0], 0);
  ASSERT_NE(view, MAP_FAILED);
  std::memcpy(static_cast<uint8_t*>(view) + huge, "dmn", 3);
  EXPECT_EQ(std::memcmp(p + huge, "dmn", 3), 0);
  munmap(view, len);
  Fill(p, len, 8);
  ReleasePages(sp.inodes);
  bool shared = true;
  EXPECT_EQ(PathOf(p, &shared), "/anon_hugepage (deleted)");
  EXPECT_FALSE(shared);
  EXPECT_TRUE(Holds(p, len, 8));
  munmap(p, len);
}

TEST_P(ShareRangeTest, SharedMemoryGoesByReference) {
  const size_t len = 2 * kPage;
  auto* p = static_cast<uint8_t*>(
      mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(p, MAP_FAILED);
  SharedPages sp;
  ASSERT_EQ(ShareRange(reinterpret_cast<uintptr_t>(p), len, &sp), 0);
  ASSERT_EQ(sp.segments.size(), 1u);
  EXPECT_EQ(sp.segments[0].by_reference, 1u);
  EXPECT_TRUE(sp.fds.empty());
  EXPECT_TRUE(sp.inodes.empty());
  EXPECT_EQ(PathOf(p), "/dev/zero (deleted)");  // untouched
  munmap(p, len);
}

TEST_P(ShareRangeTest, RefusalsLeaveTheMemoryAlone) {
  // Not mapped at all, or partly.
  auto* p = static_cast<uint8_t*>(
      mmap(nullptr, 2 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(p, MAP_FAILED);
  ASSERT_EQ(munmap(p + kPage, kPage), 0);
  SharedPages sp;
  EXPECT_EQ(ShareRange(reinterpret_cast<uintptr_t>(p) + kPage, kPage, &sp), EFAULT);
  EXPECT_EQ(ShareRange(reinterpret_cast<uintptr_t>(p), 2 * kPage, &sp), EFAULT);
  EXPECT_EQ(PathOf(p), "");  // the first page was not left on a memfd
  munmap(p, kPage);
  EXPECT_EQ(ShareRange(0x1000, 0, &sp), EINVAL);
  EXPECT_EQ(ShareRange(UINTPTR_MAX - 10, 100, &sp), EINVAL);
  // Unreadable pages.
  p = static_cast<uint8_t*>(mmap(nullptr, kPage, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(p, MAP_FAILED);
  EXPECT_EQ(ShareRange(reinterpret_cast<uintptr_t>(p), kPage, &sp), EFAULT);
  munmap(p, kPage);
  // The kernel's special mappings: not memory of the process's to copy.
  FILE* f = std::fopen("/proc/self/maps", "re");
  ASSERT_NE(f, nullptr);
  char line[4096];
  uint64_t vdso = 0;
  while (std::fgets(line, sizeof line, f)) {
    MapsLine m;
    if (ParseMapsLine(line, &m) && std::string(m.path) == "[vdso]") vdso = m.start;
  }
  std::fclose(f);
  if (vdso) {
    EXPECT_EQ(ShareRange(vdso, kPage, &sp), EOPNOTSUPP);
  }
}

// The perms column of the mapping holding `addr` ("rw-p").
std::string PermsOf(const void* addr) {
  FILE* f = std::fopen("/proc/self/maps", "re");
  char line[4096];
  std::string out;
  auto a = reinterpret_cast<uint64_t>(addr);
  while (f && std::fgets(line, sizeof line, f)) {
    uint64_t start, end;
    char perms[8];
    if (std::sscanf(line, "%lx-%lx %7s", &start, &end, perms) == 3 && a >= start && a < end) {
      out = perms;
    }
  }
  if (f) std::fclose(f);
  return out;
}

// Initialised, so in .data: a program's global buffer, as rdma_server's and
// rdma_client's messages are (issue 14: "ibv_reg_mr of an initialised global array").
uint8_t g_data_buffer[3 * 4096] = {1, 2, 3};

TEST_P(ShareRangeTest, PrivateFileMappingsAreCopiedToo) {
  // A file mapped MAP_PRIVATE, one page written (private now), one not.
  char name[] = "/tmp/vrdma-provider-test.XXXXXX";
  int fd = mkstemp(name);
  ASSERT_GE(fd, 0);
  std::vector<uint8_t> pattern(2 * kPage);
  Fill(pattern.data(), pattern.size(), 5);
  ASSERT_EQ(pwrite(fd, pattern.data(), pattern.size(), 0), static_cast<ssize_t>(pattern.size()));
  auto* p =
      static_cast<uint8_t*>(mmap(nullptr, 2 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
  ASSERT_NE(p, MAP_FAILED);
  p[0] = 0xee;
  SharedPages sp;
  ASSERT_EQ(ShareRange(reinterpret_cast<uintptr_t>(p), 2 * kPage, &sp), 0);
  EXPECT_EQ(PathOf(p + kPage), "/memfd:vrdma-mr (deleted)");
  EXPECT_EQ(p[0], 0xee);
  EXPECT_TRUE(Holds(p + 1, 2 * kPage - 1, 5 + 31));
  // What the daemon writes the program reads, and the file never sees either.
  ASSERT_EQ(pwrite(sp.fds[0], "dmn", 3, static_cast<off_t>(sp.segments[0].file_offset + kPage)), 3);
  EXPECT_EQ(std::memcmp(p + kPage, "dmn", 3), 0);
  uint8_t on_disk[3];
  ASSERT_EQ(pread(fd, on_disk, 3, static_cast<off_t>(kPage)), 3);
  EXPECT_EQ(std::memcmp(on_disk, pattern.data() + kPage, 3), 0);
  ReleasePages(sp.inodes);
  EXPECT_EQ(PermsOf(p), "rw-p");
  EXPECT_EQ(std::memcmp(p + kPage, "dmn", 3), 0);
  munmap(p, 2 * kPage);

  // Read-only and executable pages keep their protection while shared and after.
  p = static_cast<uint8_t*>(mmap(nullptr, kPage, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0));
  if (p != MAP_FAILED) {  // not on a noexec /tmp
    ASSERT_EQ(ShareRange(reinterpret_cast<uintptr_t>(p), kPage, &sp), 0);
    EXPECT_EQ(PermsOf(p), "r-xs");
    EXPECT_TRUE(Holds(p, kPage, 5));
    ReleasePages(sp.inodes);
    EXPECT_EQ(PermsOf(p), "r-xp");
    munmap(p, kPage);
  }
  close(fd);
  unlink(name);

  // A global array in this program's .data, its pages shared with other globals.
  SharedPages global;
  ASSERT_EQ(ShareRange(reinterpret_cast<uintptr_t>(g_data_buffer), sizeof g_data_buffer, &global),
            0);
  EXPECT_EQ(PathOf(g_data_buffer + 4096), "/memfd:vrdma-mr (deleted)");
  EXPECT_EQ(g_data_buffer[2], 3);
  g_data_buffer[5000] = 7;
  ReleasePages(global.inodes);
  EXPECT_EQ(PermsOf(g_data_buffer + 4096), "rw-p");
  EXPECT_EQ(g_data_buffer[5000], 7);
}

}  // namespace
}  // namespace vrdma::provider
