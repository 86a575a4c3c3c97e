#include "driver/timer/timer_wheel.h"

#include <map>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace vrdma::driver {
namespace {

TEST(TimerWheelTest, FiresNeverEarlyAndAtMostOneTickLate) {
  TimerWheel w;
  TimerNode n;
  w.Arm(&n, 100'000);
  uint64_t fired_at = 0;
  for (uint64_t t = 0; t <= 200'000 && !fired_at; t += 1'000) {
    w.Advance(t, [&](TimerNode*) { fired_at = t; });
  }
  EXPECT_GE(fired_at, 100'000u);
  EXPECT_LE(fired_at, 100'000u + TimerWheel::kTickNs);
  EXPECT_FALSE(w.IsArmed(&n));
}

TEST(TimerWheelTest, CancelAndRearm) {
  TimerWheel w;
  TimerNode a, b;
  w.Arm(&a, 50'000);
  w.Arm(&b, 60'000);
  w.Cancel(&a);
  w.Arm(&b, 500'000);  // re-arming moves it
  EXPECT_EQ(w.armed_count(), 1u);
  int fired = 0;
  w.Advance(400'000, [&](TimerNode*) { ++fired; });
  EXPECT_EQ(fired, 0);
  w.Advance(500'000, [&](TimerNode* n) {
    EXPECT_EQ(n, &b);
    ++fired;
  });
  EXPECT_EQ(fired, 1);
  w.Cancel(&b);  // cancelling an unarmed node is harmless
  EXPECT_EQ(w.armed_count(), 0u);
}

TEST(TimerWheelTest, TimersBeyondOneRevolutionWaitForTheirTime) {
  TimerWheel w;
  const uint64_t span = TimerWheel::kTickNs * TimerWheel::kSlots;
  TimerNode far, very_far;
  w.Arm(&far, 3 * span + 77);
  w.Arm(&very_far, 9'000'000'000'000ull);  // IBTA timeout 31 is ~2.4 hours
  std::vector<TimerNode*> fired;
  for (uint64_t t = 0; t < 4 * span; t += span / 7) {
    w.Advance(t, [&](TimerNode* n) { fired.push_back(n); });
    if (t < 3 * span + 77) {
      EXPECT_TRUE(fired.empty()) << t;
    }
  }
  w.Advance(4 * span, [&](TimerNode* n) { fired.push_back(n); });
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_EQ(fired[0], &far);
  EXPECT_TRUE(w.IsArmed(&very_far));
  w.Advance(9'000'000'000'000ull, [&](TimerNode* n) { fired.push_back(n); });
  EXPECT_EQ(fired.back(), &very_far);
}

TEST(TimerWheelTest, PastDeadlineFiresOnNextAdvance) {
  TimerWheel w;
  w.Advance(1'000'000, [](TimerNode*) {});
  TimerNode n;
  w.Arm(&n, 10);
  bool fired = false;
  w.Advance(1'000'000, [&](TimerNode*) { fired = true; });
  EXPECT_TRUE(fired);
}

TEST(TimerWheelTest, CallbackMayRearmAndCancelOthers) {
  TimerWheel w;
  TimerNode periodic, victim;
  w.Arm(&periodic, 20'000);
  w.Arm(&victim, 20'000);
  int ticks = 0;
  for (uint64_t t = 0; t <= 200'000; t += 5'000) {
    w.Advance(t, [&](TimerNode* n) {
      if (n == &periodic) {
        ++ticks;
        w.Cancel(&victim);
        w.Arm(&periodic, t + 20'000);
      } else {
        ADD_FAILURE() << "cancelled timer fired";
      }
    });
  }
  EXPECT_GE(ticks, 8);
  EXPECT_LE(ticks, 10);
}

TEST(TimerWheelTest, RandomTimersMatchReference) {
  TimerWheel w;
  std::mt19937_64 rng(42);
  constexpr int kTimers = 5000;
  std::vector<TimerNode> nodes(kTimers);
  std::multimap<uint64_t, int> reference;  // deadline -> node
  std::vector<uint64_t> deadline(kTimers);
  for (int i = 0; i < kTimers; ++i) {
    nodes[i].data = reinterpret_cast<void*>(static_cast<intptr_t>(i));
    deadline[i] = rng() % 2'000'000'000;  // up to 2 s: many revolutions
    w.Arm(&nodes[i], deadline[i]);
  }
  // Cancel a tenth of them.
  std::vector<bool> cancelled(kTimers);
  for (int i = 0; i < kTimers; i += 10) {
    w.Cancel(&nodes[i]);
    cancelled[i] = true;
  }
  int fired = 0;
  uint64_t now = 0;
  while (now < 2'100'000'000) {
    now += rng() % 3'000'000;
    w.Advance(now, [&](TimerNode* n) {
      int i = static_cast<int>(reinterpret_cast<intptr_t>(n->data));
      EXPECT_FALSE(cancelled[i]);
      EXPECT_LE(deadline[i], now) << "fired early";
      EXPECT_FALSE(w.IsArmed(n));
      ++fired;
      cancelled[i] = true;  // must not fire twice
    });
    for (int i = 0; i < kTimers; ++i) {
      if (!cancelled[i] && deadline[i] <= now) {
        ADD_FAILURE() << "timer " << i << " not fired";
      }
    }
    if (::testing::Test::HasFailure()) return;
  }
  EXPECT_EQ(fired, kTimers - kTimers / 10);
  EXPECT_EQ(w.armed_count(), 0u);
}

}  // namespace
}  // namespace vrdma::driver
