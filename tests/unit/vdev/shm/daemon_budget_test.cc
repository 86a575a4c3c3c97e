#include "vdev/shm/daemon_budget.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "vdev/shm/ring_arena.h"

namespace vrdma::vdev {
namespace {

constexpr auto kMaps = DaemonResource::kMappings;
constexpr auto kFds = DaemonResource::kDescriptors;

DaemonBudget::Limits Limits(uint64_t maps_total, uint64_t maps_user, uint64_t fds_total,
                            uint64_t fds_user) {
  DaemonBudget::Limits l;
  l.total = {maps_total, fds_total};
  l.per_user = {maps_user, fds_user};
  return l;
}

TEST(DaemonBudgetTest, AUserStopsAtItsShareAndTheOthersStillGetTheirs) {
  DaemonBudget b;
  b.SetLimits(Limits(100, 40, 10, 4));
  std::string why;
  EXPECT_TRUE(b.Take(1000, kMaps, 40));
  EXPECT_FALSE(b.Take(1000, kMaps, 1, &why));
  EXPECT_NE(why.find("uid 1000 holds 40 of its 40 daemon mappings"), std::string::npos) << why;
  EXPECT_TRUE(b.Take(1001, kMaps, 40));
  // All users together stop at the total, before their own shares.
  EXPECT_FALSE(b.Take(1002, kMaps, 21, &why));
  EXPECT_NE(why.find("clients hold 80 of the daemon's 100 mappings"), std::string::npos) << why;
  EXPECT_TRUE(b.Take(1002, kMaps, 20));
  EXPECT_EQ(b.used_total(kMaps), 100u);
  // The two kinds are apart.
  EXPECT_TRUE(b.Take(1000, kFds, 4));
  EXPECT_FALSE(b.Take(1000, kFds, 1));
  b.Give(1000, kMaps, 40);
  EXPECT_EQ(b.used(1000, kMaps), 0u);
  EXPECT_TRUE(b.Take(1002, kMaps, 20));
}

TEST(DaemonBudgetTest, RootIsCountedButNeverRefused) {
  DaemonBudget b;
  b.SetLimits(Limits(10, 2, 10, 2));
  EXPECT_TRUE(b.Take(0, kMaps, 50));
  EXPECT_EQ(b.used(0, kMaps), 50u);
  EXPECT_EQ(b.used_total(kMaps), 50u);
  // ...and what root holds counts against the others' total.
  EXPECT_FALSE(b.Take(1000, kMaps, 1));
}

TEST(DaemonBudgetTest, AChargeGivesBackWhatItTookWhenItGoesOrMoves) {
  DaemonBudget b;
  b.SetLimits(Limits(100, 10, 100, 3));
  {
    auto c = DaemonCharge::Take(&b, 7, 4, 2);
    ASSERT_TRUE(c.has_value());
    EXPECT_EQ(b.used(7, kMaps), 4u);
    EXPECT_EQ(b.used(7, kFds), 2u);
    DaemonCharge moved = std::move(*c);
    c.reset();  // the moved-from charge holds nothing
    EXPECT_EQ(b.used(7, kFds), 2u);
    // A charge refused on its second kind takes nothing of the first.
    EXPECT_FALSE(DaemonCharge::Take(&b, 7, 1, 2).has_value());
    EXPECT_EQ(b.used(7, kMaps), 4u);
    moved = DaemonCharge();  // assigning over a charge gives it back
    EXPECT_EQ(b.used(7, kMaps), 0u);
    EXPECT_EQ(b.used(7, kFds), 0u);
    auto d = DaemonCharge::Take(&b, 7, 10, 3);
    EXPECT_TRUE(d.has_value());
  }
  EXPECT_EQ(b.used_total(kMaps), 0u);
  EXPECT_EQ(b.used_total(kFds), 0u);
  // Without a budget nothing is counted or refused.
  EXPECT_TRUE(DaemonCharge::Take(nullptr, 7, 1u << 30, 1u << 30).has_value());
}

TEST(DaemonBudgetTest, FromTheSystemAQuarterOfWhatVmMaxMapCountLeaves) {
  DaemonBudget::Limits l = DaemonBudget::FromSystem(4000, /*reserved_mappings=*/1000);
  const size_t m = static_cast<size_t>(kMaps), f = static_cast<size_t>(kFds);
  EXPECT_GT(l.total[m], 0u);
  EXPECT_LT(l.total[m], 1u << 30);  // vm.max_map_count, not unlimited
  EXPECT_EQ(l.per_user[m], l.total[m] / 4);
  EXPECT_EQ(l.total[f], 4000u);
  EXPECT_EQ(l.per_user[f], 1000u);
}

// A context's ring chunks take a descriptor and a mapping each, a ring of its own a
// mapping: past its user's share a ring is refused, and freeing gives the share back.
TEST(DaemonBudgetTest, RingsAreRefusedPastTheUsersShareOfTheDaemon) {
  DaemonBudget b;
  b.SetLimits(Limits(1000, 2, 1000, 1));
  RingArena arena("budget-test");
  arena.SetBudget(&b, 1000);
  const size_t page = RingChunk::PageBytes();
  auto small = arena.Allocate(page);  // the first chunk: 1 descriptor, 1 mapping
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_EQ(b.used(1000, kFds), 1u);
  EXPECT_EQ(b.used(1000, kMaps), 1u);
  auto big = arena.Allocate((RingArena::kMaxCarvedPages + 1) * page);  // its own memfd
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(b.used(1000, kMaps), 2u);
  auto refused = arena.Allocate((RingArena::kMaxCarvedPages + 1) * page);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  // A second chunk would need a second descriptor.
  std::vector<std::unique_ptr<SharedRegion>> rings;
  for (;;) {
    auto r = arena.Allocate(RingArena::kMaxCarvedPages * page);
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
      break;
    }
    rings.push_back(std::move(*r));
    ASSERT_LT(rings.size(), 8u);
  }
  EXPECT_EQ(arena.chunks(), 1u);
  big->reset();
  EXPECT_EQ(b.used(1000, kMaps), 1u);
  EXPECT_TRUE(arena.Allocate((RingArena::kMaxCarvedPages + 1) * page).ok());
}

}  // namespace
}  // namespace vrdma::vdev
