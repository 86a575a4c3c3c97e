// OpenClientMapping on this process's own memory: what the daemon does to a client.
#include "vdev/shm/client_mapping.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "tests/lib/huge_pages.h"

namespace vrdma::vdev {
namespace {

const uint64_t kPage = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));

uint64_t Addr(const void* p) { return reinterpret_cast<uint64_t>(p); }

// This process, as the daemon identifies a client: the peer of a connected socket.
const Peer& Self() {
  static const Peer* self = [] {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    auto p = Peer::FromSocket(sv[0]);
    EXPECT_TRUE(p.ok()) << p.status();
    close(sv[0]);
    close(sv[1]);
    return new Peer(*std::move(p));
  }();
  return *self;
}

class Mapping {
 public:
  Mapping(size_t len, int prot, int flags, int fd = -1, off_t off = 0) : len_(len) {
    p_ = static_cast<uint8_t*>(mmap(nullptr, len, prot, flags, fd, off));
    if (p_ == MAP_FAILED) p_ = nullptr;
  }
  ~Mapping() {
    if (p_) munmap(p_, len_);
  }
  uint8_t* get() const { return p_; }

 private:
  uint8_t* p_;
  size_t len_;
};

// What the daemon's descriptor reads at `offset`.
std::string ReadFd(int fd, uint64_t offset, size_t n) {
  std::string s(n, '\0');
  EXPECT_EQ(pread(fd, s.data(), n, static_cast<off_t>(offset)), static_cast<ssize_t>(n));
  return s;
}

// Each case runs twice: the client's mapping looked up with PROCMAP_QUERY (where the
// kernel has it, Linux 6.11) and in its maps file, as on older kernels.
class ClientMappingTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { UseProcmapQueryForClientMaps(GetParam()); }
  void TearDown() override { UseProcmapQueryForClientMaps(true); }
};
INSTANTIATE_TEST_SUITE_P(Lookups, ClientMappingTest, ::testing::Bool(), [](const auto& info) {
  return std::string(info.param ? "ProcmapQuery" : "MapsFile");
});

TEST_P(ClientMappingTest, SharedAnonymousIsFoundAndFixedSize) {
  Mapping m(4 * kPage, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
  ASSERT_NE(m.get(), nullptr);
  std::memcpy(m.get() + 2 * kPage + 5, "client bytes", 12);
  // A range inside the mapping: the offset is where it starts in the object.
  auto cm = OpenClientMapping(Self(), Addr(m.get()) + 2 * kPage, kPage);
  ASSERT_TRUE(cm.ok()) << cm.status();
  EXPECT_TRUE(cm->fixed_size);
  EXPECT_TRUE(cm->writable);
  EXPECT_EQ(cm->file_offset, 2 * kPage);
  EXPECT_EQ(ReadFd(cm->fd, cm->file_offset + 5, 12), "client bytes");
  // The descriptor reaches the same pages both ways.
  ASSERT_EQ(pwrite(cm->fd, "daemon", 6, static_cast<off_t>(cm->file_offset)), 6);
  EXPECT_EQ(std::memcmp(m.get() + 2 * kPage, "daemon", 6), 0);
  EXPECT_EQ(fcntl(cm->fd, F_GETFL) & O_ACCMODE, O_RDWR);
  EXPECT_NE(fcntl(cm->fd, F_GETFD) & FD_CLOEXEC, 0);
  close(cm->fd);
  // The whole mapping, to its last byte.
  cm = OpenClientMapping(Self(), Addr(m.get()), 4 * kPage);
  ASSERT_TRUE(cm.ok()) << cm.status();
  EXPECT_EQ(cm->file_offset, 0u);
  close(cm->fd);
}

TEST_P(ClientMappingTest, ReadOnlyMappingOpensReadOnly) {
  Mapping m(kPage, PROT_READ, MAP_SHARED | MAP_ANONYMOUS);
  ASSERT_NE(m.get(), nullptr);
  auto cm = OpenClientMapping(Self(), Addr(m.get()), kPage);
  ASSERT_TRUE(cm.ok()) << cm.status();
  EXPECT_FALSE(cm->writable);
  EXPECT_EQ(fcntl(cm->fd, F_GETFL) & O_ACCMODE, O_RDONLY);
  close(cm->fd);
}

TEST_P(ClientMappingTest, SystemVSegment) {
  int id = shmget(IPC_PRIVATE, 2 * kPage, IPC_CREAT | 0600);
  ASSERT_GE(id, 0);
  auto* p = static_cast<uint8_t*>(shmat(id, nullptr, 0));
  ASSERT_NE(p, reinterpret_cast<void*>(-1));
  shmctl(id, IPC_RMID, nullptr);  // still attached: the segment lives on, unnamed
  std::memcpy(p + kPage, "sysv", 4);
  auto cm = OpenClientMapping(Self(), Addr(p) + kPage, kPage);
  ASSERT_TRUE(cm.ok()) << cm.status();
  EXPECT_TRUE(cm->fixed_size);
  EXPECT_EQ(cm->file_offset, kPage);
  EXPECT_EQ(ReadFd(cm->fd, kPage, 4), "sysv");
  close(cm->fd);
  shmdt(p);
}

// Huge pages shared by the client (issue 14): System V SHM_HUGETLB, MAP_SHARED|MAP_HUGETLB
// and an unsealed MFD_HUGETLB memfd are opened as they are (no seal keeps a huge page:
// the fault guard is the line for them), at the offset of the range in the object.
TEST_P(ClientMappingTest, HugePageMappingsAreOpened) {
  VRDMA_REQUIRE_FREE_HUGE_PAGES(6);
  const uint64_t huge = 2 << 20;
  int id = shmget(IPC_PRIVATE, 2 * huge, IPC_CREAT | SHM_HUGETLB | 0600);
  ASSERT_GE(id, 0) << std::strerror(errno);
  auto* sysv = static_cast<uint8_t*>(shmat(id, nullptr, 0));
  shmctl(id, IPC_RMID, nullptr);
  ASSERT_NE(sysv, reinterpret_cast<void*>(-1));
  Mapping anon(2 * huge, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB);
  int mfd = memfd_create("client-mapping-huge", MFD_CLOEXEC | MFD_HUGETLB);
  ASSERT_GE(mfd, 0);
  ASSERT_EQ(ftruncate(mfd, static_cast<off_t>(2 * huge)), 0);
  Mapping memfd(2 * huge, PROT_READ | PROT_WRITE, MAP_SHARED, mfd);
  for (uint8_t* p : {sysv, anon.get(), memfd.get()}) {
    ASSERT_NE(p, nullptr);
    std::memcpy(p + huge + 3 * kPage, "huge", 4);
    auto cm = OpenClientMapping(Self(), Addr(p) + huge - kPage, 2 * kPage);
    ASSERT_TRUE(cm.ok()) << cm.status();
    EXPECT_EQ(cm->file_offset, huge - kPage);
    EXPECT_TRUE(cm->writable);
    void* back = mmap(nullptr, 2 * huge, PROT_READ, MAP_SHARED, cm->fd, 0);
    ASSERT_NE(back, MAP_FAILED);
    EXPECT_EQ(std::memcmp(static_cast<uint8_t*>(back) + huge + 3 * kPage, "huge", 4), 0);
    munmap(back, 2 * huge);
    close(cm->fd);
  }
  shmdt(sysv);
  close(mfd);
}

TEST_P(ClientMappingTest, MemfdNeedsASealAgainstShrinking) {
  int fd = memfd_create("client-buf", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, static_cast<off_t>(2 * kPage)), 0);
  Mapping m(2 * kPage, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
  ASSERT_NE(m.get(), nullptr);
  auto cm = OpenClientMapping(Self(), Addr(m.get()), kPage);
  EXPECT_TRUE(absl::IsFailedPrecondition(cm.status())) << cm.status();
  ASSERT_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
  cm = OpenClientMapping(Self(), Addr(m.get()) + kPage, kPage);
  ASSERT_TRUE(cm.ok()) << cm.status();
  EXPECT_FALSE(cm->fixed_size);  // ClientMemory checks the seal again on what it maps
  EXPECT_EQ(cm->file_offset, kPage);
  close(cm->fd);
  close(fd);
}

TEST_P(ClientMappingTest, PrivateMemoryIsRefused) {
  Mapping anon(kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  ASSERT_NE(anon.get(), nullptr);
  auto cm = OpenClientMapping(Self(), Addr(anon.get()), kPage);
  EXPECT_TRUE(absl::IsFailedPrecondition(cm.status())) << cm.status();
  // The heap and the stack.
  void* heap = std::malloc(100);
  cm = OpenClientMapping(Self(), Addr(heap), 100);
  EXPECT_TRUE(absl::IsFailedPrecondition(cm.status())) << cm.status();
  std::free(heap);
  int local = 0;
  cm = OpenClientMapping(Self(), Addr(&local), sizeof local);
  EXPECT_TRUE(absl::IsFailedPrecondition(cm.status())) << cm.status();
}

TEST_P(ClientMappingTest, SharedFileThatCanBeTruncatedIsRefused) {
  char name[] = "/tmp/vrdma-shm-test.XXXXXX";
  int fd = mkstemp(name);
  ASSERT_GE(fd, 0);
  unlink(name);
  ASSERT_EQ(ftruncate(fd, static_cast<off_t>(kPage)), 0);
  Mapping m(kPage, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
  ASSERT_NE(m.get(), nullptr);
  auto cm = OpenClientMapping(Self(), Addr(m.get()), kPage);
  EXPECT_TRUE(absl::IsFailedPrecondition(cm.status())) << cm.status();
  EXPECT_NE(cm.status().message().find("(deleted)"), std::string::npos) << cm.status();
  close(fd);
}

// A file a tenant names like a System V segment or a shared anonymous mapping is still
// a file it can truncate under the daemon: the object is checked, not its name.
TEST_P(ClientMappingTest, AFileNamedLikeASegmentIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to create a file in /";
  for (std::string name :
       {absl::StrCat("/SYSV", getpid(), "vrdma-test"), std::string("/memfd:vrdma-spoof-test")}) {
    SCOPED_TRACE(name);
    int fd = open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) GTEST_SKIP() << "cannot create " << name << ": " << std::strerror(errno);
    unlink(name.c_str());  // maps now says "NAME (deleted)"
    ASSERT_EQ(ftruncate(fd, static_cast<off_t>(kPage)), 0);
    Mapping m(kPage, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
    ASSERT_NE(m.get(), nullptr);
    auto cm = OpenClientMapping(Self(), Addr(m.get()), kPage);
    EXPECT_TRUE(absl::IsFailedPrecondition(cm.status())) << cm.status();
    if (cm.ok()) close(cm->fd);
    close(fd);
  }
}

TEST_P(ClientMappingTest, UnmappedRangesAreNotFound) {
  Mapping probe(3 * kPage, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
  ASSERT_NE(probe.get(), nullptr);
  // Unmap the middle page: a hole between two shared mappings.
  ASSERT_EQ(munmap(probe.get() + kPage, kPage), 0);
  uint64_t base = Addr(probe.get());
  EXPECT_TRUE(absl::IsNotFound(OpenClientMapping(Self(), base + kPage, kPage).status()));
  EXPECT_TRUE(absl::IsNotFound(OpenClientMapping(Self(), base + kPage, 1).status()));
  // Starting in a mapping and running into the hole.
  EXPECT_TRUE(absl::IsNotFound(OpenClientMapping(Self(), base, 2 * kPage).status()));
  EXPECT_TRUE(absl::IsNotFound(OpenClientMapping(Self(), base + kPage - 1, 2).status()));
  // Within the first page it is still fine.
  auto cm = OpenClientMapping(Self(), base + kPage - 1, 1);
  ASSERT_TRUE(cm.ok()) << cm.status();
  EXPECT_EQ(cm->file_offset, kPage - 1);
  close(cm->fd);
  ASSERT_EQ(munmap(probe.get() + 2 * kPage, kPage), 0);
  ASSERT_EQ(munmap(probe.get(), kPage), 0);
  EXPECT_TRUE(absl::IsNotFound(OpenClientMapping(Self(), base, kPage).status()));
  // Kernel addresses and the very top.
  EXPECT_TRUE(absl::IsNotFound(OpenClientMapping(Self(), 0xffff800000000000, 1).status()));
  EXPECT_TRUE(absl::IsNotFound(OpenClientMapping(Self(), 0, kPage).status()));
}

TEST_P(ClientMappingTest, ARangeSpanningTwoMappingsIsNotFound) {
  // Two shared anonymous mappings side by side: each its own object.
  Mapping both(2 * kPage, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
  ASSERT_NE(both.get(), nullptr);
  void* second = mmap(both.get() + kPage, kPage, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  ASSERT_EQ(second, both.get() + kPage);
  uint64_t base = Addr(both.get());
  EXPECT_TRUE(absl::IsNotFound(OpenClientMapping(Self(), base, 2 * kPage).status()));
  EXPECT_TRUE(absl::IsNotFound(OpenClientMapping(Self(), base + kPage - 8, 16).status()));
  // Each one alone.
  for (uint64_t a : {base, base + kPage}) {
    auto cm = OpenClientMapping(Self(), a, kPage);
    ASSERT_TRUE(cm.ok()) << cm.status();
    EXPECT_EQ(cm->file_offset, 0u);
    close(cm->fd);
  }
}

TEST_P(ClientMappingTest, BadRanges) {
  EXPECT_TRUE(absl::IsInvalidArgument(OpenClientMapping(Self(), 0x1000, 0).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(OpenClientMapping(Self(), UINT64_MAX - 10, 100).status()));
  // A peer known by credentials only (no pidfd, no proven /proc): nothing by reference.
  EXPECT_TRUE(absl::IsFailedPrecondition(
      OpenClientMapping(Peer::ForCredentials(getpid(), getuid(), getgid()), 0x1000, 1).status()));
}

// A client that exited after connecting: its memory is gone with it, and the daemon never
// reaches whatever process holds its PID number next (issue 12, PID reuse).
TEST_P(ClientMappingTest, ExitedClientIsNotFound) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::string name = absl::StrCat("vrdma-client-mapping-test-", getpid());
  std::memcpy(sa.sun_path + 1, name.data(), name.size());  // abstract
  auto sa_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  int lis = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  ASSERT_EQ(bind(lis, reinterpret_cast<sockaddr*>(&sa), sa_len), 0);
  ASSERT_EQ(listen(lis, 1), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The client: shares a page, connects, sends its address, exits when told.
    void* m = mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    std::memcpy(m, "secret", 6);
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (connect(s, reinterpret_cast<sockaddr*>(&sa), sa_len) != 0) _exit(1);
    uint64_t addr = Addr(m);
    (void)!write(s, &addr, sizeof addr);
    char c;
    (void)!read(s, &c, 1);
    _exit(0);
  }
  int conn = accept4(lis, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(conn, 0);
  uint64_t addr = 0;
  ASSERT_EQ(read(conn, &addr, sizeof addr), static_cast<ssize_t>(sizeof addr));
  absl::StatusOr<Peer> peer = Peer::FromSocket(conn);
  ASSERT_TRUE(peer.ok()) << peer.status();
  EXPECT_EQ(peer->pid(), child);
  auto cm = OpenClientMapping(*peer, addr, kPage);
  ASSERT_TRUE(cm.ok()) << cm.status();
  EXPECT_EQ(ReadFd(cm->fd, cm->file_offset, 6), "secret");
  close(cm->fd);
  ASSERT_EQ(write(conn, "x", 1), 1);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(absl::IsNotFound(OpenClientMapping(*peer, addr, kPage).status()));
  EXPECT_TRUE(absl::IsNotFound(peer->OpenProcFile("maps", O_RDONLY).status()));
  // And a connection whose peer has already exited cannot be identified at all.
  EXPECT_FALSE(Peer::FromSocket(conn).ok());
  close(conn);
  close(lis);
}

}  // namespace
}  // namespace vrdma::vdev
