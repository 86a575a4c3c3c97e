// The daemon's event loop and a client context, through the control socket as a client
// sees them: requests routed by operation range to the handlers wired in, pollers run,
// verbs requests checked by the session (open device first, queries only on a pdev,
// quotas), a context's objects freed when it closes or its vdev is deleted.
#include "vdev/server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
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

  // Opens `name` on `sock`; *async_read gets the client end of its async event socketpair,
  // *token (when given) the context's token (a vdev's context has one).
  int Open(int sock, const char* name, int* async_read, int* token = nullptr) {
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
      // Context page, doorbell, and for a vdev the token.
      EXPECT_EQ(reply.fd_count(), std::string_view(name).starts_with("pdev") ? 2u : 3u);
      if (token && reply.fd_count() == 3) *token = reply.TakeFd(2);
    }
    return err ? -1 : reply.header.status;
  }

  // Joins the context whose token is `token` on `sock` (kImportContext, as naming vdev
  // `name`); returns the reply's status.
  int Import(int sock, const char* name, int token, int* async_read) {
    int pair[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair), 0);
    proto::ImportContextRequest req{};
    std::snprintf(req.name, sizeof req.name, "%s", name);
    const int fds[2] = {pair[1], token};
    proto::Message reply;
    int err = proto::Call(sock, proto::Op::kImportContext, &req, sizeof req, fds, 2, &reply);
    close(pair[1]);
    *async_read = pair[0];
    EXPECT_EQ(err, 0);
    if (!err && reply.header.status == 0) {
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

// A daemon with more devices than one message holds answers in pages: a request says
// where to start, the answer where it started and how many there are in all.
TEST_F(ServerTest, ListDevicesAnswersFromTheIndexAsked) {
  int s = Connect();
  proto::ListDevicesRequest from_second{1, 0};
  proto::Message reply;
  ASSERT_EQ(Call(s, proto::Op::kListDevices, &from_second, sizeof from_second, &reply), 0);
  proto::ListDevicesReply head;
  ASSERT_TRUE(reply.Copy(&head));
  EXPECT_EQ(head.count, 2u);
  EXPECT_EQ(head.first, 1u);
  ASSERT_EQ(reply.payload.size(), sizeof head + sizeof(proto::DeviceRecord));
  proto::DeviceRecord rec;
  std::memcpy(&rec, reply.payload.data() + sizeof head, sizeof rec);
  EXPECT_STREQ(rec.name, "pdev0");
  // Past the end: none, and a malformed request is refused.
  proto::ListDevicesRequest past{7, 0};
  ASSERT_EQ(Call(s, proto::Op::kListDevices, &past, sizeof past, &reply), 0);
  EXPECT_EQ(reply.payload.size(), sizeof head);
  EXPECT_EQ(Call(s, proto::Op::kListDevices, "x", 1, &reply), EINVAL);
  // The client's helper gathers every page.
  std::vector<proto::DeviceRecord> all;
  ASSERT_EQ(proto::ListAllDevices(s, &all), 0);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_STREQ(all[0].name, "va");
  EXPECT_STREQ(all[1].name, "pdev0");
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

TEST_F(ServerTest, ImportJoinsTheContextItsTokenNames) {
  int owner = Connect();
  int owner_async, token = -1;
  ASSERT_EQ(Open(owner, "va", &owner_async, &token), 0);
  ASSERT_GE(token, 0);
  proto::Message reply;
  ASSERT_EQ(Call(owner, proto::Op::kAllocPd, nullptr, 0, &reply), 0);
  proto::HandleMsg pd;
  ASSERT_TRUE(reply.Copy(&pd));

  // A memfd the client made, named as a token is, names nothing.
  int forged = memfd_create("vrdma-context:va", MFD_CLOEXEC);
  int s = Connect();
  int async_fd;
  EXPECT_EQ(Import(s, "va", forged, &async_fd), EINVAL);
  close(async_fd);
  close(forged);
  EXPECT_EQ(Import(s, "nosuch", token, &async_fd), ENODEV);
  close(async_fd);

  int joined = Connect();
  int joined_async;
  ASSERT_EQ(Import(joined, "va", token, &joined_async), 0);
  EXPECT_EQ(Call(joined, proto::Op::kOpenDevice), EINVAL);  // it has its device
  // One table of objects: the owner's PD is the joined context's, and the quota (pd 1)
  // is one.
  proto::ImportObjectRequest imp{proto::ImportKind::kPd, pd.handle};
  EXPECT_EQ(Call(joined, proto::Op::kImportObject, &imp, sizeof imp), 0);
  imp.handle = pd.handle + 1000;
  EXPECT_EQ(Call(joined, proto::Op::kImportObject, &imp, sizeof imp), EINVAL);
  EXPECT_EQ(Call(joined, proto::Op::kAllocPd), ENOMEM);

  // The owner goes; its objects stay while the joined context is open.
  close(owner);
  close(owner_async);
  usleep(100000);  // for the daemon to hear the close (either way the PD must stay)
  EXPECT_NE(Admin({"res", "show", "pd"}).find("pdn " + std::to_string(pd.handle)),
            std::string::npos);
  EXPECT_EQ(Call(joined, proto::Op::kDeallocPd, &pd, sizeof pd), 0);
  EXPECT_EQ(Call(joined, proto::Op::kAllocPd), 0);
  // The last of them goes: everything is freed.
  close(joined);
  close(joined_async);
  std::string left;
  for (int i = 0; i < 100; ++i) {
    left = Admin({"res", "show", "pd"});
    if (left.find("pdn") == std::string::npos) break;
    usleep(10000);
  }
  EXPECT_EQ(left.find("pdn"), std::string::npos) << left;
  close(token);
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
