// Requests answered later (issue 12, item 7): a handler that says kReplyLater holds up
// only its own client. The server reads nothing more from that connection until the
// reply is sent, answers every other connection meanwhile, sends the reply once the
// handler's Resume has it, and forgets a waiting connection that closes (OnClose, and no
// Resume after it).
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "vdev/protocol/channel.h"
#include "vdev/server.h"

namespace vrdma::vdev {
namespace {

constexpr uint16_t kOpLater = 400;  // answered later, once released
constexpr uint16_t kOpEcho = 401;   // answered at once

// kOpLater waits until `release` is set; its reply carries how many Resume calls it took.
// Every reply's payload is its request's first byte, so the order of answers shows.
class LaterHandler : public RequestHandler {
 public:
  void Handle(Session&, proto::Message& msg, Reply* reply) override {
    handled.fetch_add(1);
    uint8_t tag = msg.payload.empty() ? 0 : msg.payload[0];
    if (msg.header.op == kOpLater) {
      later_tag_ = tag;
      reply->status = kReplyLater;
      waiting.store(true);
      return;
    }
    reply->status = 0;
    reply->payload.assign(1, tag);
  }
  bool Resume(Session&, uint64_t now_ns, Reply* reply) override {
    if (closed.load()) resumed_after_close.fetch_add(1);
    resumes.fetch_add(1);
    EXPECT_GT(now_ns, 0u);
    if (!release.load()) return false;
    waiting.store(false);
    reply->status = ETIMEDOUT;  // what a neighbour that never answers gives
    reply->payload.assign(1, later_tag_);
    return true;
  }
  void OnClose(Session&) override { closed.fetch_add(1); }

  std::atomic<int> handled{0}, resumes{0}, closed{0}, resumed_after_close{0};
  std::atomic<bool> release{false}, waiting{false};

 private:
  uint8_t later_tag_ = 0;  // the waiting request's
};

class ServerLaterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/vrdma-later-test.XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    socket_ = dir_ + "/vrdmad.sock";
    auto server = Server::Create(ServerOptions{socket_}, std::make_unique<Registry>());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    auto handler = std::make_unique<LaterHandler>();
    handler_ = handler.get();
    ASSERT_TRUE(server_->AddHandler(kOpLater, kOpEcho, std::move(handler)).ok());
    thread_ = std::thread([this] { server_->Run(); });
  }

  void TearDown() override {
    if (server_) {
      server_->Stop();
      thread_.join();
      server_.reset();
    }
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }

  int Connect() {
    int s = proto::ConnectToSocket(socket_);
    EXPECT_GE(s, 0);
    return s;
  }
  void Send(int sock, uint16_t op, uint8_t tag) {
    ASSERT_EQ(proto::SendMessage(sock, static_cast<proto::Op>(op), 0, &tag, 1, nullptr, 0), 0);
  }
  // The next reply on `sock` within `ms` (false when none came).
  bool Receive(int sock, int ms, proto::Message* reply) {
    for (int i = 0; i < ms; ++i) {
      int err = proto::ReceiveMessage(sock, reply);
      if (err == 0) return true;
      if (err != EAGAIN && err != EWOULDBLOCK) return false;
      usleep(1000);
    }
    return false;
  }
  int ConnectNonBlocking() {
    int s = Connect();
    fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK);
    return s;
  }
  bool WaitFor(const std::atomic<bool>& flag, bool value) {
    for (int i = 0; i < 2000 && flag.load() != value; ++i) usleep(1000);
    return flag.load() == value;
  }

  std::string dir_, socket_;
  std::unique_ptr<Server> server_;
  LaterHandler* handler_ = nullptr;
  std::thread thread_;
};

TEST_F(ServerLaterTest, OthersAreAnsweredWhileOneWaits) {
  int a = ConnectNonBlocking();
  int b = ConnectNonBlocking();
  Send(a, kOpLater, 1);
  ASSERT_TRUE(WaitFor(handler_->waiting, true));
  // A's next request is queued behind its first, unread.
  Send(a, kOpEcho, 2);
  proto::Message reply;
  for (uint8_t i = 10; i < 20; ++i) {
    Send(b, kOpEcho, i);
    ASSERT_TRUE(Receive(b, 2000, &reply)) << "B was held up by A's waiting request";
    EXPECT_EQ(reply.header.status, 0);
    ASSERT_EQ(reply.payload.size(), 1u);
    EXPECT_EQ(reply.payload[0], i);
  }
  EXPECT_FALSE(Receive(a, 50, &reply)) << "A was answered before its reply was ready";
  EXPECT_EQ(handler_->handled.load(), 11) << "A's second request was read while A waited";
  int resumes = handler_->resumes.load();
  usleep(20000);
  EXPECT_GT(handler_->resumes.load(), resumes) << "Resume is asked again while it waits";
  // Released: A gets its first reply (the handler's status), then its second one.
  handler_->release.store(true);
  ASSERT_TRUE(Receive(a, 2000, &reply));
  EXPECT_EQ(reply.header.op, kOpLater);
  EXPECT_EQ(reply.header.status, ETIMEDOUT);
  ASSERT_EQ(reply.payload.size(), 1u);
  EXPECT_EQ(reply.payload[0], 1);
  ASSERT_TRUE(Receive(a, 2000, &reply));
  EXPECT_EQ(reply.header.op, kOpEcho);
  EXPECT_EQ(reply.header.status, 0);
  ASSERT_EQ(reply.payload.size(), 1u);
  EXPECT_EQ(reply.payload[0], 2);
  close(a);
  close(b);
}

TEST_F(ServerLaterTest, AWaitingConnectionThatClosesIsForgotten) {
  int a = ConnectNonBlocking();
  Send(a, kOpLater, 1);
  ASSERT_TRUE(WaitFor(handler_->waiting, true));
  close(a);
  for (int i = 0; i < 2000 && handler_->closed.load() == 0; ++i) usleep(1000);
  ASSERT_EQ(handler_->closed.load(), 1) << "the close of a waiting connection went unheard";
  usleep(50000);
  EXPECT_EQ(handler_->resumed_after_close.load(), 0);
  // The loop goes on: a new connection is answered.
  int b = ConnectNonBlocking();
  Send(b, kOpEcho, 7);
  proto::Message reply;
  ASSERT_TRUE(Receive(b, 2000, &reply));
  EXPECT_EQ(reply.payload[0], 7);
  close(b);
}

// The daemon stops while a reply waits: no Resume after the sessions are gone.
TEST_F(ServerLaterTest, StopWhileWaiting) {
  int a = ConnectNonBlocking();
  Send(a, kOpLater, 1);
  ASSERT_TRUE(WaitFor(handler_->waiting, true));
  server_->Stop();
  thread_.join();
  EXPECT_EQ(handler_->closed.load(), 1);
  server_.reset();
  close(a);
}

}  // namespace
}  // namespace vrdma::vdev
