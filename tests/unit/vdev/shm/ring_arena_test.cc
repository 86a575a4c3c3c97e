#include "vdev/shm/ring_arena.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <set>
#include <string>
#include <vector>

namespace vrdma::vdev {
namespace {

const size_t kPage = RingChunk::PageBytes();

ino_t InodeOf(int fd) {
  struct stat st {};
  EXPECT_EQ(fstat(fd, &st), 0);
  return st.st_ino;
}

size_t MappingsOfThisProcess() {
  std::ifstream maps("/proc/self/maps");
  size_t n = 0;
  for (std::string line; std::getline(maps, line);) ++n;
  return n;
}

// `n` one-page rings, in order.
std::vector<std::unique_ptr<SharedRegion>> OnePageRings(RingArena& arena, size_t n) {
  std::vector<std::unique_ptr<SharedRegion>> rings;
  for (size_t i = 0; i < n; ++i) {
    auto r = arena.Allocate(kPage);
    EXPECT_TRUE(r.ok()) << r.status();
    if (r.ok()) rings.push_back(std::move(*r));
  }
  return rings;
}

// What a client does with a reply: maps shm_size bytes of the fd from shm_offset.
uint8_t* MapAsClient(const SharedRegion& r) {
  void* p = mmap(nullptr, r.size(), PROT_READ | PROT_WRITE, MAP_SHARED, r.fd(),
                 static_cast<off_t>(r.offset()));
  EXPECT_NE(p, MAP_FAILED);
  return static_cast<uint8_t*>(p);
}

TEST(RingArenaTest, SmallRingsShareOneMemfdAndTheClientSeesTheDaemonsBytes) {
  RingArena arena("ring-arena-test");
  std::vector<std::unique_ptr<SharedRegion>> rings;
  std::set<uint64_t> offsets;
  for (size_t i = 0; i < 100; ++i) {
    auto r = arena.Allocate(i % 3 == 0 ? 3 * kPage : 100);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ((*r)->offset() % kPage, 0u);
    EXPECT_GE((*r)->size(), i % 3 == 0 ? 3 * kPage : 100);
    EXPECT_TRUE(offsets.insert((*r)->offset()).second) << "two rings at one offset";
    rings.push_back(std::move(*r));
  }
  EXPECT_EQ(arena.chunks(), 1u);
  for (const auto& r : rings) EXPECT_EQ(InodeOf(r->fd()), InodeOf(rings[0]->fd()));
  // Daemon and client see the same pages, each ring its own.
  for (size_t i = 0; i < rings.size(); ++i) rings[i]->data()[rings[i]->size() - 1] = uint8_t(i);
  for (size_t i = 0; i < rings.size(); ++i) {
    uint8_t* client = MapAsClient(*rings[i]);
    EXPECT_EQ(client[rings[i]->size() - 1], uint8_t(i));
    client[0] = 0xab;
    EXPECT_EQ(rings[i]->data()[0], 0xab);
    munmap(client, rings[i]->size());
  }
}

TEST(RingArenaTest, AFreedRingsPagesComeBackZeroedEvenAfterAStaleClientMappingWroteThem) {
  RingArena arena("ring-arena-test");
  auto first = arena.Allocate(2 * kPage);
  ASSERT_TRUE(first.ok());
  const uint64_t offset = (*first)->offset();
  uint8_t* client = MapAsClient(**first);
  memset((*first)->data(), 0x5a, (*first)->size());
  first->reset();
  // The client keeps its mapping of the freed ring and writes through it.
  memset(client, 0x77, 2 * kPage);
  auto again = arena.Allocate(2 * kPage);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->offset(), offset);  // the same pages, handed out again
  for (size_t i = 0; i < (*again)->size(); ++i) {
    ASSERT_EQ((*again)->data()[i], 0) << "byte " << i;
  }
  munmap(client, 2 * kPage);
}

TEST(RingArenaTest, TheClientCannotResizeAChunk) {
  RingArena arena("ring-arena-test");
  auto r = arena.Allocate(kPage);
  ASSERT_TRUE(r.ok());
  EXPECT_NE(ftruncate((*r)->fd(), 0), 0);
  EXPECT_EQ(errno, EPERM);
  EXPECT_NE(ftruncate((*r)->fd(), 64 << 20), 0);
  EXPECT_EQ(errno, EPERM);
}

TEST(RingArenaTest, ALargeRingHasAMemfdOfItsOwn) {
  RingArena arena("ring-arena-test");
  auto small = arena.Allocate(kPage);
  auto large = arena.Allocate((RingArena::kMaxCarvedPages + 1) * kPage);
  ASSERT_TRUE(small.ok() && large.ok());
  EXPECT_EQ((*large)->offset(), 0u);
  EXPECT_NE(InodeOf((*large)->fd()), InodeOf((*small)->fd()));
  EXPECT_EQ(arena.chunks(), 1u);
}

TEST(RingArenaTest, AThousandRingsCostTheDaemonAFewMappingsNotAThousand) {
  RingArena arena("ring-arena-test");
  const size_t before = MappingsOfThisProcess();
  std::vector<std::unique_ptr<SharedRegion>> rings;
  for (int i = 0; i < 1000; ++i) {
    auto r = arena.Allocate(kPage);
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(close((*r)->TakeFd()), 0);  // handed to the client, as vrdmad does
    rings.push_back(std::move(*r));
  }
  const size_t chunks = (1000 + RingChunk::kChunkPages - 1) / RingChunk::kChunkPages;
  EXPECT_EQ(arena.chunks(), chunks);
  EXPECT_LE(MappingsOfThisProcess(), before + chunks);
}

TEST(RingArenaTest, ChunksNoRingUsesAreLetGoButOne) {
  RingArena arena("ring-arena-test");
  std::vector<std::unique_ptr<SharedRegion>> rings =
      OnePageRings(arena, 3 * RingChunk::kChunkPages);
  EXPECT_EQ(arena.chunks(), 3u);
  rings.clear();
  auto r = arena.Allocate(kPage);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(arena.chunks(), 1u);
}

TEST(RingArenaTest, ARingOutlivesItsArena) {
  std::unique_ptr<SharedRegion> ring;
  {
    RingArena arena("ring-arena-test");
    auto r = arena.Allocate(kPage);
    ASSERT_TRUE(r.ok());
    ring = std::move(*r);
  }
  ring->data()[0] = 1;  // still mapped: the ring holds its chunk
  EXPECT_EQ(ring->data()[0], 1);
}

TEST(RingArenaTest, FragmentedChunksStillFindARunOrMakeANewChunk) {
  RingArena arena("ring-arena-test");
  std::vector<std::unique_ptr<SharedRegion>> rings = OnePageRings(arena, RingChunk::kChunkPages);
  ASSERT_EQ(rings.size(), RingChunk::kChunkPages);
  // Every other page free: 256 free pages, no two in a row.
  for (size_t i = 0; i < rings.size(); i += 2) rings[i].reset();
  auto one = arena.Allocate(kPage);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(arena.chunks(), 1u);
  auto two = arena.Allocate(2 * kPage);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(arena.chunks(), 2u);
  EXPECT_NE(InodeOf((*two)->fd()), InodeOf((*one)->fd()));
}

TEST(RingArenaTest, RingsPlacedToFragmentChunksGetMemfdsOfTheirOwnNotMoreChunks) {
  // A page kept every 128: no run of 128 free pages, 4 pages used of 512.
  RingArena arena("ring-arena-test");
  std::vector<std::unique_ptr<SharedRegion>> rings = OnePageRings(arena, RingChunk::kChunkPages);
  ASSERT_EQ(rings.size(), RingChunk::kChunkPages);
  for (size_t i = 0; i < rings.size(); ++i) {
    if (i % RingArena::kMaxCarvedPages != 0) rings[i].reset();
  }
  for (int i = 0; i < 8; ++i) {
    auto big = arena.Allocate(RingArena::kMaxCarvedPages * kPage);
    ASSERT_TRUE(big.ok());
    EXPECT_EQ((*big)->offset(), 0u);
    EXPECT_NE(InodeOf((*big)->fd()), InodeOf(rings[0]->fd()));
    rings.push_back(std::move(*big));
  }
  EXPECT_EQ(arena.chunks(), 1u);
  // Small rings still go into the chunk's free pages.
  auto small = arena.Allocate(kPage);
  ASSERT_TRUE(small.ok());
  EXPECT_EQ(InodeOf((*small)->fd()), InodeOf(rings[0]->fd()));
}

}  // namespace
}  // namespace vrdma::vdev
