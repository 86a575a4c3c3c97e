#include "driver/res/ring.h"

#include <atomic>

#include "gtest/gtest.h"

namespace vrdma::driver {
namespace {

// What a ring publishes as retired: every entry that left it, however it left (popped,
// cleared, dropped from the tail, refused before it was queued), from 0 at Init.
TEST(Ring, PublishesRetiredEntries) {
  Ring<int> r;
  r.Init(4);
  std::atomic<uint32_t> retired{123};
  r.PublishRetiredTo(&retired);
  EXPECT_EQ(retired.load(), 0u);
  for (int i = 0; i < 4; ++i) {
    r.next_free() = i;
    r.Commit();
  }
  EXPECT_TRUE(r.full());
  EXPECT_EQ(retired.load(), 0u);  // queued is not retired
  r.Pop();
  EXPECT_EQ(retired.load(), 1u);
  r.DropFrom(r.tail() - 1);  // the newest entry dropped
  EXPECT_EQ(retired.load(), 2u);
  r.RetireUnqueued();
  EXPECT_EQ(retired.load(), 3u);
  r.Clear();  // the two left
  EXPECT_EQ(retired.load(), 5u);
  EXPECT_TRUE(r.empty());
  // Free-running across the 32-bit wrap of its indices.
  for (int i = 0; i < 10; ++i) {
    r.next_free() = i;
    r.Commit();
    r.Pop();
  }
  EXPECT_EQ(retired.load(), 15u);
}

// A reused ring (a QP slot made again) publishes nowhere until it is told again.
TEST(Ring, InitForgetsWhereItPublished) {
  Ring<int> r;
  r.Init(2);
  std::atomic<uint32_t> old{0};
  r.PublishRetiredTo(&old);
  r.next_free() = 1;
  r.Commit();
  r.Pop();
  EXPECT_EQ(old.load(), 1u);
  r.Init(2);
  r.next_free() = 2;
  r.Commit();
  r.Pop();
  EXPECT_EQ(old.load(), 1u);
}

}  // namespace
}  // namespace vrdma::driver
