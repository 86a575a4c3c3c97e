// The daemon's event loop and a client context, through the control socket as a client
// sees them: requests routed by operation range to the handlers wired in, pollers run,
// verbs requests checked by the session (open device first, queries only on a pdev,
// quotas), a context's objects freed when it closes or its vdev is deleted.
#include "vdev/server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "tests/unit/vdev/netdev/netns.h"
#include "vdev/admin_requests.h"
#include "vdev/device_poller.h"
#include "vdev/protocol/admin_call.h"
#include "vdev/protocol/channel.h"
#include "vdev/verbs_requests.h"

namespace vrdma::vdev {
namespace {

// A poller that counts its passes and may claim pending work.
class CountingPoller : public Poller {
 public:
  explicit CountingPoller(std::atomic<int>* polls) : polls_(polls) {}
  int Poll(uint64_t) override {
    polls_->fetch_add(1, std::memory_order_relaxed);
    return 0;
  }

 private:
  std::atomic<int>* polls_;
};

// Answers with the operation number as its status (and counts the connections closed).
class EchoHandler : public RequestHandler {
 public:
  explicit EchoHandler(std::atomic<int>* closed) : closed_(closed) {}
  void Handle(Session&, proto::Message& msg, Reply* reply) override {
    reply->status = 0;
    uint16_t op = msg.header.op;
    reply->payload.assign(reinterpret_cast<uint8_t*>(&op), reinterpret_cast<uint8_t*>(&op) + 2);
  }
  void OnClose(Session&) override { closed_->fetch_add(1); }

 private:
  std::atomic<int>* closed_;
};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (getuid() != 0 || !testing::PrivateNetns()) GTEST_SKIP() << "needs root (netns)";
    char dir[] = "/tmp/vrdma-server-test.XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    socket_ = dir_ + "/vrdmad.sock";
    auto registry = std::make_unique<Registry>();
    auto pdev = Pdev::CreateEmbedded("pdev0");
    ASSERT_TRUE(pdev.ok()) << pdev.status();
    ASSERT_TRUE(registry->AddPdev(std::move(*pdev)).ok());
    auto vdev = registry->AddVdev("va", "pdev0", "vt0");
    ASSERT_TRUE(vdev.ok()) << vdev.status();
    ASSERT_TRUE(registry->SetQuotas(**vdev, {{Resource::kPd, 1}}).ok());
    auto server = Server::Create(ServerOptions{socket_}, std::move(registry));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    Server& s = *server_;
    s.AddPoller(std::make_unique<DevicePoller>(&s.registry(), &s.sessions()));
    s.AddPoller(std::make_unique<CountingPoller>(&polls_));
    ASSERT_TRUE(
        s.AddHandler(proto::kFirstVerbsOp, proto::kLastVerbsOp, std::make_unique<VerbsRequests>())
            .ok());
    ASSERT_TRUE(
        s.AddHandler(proto::kFirstAdminOp, proto::kLastAdminOp, std::make_unique<AdminRequests>(&s, std::nullopt))
            .ok());
    ASSERT_TRUE(s.AddHandler(200, 299, std::make_unique<EchoHandler>(&closed_)).ok());
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

  // Sends a request with no descriptors; returns the reply's status.
  int Call(int sock, proto::Op op, const void* req = nullptr, size_t len = 0,
           proto::Message* reply = nullptr) {
    proto::Message local;
    proto::Message* r = reply ? reply : &local;
    int err = proto::Call(sock, op, req, len, nullptr, 0, r);
    EXPECT_EQ(err, 0);
    return err ? -1 : r->header.status;
  }

  // Opens `name` on `sock`; *async_read gets the client end of its async event socketpair.
  int Open(int sock, const char* name, int* async_read) {
    int pipefd[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pipefd), 0);
    proto::OpenDeviceRequest req{};
    std::snprintf(req.name, sizeof req.name, "%s", name);
    proto::Message reply;
    int err = proto::Call(sock, proto::Op::kOpenDevice, &req, sizeof req, &pipefd[1], 1, &reply);
    close(pipefd[1]);
    *async_read = pipefd[0];
    EXPECT_EQ(err, 0);
    if (reply.header.status == 0) {
      EXPECT_EQ(reply.fd_count(), 2u);  // context page, doorbell
    }
    return err ? -1 : reply.header.status;
  }

  std::string Admin(const std::vector<std::string>& words, int* status = nullptr) {
    proto::AdminReply reply;
    EXPECT_EQ(proto::CallAdmin(words, false, &reply, socket_), 0);
    if (status) *status = reply.status;
    return reply.text;
  }

  std::string dir_, socket_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  std::atomic<int> polls_{0};
  std::atomic<int> closed_{0};
};

TEST(ServerRoutes, OverlappingRangesAreRefused) {
  auto server =
      Server::Create(ServerOptions{"/tmp/vrdma-server-routes.sock"}, std::make_unique<Registry>());
  ASSERT_TRUE(server.ok()) << server.status();
  std::atomic<int> closed{0};
  EXPECT_TRUE((*server)->AddHandler(10, 20, std::make_unique<EchoHandler>(&closed)).ok());
  EXPECT_EQ((*server)->AddHandler(20, 30, std::make_unique<EchoHandler>(&closed)).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ((*server)->AddHandler(5, 40, std::make_unique<EchoHandler>(&closed)).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ((*server)->AddHandler(31, 30, std::make_unique<EchoHandler>(&closed)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE((*server)->AddHandler(21, 30, std::make_unique<EchoHandler>(&closed)).ok());
}

TEST_F(ServerTest, RequestsGoToTheHandlerOfTheirRange) {
  int s = Connect();
  proto::Message reply;
  ASSERT_EQ(Call(s, static_cast<proto::Op>(234), nullptr, 0, &reply), 0);
  ASSERT_EQ(reply.payload.size(), 2u);
  uint16_t op;
  std::memcpy(&op, reply.payload.data(), 2);
  EXPECT_EQ(op, 234);
  // No layer answers 300 onwards: refused, and the connection stays usable.
  EXPECT_EQ(Call(s, static_cast<proto::Op>(300)), EOPNOTSUPP);
  EXPECT_EQ(Call(s, proto::Op::kListDevices), 0);
  close(s);
}

TEST_F(ServerTest, PollersRunAndHandlersHearOfClosedConnections) {
  int s = Connect();
  EXPECT_EQ(Call(s, proto::Op::kListDevices), 0);
  close(s);
  // The loop runs its pollers on every pass, and tells every handler of the close.
  for (int i = 0; i < 200 && closed_.load() == 0; ++i) usleep(10000);
  EXPECT_EQ(closed_.load(), 1);
  EXPECT_GT(polls_.load(), 0);
}

TEST_F(ServerTest, ListDevicesNamesVdevsThenPdevs) {
  int s = Connect();
  proto::Message reply;
  ASSERT_EQ(Call(s, proto::Op::kListDevices, nullptr, 0, &reply), 0);
  proto::ListDevicesReply head;
  ASSERT_TRUE(reply.Copy(&head));
  ASSERT_EQ(head.count, 2u);
  ASSERT_EQ(reply.payload.size(), sizeof head + 2 * sizeof(proto::DeviceRecord));
  proto::DeviceRecord rec[2];
  std::memcpy(rec, reply.payload.data() + sizeof head, sizeof rec);
  EXPECT_STREQ(rec[0].name, "va");
  EXPECT_STREQ(rec[0].netdev, "vt0");
  EXPECT_EQ(rec[0].type, static_cast<uint32_t>(proto::DeviceType::kVirtual));
  EXPECT_STREQ(rec[1].name, "pdev0");
  EXPECT_EQ(rec[1].type, static_cast<uint32_t>(proto::DeviceType::kPhysical));
  close(s);
}

TEST_F(ServerTest, VerbsNeedAnOpenVdevAndKeepItsQuota) {
  int s = Connect();
  EXPECT_EQ(Call(s, proto::Op::kAllocPd), ENODEV);  // nothing open yet
  int async_fd;
  proto::OpenDeviceRequest nosuch{};
  std::snprintf(nosuch.name, sizeof nosuch.name, "nosuch");
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  proto::Message reply;
  ASSERT_EQ(proto::Call(s, proto::Op::kOpenDevice, &nosuch, sizeof nosuch, &pipefd[1], 1, &reply),
            0);
  EXPECT_EQ(reply.header.status, ENODEV);
  close(pipefd[0]);
  close(pipefd[1]);
  ASSERT_EQ(Open(s, "va", &async_fd), 0);
  EXPECT_EQ(Open(s, "va", &async_fd), EINVAL);  // one device per context
  ASSERT_EQ(Call(s, proto::Op::kAllocPd, nullptr, 0, &reply), 0);
  proto::HandleMsg pd;
  ASSERT_TRUE(reply.Copy(&pd));
  EXPECT_EQ(Call(s, proto::Op::kAllocPd), ENOMEM);  // quota pd 1
  // The context's objects, as `res show pd` lists them.
  std::string pds = Admin({"res", "show", "pd"});
  EXPECT_NE(pds.find("pdn " + std::to_string(pd.handle)), std::string::npos) << pds;
  proto::HandleMsg bad{pd.handle + 1000, 0};
  EXPECT_EQ(Call(s, proto::Op::kDeallocPd, &bad, sizeof bad), EINVAL);  // not its PD
  EXPECT_EQ(Call(s, proto::Op::kDeallocPd, &pd, sizeof pd), 0);
  EXPECT_EQ(Call(s, proto::Op::kAllocPd), 0);  // the quota was given back
  close(async_fd);
  close(s);
}

TEST_F(ServerTest, APdevContextMayOnlyQuery) {
  int s = Connect();
  int async_fd;
  ASSERT_EQ(Open(s, "pdev0", &async_fd), 0);
  proto::Message reply;
  ASSERT_EQ(Call(s, proto::Op::kQueryDevice, nullptr, 0, &reply), 0);
  proto::QueryDeviceReply q;
  ASSERT_TRUE(reply.Copy(&q));
  EXPECT_GT(q.attr.max_qp, 0);
  EXPECT_EQ(Call(s, proto::Op::kAllocPd), EOPNOTSUPP);
  EXPECT_EQ(Call(s, proto::Op::kCreateCq), EOPNOTSUPP);
  close(async_fd);
  close(s);
}

TEST_F(ServerTest, DeletingTheVdevDetachesItsContexts) {
  int s = Connect();
  int async_fd;
  ASSERT_EQ(Open(s, "va", &async_fd), 0);
  ASSERT_EQ(Call(s, proto::Op::kAllocPd), 0);
  int status = -1;
  Admin({"dev", "del", "va"}, &status);
  ASSERT_EQ(status, 0);
  // The context hears IBV_EVENT_DEVICE_FATAL and every further request fails with EIO.
  struct {
    uint64_t element;
    uint32_t event_type;
    uint32_t reserved;
  } event{};
  ASSERT_EQ(read(async_fd, &event, sizeof event), static_cast<ssize_t>(sizeof event));
  EXPECT_EQ(event.event_type, static_cast<uint32_t>(IBV_EVENT_DEVICE_FATAL));
  EXPECT_EQ(Call(s, proto::Op::kAllocPd), EIO);
  EXPECT_EQ(Call(s, proto::Op::kListDevices), EIO);
  close(async_fd);
  close(s);
}

}  // namespace
}  // namespace vrdma::vdev
