// ClientMemory (a registration's segments mapped side by side) and SharedRegion (the
// daemon's own sealed memfds), in-process.
#include "vdev/shm/client_memory.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "vdev/shm/maps_line.h"
#include "vdev/shm/shared_region.h"

namespace vrdma::vdev {
namespace {

const uint64_t kPage = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));

// A memfd of `pages` pages, page i filled with byte 'a' + i; sealed against shrinking
// when `seal`.
int Memfd(uint64_t pages, bool seal = true) {
  int fd = memfd_create("client-memory-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return -1;
  std::vector<uint8_t> page(kPage);
  for (uint64_t i = 0; i < pages; ++i) {
    std::memset(page.data(), 'a' + static_cast<int>(i), kPage);
    if (pwrite(fd, page.data(), kPage, static_cast<off_t>(i * kPage)) !=
        static_cast<ssize_t>(kPage)) {
      close(fd);
      return -1;
    }
  }
  if (seal && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// The maps line of the mapping holding `addr`, if any.
std::optional<std::string> MapsLineOf(const void* addr) {
  FILE* f = std::fopen("/proc/self/maps", "re");
  if (!f) return std::nullopt;
  char* line = nullptr;
  size_t cap = 0;
  std::optional<std::string> out;
  auto a = reinterpret_cast<uint64_t>(addr);
  while (getline(&line, &cap, f) > 0) {
    std::optional<MapsEntry> e = ParseMapsLine(line);
    if (e && a >= e->start && a < e->end) out = line;
  }
  free(line);
  std::fclose(f);
  return out;
}

struct Fds {
  std::vector<int> fds;
  ~Fds() {
    for (int fd : fds) close(fd);
  }
};

TEST(ClientMemory, SegmentsMappedSideBySide) {
  Fds f;
  f.fds = {Memfd(4), Memfd(2)};
  ASSERT_GE(f.fds[0], 0);
  ASSERT_GE(f.fds[1], 0);
  // Pages 1..2 of the first memfd, then page 0 of the second (read-only).
  std::vector<proto::MrSegment> segs = {{0, 2 * kPage, kPage, 0, 0}, {2 * kPage, kPage, 0, 0, 0}};
  std::vector<SegmentBacking> backing = {{f.fds[0], kPage, true, false},
                                         {f.fds[1], 0, false, false}};
  auto mem = ClientMemory::Map(3 * kPage, segs, backing);
  ASSERT_TRUE(mem.ok()) << mem.status();
  uint8_t* b = (*mem)->base();
  EXPECT_EQ((*mem)->length(), 3 * kPage);
  EXPECT_EQ(b[0], 'b');
  EXPECT_EQ(b[kPage - 1], 'b');
  EXPECT_EQ(b[kPage], 'c');
  EXPECT_EQ(b[2 * kPage], 'a');
  EXPECT_EQ(b[3 * kPage - 1], 'a');
  // Writes reach the client's object; the read-only segment is mapped read-only.
  std::memcpy(b + kPage + 7, "engine", 6);
  char got[6];
  ASSERT_EQ(pread(f.fds[0], got, 6, static_cast<off_t>(2 * kPage + 7)), 6);
  EXPECT_EQ(std::memcmp(got, "engine", 6), 0);
  auto rw = MapsLineOf(b);
  auto ro = MapsLineOf(b + 2 * kPage);
  ASSERT_TRUE(rw && ro);
  EXPECT_EQ(ParseMapsLine(*rw)->perms, "rw-s") << *rw;
  EXPECT_EQ(ParseMapsLine(*ro)->perms, "r--s") << *ro;
  EXPECT_EQ(ParseMapsLine(*rw)->offset, kPage) << *rw;
  // Destroyed: the range is unmapped.
  mem->reset();
  EXPECT_FALSE(MapsLineOf(b).has_value());
  EXPECT_FALSE(MapsLineOf(b + 2 * kPage).has_value());
}

TEST(ClientMemory, BackingsThatCouldFaultTheDaemonAreRefused) {
  Fds f;
  f.fds = {Memfd(2, /*seal=*/false), Memfd(1), Memfd(2)};
  for (int fd : f.fds) ASSERT_GE(fd, 0);
  std::vector<proto::MrSegment> one = {{0, kPage, 0, 0, 0}};
  // Unsealed: refused, unless the object is one no one can shrink.
  std::vector<SegmentBacking> b = {{f.fds[0], 0, true, false}};
  EXPECT_TRUE(absl::IsInvalidArgument(ClientMemory::Map(kPage, one, b).status()));
  b[0].fixed_size = true;
  EXPECT_TRUE(ClientMemory::Map(kPage, one, b).ok());
  // Smaller than the segment it backs (page 1 of a one-page memfd).
  b = {{f.fds[1], kPage, true, false}};
  EXPECT_TRUE(absl::IsInvalidArgument(ClientMemory::Map(kPage, one, b).status()));
  // Not a regular file.
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  b = {{p[0], 0, true, true}};
  EXPECT_TRUE(absl::IsInvalidArgument(ClientMemory::Map(kPage, one, b).status()));
  close(p[0]);
  close(p[1]);
  b = {{-1, 0, true, true}};
  EXPECT_TRUE(absl::IsInvalidArgument(ClientMemory::Map(kPage, one, b).status()));
}

TEST(ClientMemory, SegmentsMustTileThePages) {
  Fds f;
  f.fds = {Memfd(4), Memfd(4)};
  ASSERT_GE(f.fds[0], 0);
  ASSERT_GE(f.fds[1], 0);
  std::vector<SegmentBacking> two = {{f.fds[0], 0, true, false}, {f.fds[1], 0, true, false}};
  auto refused = [&](uint64_t len, std::vector<proto::MrSegment> segs,
                     std::vector<SegmentBacking> backing) {
    return absl::IsInvalidArgument(ClientMemory::Map(len, segs, backing).status());
  };
  const uint64_t P = kPage;
  EXPECT_TRUE(
      ClientMemory::Map(2 * P, std::vector<proto::MrSegment>{{0, P, 0, 0, 0}, {P, P, 0, 0, 0}}, two)
          .ok());
  EXPECT_TRUE(refused(2 * P, {{0, P, 0, 0, 0}, {2 * P, P, 0, 0, 0}}, two));  // a gap
  EXPECT_TRUE(refused(2 * P, {{0, 2 * P, 0, 0, 0}, {P, P, 0, 0, 0}}, two));  // overlap
  EXPECT_TRUE(refused(2 * P, {{P, P, 0, 0, 0}, {0, P, 0, 0, 0}}, two));      // out of order
  EXPECT_TRUE(refused(3 * P, {{0, P, 0, 0, 0}, {P, P, 0, 0, 0}}, two));      // short of the end
  EXPECT_TRUE(refused(2 * P, {{0, P, 0, 0, 0}, {P, 2 * P, 0, 0, 0}}, two));  // past the end
  EXPECT_TRUE(refused(2 * P, {{0, P, 0, 0, 0}, {P, 0, 0, 0, 0}}, two));      // empty segment
  EXPECT_TRUE(refused(2 * P, {{0, P + 1, 0, 0, 0}, {P + 1, P - 1, 0, 0, 0}}, two));  // not pages
  EXPECT_TRUE(refused(P + 1, {{0, P + 1, 0, 0, 0}}, {two[0]}));
  EXPECT_TRUE(refused(0, {}, {}));
  EXPECT_TRUE(refused(P, {{0, P, 0, 0, 0}}, two));  // one backing too many
  // An object offset that is not a page, or that wraps.
  EXPECT_TRUE(refused(P, {{0, P, 0, 0, 0}}, {{f.fds[0], 512, true, false}}));
  EXPECT_TRUE(refused(P, {{0, P, 0, 0, 0}}, {{f.fds[0], UINT64_MAX - P + 1, true, false}}));
  // A huge length that wraps the cursor.
  EXPECT_TRUE(refused(2 * P, {{0, P, 0, 0, 0}, {P, UINT64_MAX - P + 1, 0, 0, 0}}, two));
  // More segments than a registration may have.
  std::vector<proto::MrSegment> many;
  std::vector<SegmentBacking> many_b;
  for (uint64_t i = 0; i <= proto::kMaxMrSegments; ++i) {
    many.push_back({i * P, P, 0, 0, 0});
    many_b.push_back({f.fds[0], 0, true, false});
  }
  EXPECT_TRUE(refused((proto::kMaxMrSegments + 1) * P, many, many_b));
  many.pop_back();
  many_b.pop_back();
  EXPECT_TRUE(ClientMemory::Map(proto::kMaxMrSegments * P, many, many_b).ok());
}

TEST(SharedRegion, SealedRoundedAndShared) {
  auto r = SharedRegion::Create("vrdma-test-region", kPage + 1);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->size(), 2 * kPage);
  int seals = fcntl((*r)->fd(), F_GET_SEALS);
  EXPECT_EQ(seals, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  // A client holding the descriptor can neither shrink nor grow it, nor unseal it.
  EXPECT_NE(ftruncate((*r)->fd(), 0), 0);
  EXPECT_NE(ftruncate((*r)->fd(), static_cast<off_t>(4 * kPage)), 0);
  EXPECT_NE(fcntl((*r)->fd(), F_ADD_SEALS, F_SEAL_WRITE), 0);
  std::memcpy((*r)->data() + kPage, "ring", 4);
  char got[4];
  ASSERT_EQ(pread((*r)->fd(), got, 4, static_cast<off_t>(kPage)), 4);
  EXPECT_EQ(std::memcmp(got, "ring", 4), 0);
  auto line = MapsLineOf((*r)->data());
  ASSERT_TRUE(line);
  EXPECT_EQ(ParseMapsLine(*line)->path, "/memfd:vrdma-test-region (deleted)");
  EXPECT_TRUE(ParseMapsLine(*line)->shared());
  uint8_t* data = (*r)->data();
  r->reset();
  EXPECT_FALSE(MapsLineOf(data).has_value());
}

}  // namespace
}  // namespace vrdma::vdev
