// PlanMemoryLayout: where a registration's segments go in the daemon, huge pages widened
// to whole huge pages at aligned addresses and offsets.
#include "vdev/shm/memory_layout.h"

#include <gtest/gtest.h>

#include <vector>

namespace vrdma::vdev {
namespace {

constexpr uint64_t kPage = 4096, kHuge = 2 << 20, kGiga = 1 << 30;

struct Segs {
  std::vector<uint64_t> offsets, lengths, files, units;
  Segs& Add(uint64_t length, uint64_t file, uint64_t unit) {
    offsets.push_back(offsets.empty() ? 0 : offsets.back() + lengths.back());
    lengths.push_back(length);
    files.push_back(file);
    units.push_back(unit);
    return *this;
  }
  absl::StatusOr<MemoryLayout> Plan() const {
    return PlanMemoryLayout(kPage, offsets, lengths, files, units);
  }
};

// Normal pages map exactly where they are; no slack, any base.
TEST(MemoryLayout, BasePagesMapInPlace) {
  auto l = Segs().Add(3 * kPage, 5 * kPage, kPage).Add(kPage, 0, kPage).Plan();
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->align, kPage);
  EXPECT_EQ(l->slack, 0u);
  ASSERT_EQ(l->maps.size(), 2u);
  EXPECT_EQ(l->maps[0].offset, 0);
  EXPECT_EQ(l->maps[0].length, 3 * kPage);
  EXPECT_EQ(l->maps[0].file_offset, 5 * kPage);
  EXPECT_EQ(l->maps[1].offset, static_cast<int64_t>(3 * kPage));
  EXPECT_EQ(l->maps[1].length, kPage);
}

// A registration that starts two pages before a huge-page boundary of its object and
// ends inside the next huge page: two whole huge pages, begun before the range, with the
// base placed so that the boundary lands aligned.
TEST(MemoryLayout, HugeSegmentIsWidenedAndAligned) {
  auto l = Segs().Add(kHuge, 7 * kHuge - 2 * kPage, kHuge).Plan();
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->align, kHuge);
  EXPECT_EQ(l->slack, kHuge);
  ASSERT_EQ(l->maps.size(), 1u);
  EXPECT_EQ(l->maps[0].offset, -static_cast<int64_t>(kHuge - 2 * kPage));
  EXPECT_EQ(l->maps[0].length, 2 * kHuge);
  EXPECT_EQ(l->maps[0].file_offset, 6 * kHuge);
  EXPECT_EQ((l->residue + static_cast<uint64_t>(l->maps[0].offset)) % kHuge, 0u);
  EXPECT_EQ((l->residue + 2 * kPage) % kHuge, 0u) << "the boundary is aligned";
}

// What the provider sends for a range over a normal mapping followed by a hugetlbfs one:
// the huge mapping starts on a huge-page boundary of the client, and of its object.
TEST(MemoryLayout, BasePagesThenHugePages) {
  auto l = Segs().Add(5 * kPage, 0, kPage).Add(2 * kHuge + kPage, 0, kHuge).Plan();
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->maps[1].offset, static_cast<int64_t>(5 * kPage));
  EXPECT_EQ(l->maps[1].length, 3 * kHuge);
  EXPECT_EQ((l->residue + 5 * kPage) % kHuge, 0u);
}

// Two hugetlbfs segments whose huge pages cannot both be aligned at one base: no client
// mapping looks like that, so it is refused rather than mapped wrong.
TEST(MemoryLayout, HugeSegmentsThatDisagreeAreRefused) {
  auto l = Segs().Add(kHuge, 0, kHuge).Add(kHuge, kPage, kHuge).Plan();
  EXPECT_FALSE(l.ok());
}

// A widened huge page would cover the segment before it.
TEST(MemoryLayout, AHugePageSharedWithAnotherSegmentIsRefused) {
  auto l = Segs().Add(kPage, 0, kPage).Add(kHuge, kHuge - kPage, kHuge).Plan();
  EXPECT_FALSE(l.ok());
  l = Segs().Add(kHuge - kPage, 0, kHuge).Add(kPage, 0, kPage).Plan();
  EXPECT_FALSE(l.ok());
}

// 1 GiB and 2 MiB pages together: the base follows the largest, the smaller ones fit it.
TEST(MemoryLayout, MixedHugePageSizes) {
  auto l = Segs().Add(kHuge, 0, kHuge).Add(kGiga, 3 * kGiga, kGiga).Plan();
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->align, kGiga);
  EXPECT_EQ((l->residue + static_cast<uint64_t>(l->maps[1].offset)) % kGiga, 0u);
  EXPECT_EQ((l->residue + static_cast<uint64_t>(l->maps[0].offset)) % kHuge, 0u);
}

TEST(MemoryLayout, BadPageSizesAreRefused) {
  EXPECT_FALSE(Segs().Add(kPage, 0, 3 * kPage).Plan().ok());
  EXPECT_FALSE(Segs().Add(kPage, 0, 512).Plan().ok());
  EXPECT_FALSE(PlanMemoryLayout(kPage, std::vector<uint64_t>{0}, std::vector<uint64_t>{},
                                std::vector<uint64_t>{0}, std::vector<uint64_t>{kPage})
                   .ok());
}

}  // namespace
}  // namespace vrdma::vdev
