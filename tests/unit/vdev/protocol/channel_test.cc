#include "vdev/protocol/channel.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

namespace vrdma::proto {
namespace {

class ChannelTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, fds_), 0); }
  void TearDown() override {
    if (fds_[0] >= 0) close(fds_[0]);
    if (fds_[1] >= 0) close(fds_[1]);
  }
  int fds_[2] = {-1, -1};
};

TEST_F(ChannelTest, MessageWithPayloadAndDescriptors) {
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  HandleMsg h{42, 0};
  ASSERT_EQ(SendMessage(fds_[0], Op::kDeregMr, 0, &h, sizeof h, pipefd, 2), 0);
  Message m;
  ASSERT_EQ(ReceiveMessage(fds_[1], &m), 0);
  EXPECT_EQ(m.header.op, static_cast<uint16_t>(Op::kDeregMr));
  HandleMsg got{};
  ASSERT_TRUE(m.Copy(&got));
  EXPECT_EQ(got.handle, 42u);
  ASSERT_EQ(m.fd_count(), 2u);
  int r = m.TakeFd(0);
  int w = m.TakeFd(1);
  ASSERT_EQ(write(w, "x", 1), 1);
  char c;
  ASSERT_EQ(read(r, &c, 1), 1);  // the passed descriptors are the same pipe
  EXPECT_EQ(c, 'x');
  EXPECT_EQ(m.TakeFd(2), -1);
  close(r);
  close(w);
  close(pipefd[0]);
  close(pipefd[1]);
}

TEST_F(ChannelTest, ShortPayloadIsNotCopied) {
  uint8_t one = 1;
  ASSERT_EQ(SendMessage(fds_[0], Op::kAllocPd, 0, &one, 1), 0);
  Message m;
  ASSERT_EQ(ReceiveMessage(fds_[1], &m), 0);
  HandleMsg h;
  EXPECT_FALSE(m.Copy(&h));
}

TEST_F(ChannelTest, GarbageIsAProtocolError) {
  const char junk[] = "definitely not a vrdma message header";
  ASSERT_GT(send(fds_[0], junk, sizeof junk, 0), 0);
  Message m;
  EXPECT_EQ(ReceiveMessage(fds_[1], &m), EPROTO);
  uint8_t tiny = 7;
  ASSERT_GT(send(fds_[0], &tiny, 1, 0), 0);
  EXPECT_EQ(ReceiveMessage(fds_[1], &m), EPROTO);
  // A header whose length disagrees with the datagram.
  MsgHeader h{kMagic, kVersion, 1, 100, 0};
  ASSERT_GT(send(fds_[0], &h, sizeof h, 0), 0);
  EXPECT_EQ(ReceiveMessage(fds_[1], &m), EPROTO);
}

TEST_F(ChannelTest, ClosedPeer) {
  close(fds_[0]);
  fds_[0] = -1;
  Message m;
  EXPECT_EQ(ReceiveMessage(fds_[1], &m), ECONNRESET);
}

TEST_F(ChannelTest, TooManyDescriptorsRefused) {
  std::vector<int> many(kMaxFds + 1, 0);
  EXPECT_EQ(SendMessage(fds_[0], Op::kRegMr, 0, nullptr, 0, many.data(), many.size()), EMSGSIZE);
}

}  // namespace
}  // namespace vrdma::proto
