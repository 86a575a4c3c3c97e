// NeighbourQuery, one step at a time (issue 12, item 7): a neighbour whose answer arrives
// while it waits resolves at the next poll, one that is silent stays unresolved without blocking
// any poll and then times out (DeadlineExceeded: ETIMEDOUT, as ib_core), no route is NotFound at
// Start, and a poll before the next look is due makes no request. In a network namespace of the
// test's own (root): vt0 10.9.8.7/24; answers are neighbour entries the test writes.
#include "vdev/netdev/neighbour.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>

#include "gtest/gtest.h"
#include "tests/unit/vdev/netdev/netns.h"

namespace vrdma::vdev {
namespace {

uint64_t Now() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

driver::wire::Gid V4(const char* ip) {
  driver::wire::Gid g{};
  g[10] = g[11] = 0xff;
  inet_pton(AF_INET, ip, g.data() + 12);
  return g;
}

class NeighbourQueryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (getuid() != 0 || !testing::PrivateNetns()) GTEST_SKIP() << "needs root (netns)";
    ifindex_ = static_cast<int>(if_nametoindex("vt0"));
    ASSERT_GT(ifindex_, 0);
    ASSERT_EQ(std::system("ip neigh flush dev vt0"), 0);
  }

  // Polls every millisecond until an answer; *polls counts the polls that returned none.
  absl::StatusOr<driver::wire::MacAddr> PollToEnd(NeighbourQuery& q, int* polls) {
    for (;;) {
      uint64_t t0 = Now();
      auto done = q.Poll(Now());
      EXPECT_LT(Now() - t0, 50'000'000u) << "a poll blocked";
      if (done) return *done;
      ++*polls;
      usleep(1000);
    }
  }

  int ifindex_ = 0;
};

// The answer arrives while the query waits (the entry is written as ARP would): the next
// poll due has the MAC.
TEST_F(NeighbourQueryTest, AnAnswerArrivingMeanwhileResolves) {
  uint64_t now = Now();
  auto q = NeighbourQuery::Start(ifindex_, V4("10.9.8.51"), std::chrono::milliseconds(3000), now);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_FALSE((*q)->Poll(now).has_value());
  EXPECT_FALSE((*q)->Poll((*q)->next_poll_ns()).has_value());
  ASSERT_EQ(
      std::system("ip neigh replace 10.9.8.51 lladdr 02:aa:bb:cc:dd:ee dev vt0 nud reachable"), 0);
  auto mac = (*q)->Poll((*q)->next_poll_ns());
  ASSERT_TRUE(mac.has_value());
  ASSERT_TRUE(mac->ok()) << mac->status();
  EXPECT_EQ(**mac, (driver::wire::MacAddr{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}));
}

// An entry already there answers at the first poll.
TEST_F(NeighbourQueryTest, AKnownNeighbourAnswersAtOnce) {
  ASSERT_EQ(
      std::system("ip neigh replace 10.9.8.52 lladdr 02:aa:bb:cc:dd:01 dev vt0 nud permanent"), 0);
  uint64_t now = Now();
  auto q = NeighbourQuery::Start(ifindex_, V4("10.9.8.52"), std::chrono::milliseconds(3000), now);
  ASSERT_TRUE(q.ok()) << q.status();
  auto mac = (*q)->Poll(now);
  ASSERT_TRUE(mac.has_value());
  ASSERT_TRUE(mac->ok()) << mac->status();
  EXPECT_EQ((**mac)[5], 0x01);
}

TEST_F(NeighbourQueryTest, ASilentNeighbourTimesOutWithoutBlocking) {
  uint64_t start = Now();
  auto q = NeighbourQuery::Start(ifindex_, V4("10.9.8.99"), std::chrono::milliseconds(300), start);
  ASSERT_TRUE(q.ok()) << q.status();
  int polls = 0;
  auto mac = PollToEnd(**q, &polls);
  EXPECT_EQ(mac.status().code(), absl::StatusCode::kDeadlineExceeded) << mac.status();
  EXPECT_GE(Now() - start, 300'000'000u);
  EXPECT_GT(polls, 100) << "the waiting was not spread over polls";
}

TEST_F(NeighbourQueryTest, APollBeforeItIsDueMakesNoRequest) {
  uint64_t now = Now();
  auto q = NeighbourQuery::Start(ifindex_, V4("10.9.8.98"), std::chrono::milliseconds(300), now);
  ASSERT_TRUE(q.ok());
  EXPECT_FALSE((*q)->Poll(now).has_value());  // looked, solicited
  uint64_t next = (*q)->next_poll_ns();
  EXPECT_GE(next, now + 4'000'000u);
  EXPECT_FALSE((*q)->Poll(next - 1).has_value());
  EXPECT_EQ((*q)->next_poll_ns(), next);
}

// A destination no unicast route reaches (the subnet's broadcast address) is NotFound at
// Start: EHOSTUNREACH. (A lookup bound to the interface takes any other address, routed or
// not, as on-link, as the kernel's does.)
TEST_F(NeighbourQueryTest, ANonUnicastDestinationIsNotFoundAtStart) {
  auto q = NeighbourQuery::Start(ifindex_, V4("10.9.8.255"), std::chrono::milliseconds(300), Now());
  EXPECT_EQ(q.status().code(), absl::StatusCode::kNotFound) << q.status();
}

TEST_F(NeighbourQueryTest, TheBlockingFormStillWorks) {
  auto mac = ResolveNeighbour(ifindex_, V4("10.9.8.97"), std::chrono::milliseconds(200));
  EXPECT_EQ(mac.status().code(), absl::StatusCode::kDeadlineExceeded);
  ASSERT_EQ(
      std::system("ip neigh replace 10.9.8.53 lladdr 02:aa:bb:cc:dd:02 dev vt0 nud permanent"), 0);
  EXPECT_TRUE(ResolveNeighbour(ifindex_, V4("10.9.8.53"), std::chrono::milliseconds(3000)).ok());
}

}  // namespace
}  // namespace vrdma::vdev
