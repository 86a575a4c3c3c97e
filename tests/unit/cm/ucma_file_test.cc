// cm/ucma_file: a CM file's IDs and events, and the one-byte signal that keeps the
// client's channel readable exactly while events wait (protocol.h).
#include "cm/ucma_file.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gtest/gtest.h"

namespace vrdma::cm {
namespace {

class UcmaFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds_), 0);
    file_ = std::make_unique<UcmaFile>(nullptr, fds_[1], 42);
  }
  void TearDown() override {
    file_.reset();  // closes the daemon's end
    close(fds_[0]);
  }
  bool Readable() {
    pollfd p{fds_[0], POLLIN, 0};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
  }
  void TakeByte() {
    char b;
    ASSERT_EQ(recv(fds_[0], &b, 1, MSG_DONTWAIT), 1);
  }
  rdma_ucm_event_resp EventFor(const CmId& id, uint32_t event) {
    rdma_ucm_event_resp r{};
    r.id = id.handle;
    r.event = event;
    return r;
  }
  int fds_[2];
  std::unique_ptr<UcmaFile> file_;
};

TEST_F(UcmaFileTest, ChannelIsReadableExactlyWhileEventsWait) {
  CmId* id = file_->NewId(7);
  ASSERT_NE(id, nullptr);
  EXPECT_FALSE(Readable());
  ASSERT_TRUE(file_->Enqueue(id->handle, EventFor(*id, kEventAddrResolved)));
  EXPECT_TRUE(Readable());
  ASSERT_TRUE(file_->Enqueue(id->handle, EventFor(*id, kEventRouteResolved)));
  rdma_ucm_event_resp out;
  bool drained = true;
  ASSERT_TRUE(file_->Dequeue(&out, &drained));
  EXPECT_EQ(out.event, kEventAddrResolved);
  EXPECT_FALSE(drained);
  ASSERT_TRUE(file_->Dequeue(&out, &drained));
  EXPECT_EQ(out.event, kEventRouteResolved);
  EXPECT_TRUE(drained);  // the client takes the byte: not readable any more
  TakeByte();
  EXPECT_FALSE(Readable());
  EXPECT_FALSE(file_->Dequeue(&out, &drained));
}

TEST_F(UcmaFileTest, DestroyDropsTheIdsEventsAndCountsWhatWasReported) {
  CmId* a = file_->NewId(1);
  CmId* b = file_->NewId(2);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(file_->NewId(2), nullptr) << "handles are unique";
  file_->Enqueue(1, EventFor(*a, kEventAddrResolved));
  file_->Enqueue(1, EventFor(*a, kEventRouteResolved));
  file_->Enqueue(2, EventFor(*b, kEventAddrResolved));
  rdma_ucm_event_resp out;
  bool drained;
  ASSERT_TRUE(file_->Dequeue(&out, &drained));  // a's first: reported
  uint32_t reported = 0;
  std::deque<QueuedEvent> dropped;
  std::unique_ptr<CmId> gone = file_->Take(1, &reported, &drained, &dropped);
  ASSERT_NE(gone, nullptr);
  EXPECT_EQ(reported, 1u);
  EXPECT_FALSE(drained) << "b's event still waits";
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0].resp.event, kEventRouteResolved);
  EXPECT_EQ(file_->Find(1), nullptr);
  gone = file_->Take(2, &reported, &drained);
  EXPECT_EQ(reported, 0u);
  EXPECT_TRUE(drained) << "the last waiting event went with b";
}

TEST_F(UcmaFileTest, AJoinsEventsCountForItAndItsIdAndGoWhenItIsLeft) {
  CmId* id = file_->NewId(5);
  ASSERT_NE(id, nullptr);
  id->multicasts.push_back(CmMulticast{.handle = 100});
  id->multicasts.push_back(CmMulticast{.handle = 101});
  ASSERT_TRUE(file_->Enqueue(5, EventFor(*id, kEventMulticastJoin), 100));
  ASSERT_TRUE(file_->Enqueue(5, EventFor(*id, kEventMulticastJoin), 101));
  ASSERT_TRUE(file_->Enqueue(5, EventFor(*id, kEventMulticastJoin), 101));
  rdma_ucm_event_resp out;
  bool drained;
  ASSERT_TRUE(file_->Dequeue(&out, &drained));  // join 100's
  ASSERT_TRUE(file_->Dequeue(&out, &drained));  // join 101's first
  EXPECT_EQ(id->multicasts[0].reported, 1u);
  EXPECT_EQ(id->multicasts[1].reported, 1u);
  // Leaving 101 drops its unread event: the queue is then empty.
  EXPECT_TRUE(file_->DropMulticastEvents(101));
  EXPECT_EQ(file_->queued(), 0u);
  EXPECT_FALSE(file_->DropMulticastEvents(100)) << "nothing was queued";
  // The ID counts every event read of its joins too (DESTROY_ID's events_reported).
  uint32_t reported = 0;
  std::unique_ptr<CmId> gone = file_->Take(5, &reported, &drained);
  EXPECT_EQ(reported, 2u);
}

TEST_F(UcmaFileTest, AQueueFullRefusesWithoutBlocking) {
  CmId* id = file_->NewId(3);
  for (size_t i = 0; i < UcmaFile::kMaxQueuedEvents; ++i) {
    ASSERT_TRUE(file_->Enqueue(id->handle, EventFor(*id, kEventAddrResolved)));
  }
  EXPECT_FALSE(file_->Enqueue(id->handle, EventFor(*id, kEventAddrResolved)));
  EXPECT_EQ(file_->queued(), UcmaFile::kMaxQueuedEvents);
}

TEST_F(UcmaFileTest, AnAdoptedIdKeepsItsHandle) {
  int other[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, other), 0);
  UcmaFile to(nullptr, other[1], 43);
  CmId* id = file_->NewId(9);
  id->uid = 1234;
  uint32_t reported;
  bool drained;
  CmId* moved = to.Adopt(file_->Take(9, &reported, &drained));
  EXPECT_EQ(moved->handle, 9u);
  EXPECT_EQ(moved->uid, 1234u);
  EXPECT_EQ(moved->file, &to);
  EXPECT_EQ(to.Find(9), moved);
  close(other[0]);
}

}  // namespace
}  // namespace vrdma::cm
