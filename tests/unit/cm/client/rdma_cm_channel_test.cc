// ChannelTable (cm/client/rdma_cm_channel.h) against a fake daemon: the rdma_cm uAPI as
// librdmacm writes it, without libc interposition.
#include "cm/client/rdma_cm_channel.h"

#include <fcntl.h>
#include <poll.h>
#include <rdma/rdma_user_cm.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/cm/client/fake_daemon.h"

namespace vrdma::cm_client {
namespace {

using testing::FakeDaemon;
using namespace std::chrono_literals;

// enum rdma_cm_event_type (rdma/rdma_cma.h), the event field of rdma_ucm_event_resp.
enum : uint32_t {
  RDMA_CM_EVENT_ADDR_RESOLVED = 0,
  RDMA_CM_EVENT_ROUTE_RESOLVED = 2,
  RDMA_CM_EVENT_CONNECT_REQUEST = 4,
  RDMA_CM_EVENT_ESTABLISHED = 9,
  RDMA_CM_EVENT_DISCONNECTED = 10,
};

// A command as librdmacm writes it: the header, then the command struct.
template <typename Cmd>
struct Wire {
  rdma_ucm_cmd_hdr hdr;
  Cmd cmd;
};

template <typename Cmd>
Wire<Cmd> Make(uint32_t cmd_id, const Cmd& cmd, uint16_t out = 0) {
  static_assert(sizeof(Wire<Cmd>) == sizeof(rdma_ucm_cmd_hdr) + sizeof(Cmd));
  Wire<Cmd> w{};
  w.hdr.cmd = cmd_id;
  w.hdr.in = sizeof(Cmd);
  w.hdr.out = out;
  w.cmd = cmd;
  return w;
}

template <typename T>
std::vector<uint8_t> Bytes(const T& v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  return std::vector<uint8_t>(p, p + sizeof v);
}

bool Readable(int fd) {
  pollfd pfd{fd, POLLIN, 0};
  return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

class ChannelTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vrdma-cm-client.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    daemon_ = std::make_unique<FakeDaemon>(dir_);
    setenv("VRDMA_SOCKET", daemon_->path().c_str(), 1);
  }
  void TearDown() override {
    for (int fd : fds_) {
      table_->Forget(fd);
      close(fd);
    }
    table_.reset();  // its connections close before the daemon goes
    daemon_.reset();
    rmdir(dir_.c_str());
    unsetenv("VRDMA_SOCKET");
  }
  int OpenChannel(int flags = O_RDWR | O_CLOEXEC) {
    int fd = table_->Open(flags);
    EXPECT_GE(fd, 0) << strerror(-fd);
    if (fd >= 0) fds_.push_back(fd);
    return fd;
  }
  // CREATE_ID with a response buffer; returns write()'s result.
  ssize_t CreateId(int fd, rdma_ucm_create_id_resp* resp) {
    rdma_ucm_create_id c{};
    c.uid = 0x1122334455667788;
    c.response = reinterpret_cast<uintptr_t>(resp);
    c.ps = RDMA_PS_TCP;
    auto w = Make(RDMA_USER_CM_CMD_CREATE_ID, c, sizeof *resp);
    std::optional<ssize_t> r = table_->Write(fd, &w, sizeof w);
    EXPECT_TRUE(r.has_value());
    return r.value_or(-EBADF);
  }
  ssize_t GetEvent(int fd, rdma_ucm_event_resp* resp) {
    rdma_ucm_get_event c{};
    c.response = reinterpret_cast<uintptr_t>(resp);
    auto w = Make(RDMA_USER_CM_CMD_GET_EVENT, c, sizeof *resp);
    std::optional<ssize_t> r = table_->Write(fd, &w, sizeof w);
    EXPECT_TRUE(r.has_value());
    return r.value_or(-EBADF);
  }
  static std::vector<uint8_t> Event(uint32_t id, uint32_t event) {
    rdma_ucm_event_resp e{};
    e.uid = 0xabc;
    e.id = id;
    e.event = event;
    return Bytes(e);
  }

  std::string dir_;
  std::unique_ptr<FakeDaemon> daemon_;
  std::unique_ptr<ChannelTable> table_ = std::make_unique<ChannelTable>();
  std::vector<int> fds_;
};

TEST_F(ChannelTableTest, OpenGivesAPollableFdThatIsNotReadable) {
  int fd = OpenChannel();
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(table_->MayBeChannel(fd));
  EXPECT_EQ(table_->size(), 1u);
  EXPECT_EQ(daemon_->open_files(), 1u);
  pollfd pfd{fd, POLLIN, 0};
  EXPECT_EQ(poll(&pfd, 1, 0), 0);
  EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  EXPECT_FALSE(fcntl(fd, F_GETFL) & O_NONBLOCK);
  // fstat says character device (what open_cdev() requires) for the channel only.
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_TRUE(table_->PatchStat(fd, &st));
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0666u);
  EXPECT_EQ(st.st_rdev, CmDeviceNumber());
  ASSERT_EQ(fstat(1, &st), 0);
  EXPECT_FALSE(table_->PatchStat(1, &st));
}

TEST_F(ChannelTableTest, OpenHonoursNonblockAndCloexec) {
  int fd = OpenChannel(O_RDWR | O_NONBLOCK);
  ASSERT_GE(fd, 0);
  EXPECT_FALSE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(fcntl(fd, F_GETFL) & O_NONBLOCK);
}

TEST_F(ChannelTableTest, OpenWithoutDaemonIsEnoent) {
  setenv("VRDMA_SOCKET", (dir_ + "/nonexistent.sock").c_str(), 1);
  EXPECT_EQ(table_->Open(O_RDWR | O_CLOEXEC), -ENOENT);
  EXPECT_EQ(table_->size(), 0u);
}

TEST_F(ChannelTableTest, OpenRefusedGivesTheDaemonsErrno) {
  daemon_->RefuseOpen(EACCES);
  EXPECT_EQ(table_->Open(O_RDWR | O_CLOEXEC), -EACCES);
  EXPECT_EQ(table_->size(), 0u);
}

TEST_F(ChannelTableTest, CommandBytesArriveAndTheResponseLands) {
  int fd = OpenChannel();
  daemon_->SetResponse(RDMA_USER_CM_CMD_CREATE_ID, Bytes(rdma_ucm_create_id_resp{42}));
  rdma_ucm_create_id_resp resp{0};
  rdma_ucm_create_id c{};
  c.uid = 0x1122334455667788;
  c.response = reinterpret_cast<uintptr_t>(&resp);
  c.ps = RDMA_PS_TCP;
  c.qp_type = 2;
  auto w = Make(RDMA_USER_CM_CMD_CREATE_ID, c, sizeof resp);
  EXPECT_EQ(table_->Write(fd, &w, sizeof w), static_cast<ssize_t>(sizeof w));
  EXPECT_EQ(resp.id, 42u);
  auto cmds = daemon_->commands();
  ASSERT_EQ(cmds.size(), 1u);
  EXPECT_EQ(cmds[0].cmd, static_cast<uint32_t>(RDMA_USER_CM_CMD_CREATE_ID));
  EXPECT_EQ(cmds[0].file_token, daemon_->last_token());
  EXPECT_EQ(cmds[0].out_len, sizeof resp);
  EXPECT_EQ(cmds[0].in, Bytes(c));
  EXPECT_TRUE(cmds[0].extra.empty());
}

TEST_F(ChannelTableTest, ResponseIsCutToTheCallersBuffer) {
  int fd = OpenChannel();
  rdma_ucm_query_route_resp big[2];
  std::memset(big, 0xee, sizeof big);
  rdma_ucm_query q{};
  q.response = reinterpret_cast<uintptr_t>(&big[0]);
  q.option = RDMA_USER_CM_QUERY_ADDR;
  auto w = Make(RDMA_USER_CM_CMD_QUERY, q, 16);  // the fake answers out_len pattern bytes
  EXPECT_EQ(table_->Write(fd, &w, sizeof w), static_cast<ssize_t>(sizeof w));
  const auto* p = reinterpret_cast<const uint8_t*>(&big[0]);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(p[i], RDMA_USER_CM_CMD_QUERY + i) << i;
  EXPECT_EQ(p[16], 0xee);
}

TEST_F(ChannelTableTest, StatusBecomesErrno) {
  int fd = OpenChannel();
  daemon_->Fail(RDMA_USER_CM_CMD_RESOLVE_ROUTE, ETIMEDOUT);
  rdma_ucm_resolve_route r{};
  r.id = 3;
  r.timeout_ms = 2000;
  auto w = Make(RDMA_USER_CM_CMD_RESOLVE_ROUTE, r);
  EXPECT_EQ(table_->Write(fd, &w, sizeof w), -ETIMEDOUT);
}

TEST_F(ChannelTableTest, MalformedWritesFollowUcmaWrite) {
  int fd = OpenChannel();
  rdma_ucm_listen l{};
  l.id = 1;
  l.backlog = 8;
  auto w = Make(RDMA_USER_CM_CMD_LISTEN, l);
  // Shorter than the header, or than header + in: EINVAL.
  EXPECT_EQ(table_->Write(fd, &w, 4), -EINVAL);
  EXPECT_EQ(table_->Write(fd, &w, sizeof w - 1), -EINVAL);
  // Past the command table: EINVAL. GET_OPTION has no handler: ENOSYS.
  auto bad = w;
  bad.hdr.cmd = RDMA_USER_CM_CMD_JOIN_MCAST + 1;
  EXPECT_EQ(table_->Write(fd, &bad, sizeof bad), -EINVAL);
  bad.hdr.cmd = RDMA_USER_CM_CMD_GET_OPTION;
  EXPECT_EQ(table_->Write(fd, &bad, sizeof bad), -ENOSYS);
  // Fewer `in` bytes than the command's struct: EINVAL.
  bad = w;
  bad.hdr.in = sizeof l - 1;
  EXPECT_EQ(table_->Write(fd, &bad, sizeof bad - 1), -EINVAL);
  EXPECT_TRUE(daemon_->commands().empty());
  // Bytes past `in` are ignored, as the kernel does; write() still returns len.
  struct {
    Wire<rdma_ucm_listen> w;
    uint8_t tail[8];
  } longer{w, {}};
  EXPECT_EQ(table_->Write(fd, &longer, sizeof longer), static_cast<ssize_t>(sizeof longer));
  auto cmds = daemon_->commands();
  ASSERT_EQ(cmds.size(), 1u);
  EXPECT_EQ(cmds[0].in, Bytes(l));
}

TEST_F(ChannelTableTest, NonBlockingGetEventIsEagain) {
  int fd = OpenChannel(O_RDWR | O_CLOEXEC | O_NONBLOCK);
  rdma_ucm_event_resp resp{};
  EXPECT_EQ(GetEvent(fd, &resp), -EAGAIN);
  // And so after fcntl() sets O_NONBLOCK, as rsockets do.
  int fd2 = OpenChannel();
  ASSERT_EQ(fcntl(fd2, F_SETFL, fcntl(fd2, F_GETFL) | O_NONBLOCK), 0);
  EXPECT_EQ(GetEvent(fd2, &resp), -EAGAIN);
}

TEST_F(ChannelTableTest, BlockingGetEventWaitsForAnEvent) {
  int fd = OpenChannel();
  uint64_t token = daemon_->last_token();
  std::atomic<bool> done{false};
  rdma_ucm_event_resp resp{};
  ssize_t result = 0;
  std::thread waiter([&] {
    result = GetEvent(fd, &resp);
    done = true;
  });
  ASSERT_TRUE(daemon_->WaitForCommands(1));
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(done);
  daemon_->QueueEvent(token, Event(5, RDMA_CM_EVENT_CONNECT_REQUEST));
  waiter.join();
  EXPECT_EQ(result, static_cast<ssize_t>(sizeof(Wire<rdma_ucm_get_event>)));
  EXPECT_EQ(resp.id, 5u);
  EXPECT_EQ(resp.event, static_cast<uint32_t>(RDMA_CM_EVENT_CONNECT_REQUEST));
  EXPECT_EQ(resp.uid, 0xabcu);
  EXPECT_FALSE(Readable(fd));
}

TEST_F(ChannelTableTest, QueueDrainedTakesTheByte) {
  int fd = OpenChannel();
  uint64_t token = daemon_->last_token();
  daemon_->QueueEvent(token, Event(1, RDMA_CM_EVENT_ADDR_RESOLVED));
  daemon_->QueueEvent(token, Event(1, RDMA_CM_EVENT_ROUTE_RESOLVED));
  EXPECT_TRUE(Readable(fd));
  rdma_ucm_event_resp resp{};
  ASSERT_GT(GetEvent(fd, &resp), 0);
  EXPECT_EQ(resp.event, static_cast<uint32_t>(RDMA_CM_EVENT_ADDR_RESOLVED));
  EXPECT_TRUE(Readable(fd));  // one more waits
  ASSERT_GT(GetEvent(fd, &resp), 0);
  EXPECT_EQ(resp.event, static_cast<uint32_t>(RDMA_CM_EVENT_ROUTE_RESOLVED));
  EXPECT_FALSE(Readable(fd));
}

// rping: one thread waits in GET_EVENT while another connects on the same channel.
TEST_F(ChannelTableTest, CommandsGoThroughWhileAThreadWaitsForAnEvent) {
  int fd = OpenChannel();
  uint64_t token = daemon_->last_token();
  std::atomic<bool> done{false};
  rdma_ucm_event_resp resp{};
  std::thread waiter([&] {
    GetEvent(fd, &resp);
    done = true;
  });
  ASSERT_TRUE(daemon_->WaitForCommands(1));
  rdma_ucm_connect c{};
  c.id = 9;
  c.conn_param.valid = 1;
  auto w = Make(RDMA_USER_CM_CMD_CONNECT, c);
  EXPECT_EQ(table_->Write(fd, &w, sizeof w), static_cast<ssize_t>(sizeof w));
  EXPECT_FALSE(done);
  daemon_->QueueEvent(token, Event(9, RDMA_CM_EVENT_ESTABLISHED));
  waiter.join();
  EXPECT_EQ(resp.event, static_cast<uint32_t>(RDMA_CM_EVENT_ESTABLISHED));
}

// As a kernel file lives while a write() on it is in flight: closing the channel while a
// thread waits in GET_EVENT ends the file only when that GET_EVENT returns.
TEST_F(ChannelTableTest, CloseDuringGetEventEndsTheFileWhenItReturns) {
  int fd = OpenChannel();
  uint64_t token = daemon_->last_token();
  rdma_ucm_event_resp resp{};
  ssize_t result = 0;
  std::thread waiter([&] { result = GetEvent(fd, &resp); });
  ASSERT_TRUE(daemon_->WaitForCommands(1));
  std::this_thread::sleep_for(20ms);
  EXPECT_TRUE(table_->Forget(fd));
  close(fd);
  fds_.clear();
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(daemon_->open_files(), 1u);
  daemon_->QueueEvent(token, Event(3, RDMA_CM_EVENT_DISCONNECTED));
  waiter.join();
  EXPECT_GT(result, 0);
  EXPECT_EQ(resp.event, static_cast<uint32_t>(RDMA_CM_EVENT_DISCONNECTED));
  EXPECT_TRUE(daemon_->WaitForOpenFiles(0));
}

TEST_F(ChannelTableTest, SetOptionCarriesTheOptionValue) {
  int fd = OpenChannel();
  uint8_t tos = 0x28;
  rdma_ucm_set_option s{};
  s.optval = reinterpret_cast<uintptr_t>(&tos);
  s.id = 4;
  s.level = RDMA_OPTION_ID;
  s.optname = RDMA_OPTION_ID_TOS;
  s.optlen = sizeof tos;
  auto w = Make(RDMA_USER_CM_CMD_SET_OPTION, s);
  EXPECT_EQ(table_->Write(fd, &w, sizeof w), static_cast<ssize_t>(sizeof w));
  auto cmds = daemon_->commands();
  ASSERT_EQ(cmds.size(), 1u);
  EXPECT_EQ(cmds[0].in, Bytes(s));
  EXPECT_EQ(cmds[0].extra, std::vector<uint8_t>{0x28});
  // Bounded by kCmMaxCommand; a null optval is EFAULT (memdup_user).
  w.cmd.optlen = 1025;
  EXPECT_EQ(table_->Write(fd, &w, sizeof w), -EINVAL);
  w.cmd.optlen = 4;
  w.cmd.optval = 0;
  EXPECT_EQ(table_->Write(fd, &w, sizeof w), -EFAULT);
  EXPECT_EQ(daemon_->commands().size(), 1u);
}

TEST_F(ChannelTableTest, MigrateIdCarriesThePeerTokenAndDrainsThePeer) {
  int old_fd = OpenChannel();
  uint64_t old_token = daemon_->last_token();
  int new_fd = OpenChannel();
  daemon_->QueueEvent(old_token, Event(2, RDMA_CM_EVENT_DISCONNECTED));
  EXPECT_TRUE(Readable(old_fd));
  EXPECT_FALSE(Readable(new_fd));
  rdma_ucm_migrate_resp resp{};
  rdma_ucm_migrate_id m{};
  m.response = reinterpret_cast<uintptr_t>(&resp);
  m.id = 2;
  m.fd = static_cast<uint32_t>(old_fd);
  auto w = Make(RDMA_USER_CM_CMD_MIGRATE_ID, m, sizeof resp);
  EXPECT_EQ(table_->Write(new_fd, &w, sizeof w), static_cast<ssize_t>(sizeof w));
  EXPECT_EQ(resp.events_reported, 7u);
  auto cmds = daemon_->commands();
  ASSERT_EQ(cmds.size(), 1u);
  EXPECT_EQ(cmds[0].peer_token, old_token);
  EXPECT_NE(cmds[0].file_token, old_token);
  // The event moved with the id: its byte too.
  EXPECT_FALSE(Readable(old_fd));
  EXPECT_TRUE(Readable(new_fd));
}

TEST_F(ChannelTableTest, MigrateIdFromANonChannelFollowsTheKernel) {
  int fd = OpenChannel();
  rdma_ucm_migrate_resp resp{};
  rdma_ucm_migrate_id m{};
  m.response = reinterpret_cast<uintptr_t>(&resp);
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  m.fd = static_cast<uint32_t>(p[0]);  // open, not an rdma_cm file: EINVAL
  auto w = Make(RDMA_USER_CM_CMD_MIGRATE_ID, m, sizeof resp);
  EXPECT_EQ(table_->Write(fd, &w, sizeof w), -EINVAL);
  close(p[0]);
  close(p[1]);
  w.cmd.fd = static_cast<uint32_t>(p[0]);  // not open: ENOENT (fdget fails)
  EXPECT_EQ(table_->Write(fd, &w, sizeof w), -ENOENT);
  w.cmd.fd = 0xffffffffu;
  EXPECT_EQ(table_->Write(fd, &w, sizeof w), -ENOENT);
  EXPECT_TRUE(daemon_->commands().empty());
}

TEST_F(ChannelTableTest, ForgetEndsTheFile) {
  int fd = OpenChannel();
  ASSERT_TRUE(daemon_->WaitForOpenFiles(1));
  EXPECT_TRUE(table_->Forget(fd));
  EXPECT_FALSE(table_->MayBeChannel(fd));
  EXPECT_FALSE(table_->Forget(fd));
  EXPECT_TRUE(daemon_->WaitForOpenFiles(0));
  rdma_ucm_create_id_resp resp{};
  rdma_ucm_create_id c{};
  c.response = reinterpret_cast<uintptr_t>(&resp);
  auto w = Make(RDMA_USER_CM_CMD_CREATE_ID, c, sizeof resp);
  EXPECT_FALSE(table_->Write(fd, &w, sizeof w).has_value());
}

// A channel closed behind the table's back (close_range, dup2 over it) and its number
// reused: the number is not treated as a channel, and the stale entry goes.
TEST_F(ChannelTableTest, NumberClosedWithCloseRangeAndReusedIsNotAChannel) {
  int fd = OpenChannel();
  ASSERT_GE(fd, 0);
  ASSERT_EQ(close_range(fd, fd, 0), 0);
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  ASSERT_EQ(dup2(p[1], fd), fd);
  rdma_ucm_create_id_resp resp{};
  rdma_ucm_create_id c{};
  c.response = reinterpret_cast<uintptr_t>(&resp);
  auto w = Make(RDMA_USER_CM_CMD_CREATE_ID, c, sizeof resp);
  EXPECT_FALSE(table_->Write(fd, &w, sizeof w).has_value());
  EXPECT_EQ(table_->size(), 0u);
  EXPECT_FALSE(table_->MayBeChannel(fd));
  EXPECT_TRUE(daemon_->WaitForOpenFiles(0));
  EXPECT_TRUE(daemon_->commands().empty());
  close(p[0]);
  close(p[1]);
}

TEST_F(ChannelTableTest, NumberClosedWithCloseRangeIsNotAChannel) {
  int fd = OpenChannel();
  ASSERT_EQ(close_range(fd, fd, 0), 0);
  fds_.clear();  // closed already
  rdma_ucm_create_id_resp resp{};
  rdma_ucm_create_id c{};
  c.response = reinterpret_cast<uintptr_t>(&resp);
  auto w = Make(RDMA_USER_CM_CMD_CREATE_ID, c, sizeof resp);
  EXPECT_FALSE(table_->Write(fd, &w, sizeof w).has_value());
  EXPECT_EQ(table_->size(), 0u);
}

TEST_F(ChannelTableTest, NumberDup2dOverIsNotAChannel) {
  int fd = OpenChannel();
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  ASSERT_EQ(dup2(p[1], fd), fd);
  // fstat of the new file there: not patched, and the entry goes.
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_FALSE(table_->PatchStat(fd, &st));
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(table_->size(), 0u);
  EXPECT_TRUE(daemon_->WaitForOpenFiles(0));
  close(p[0]);
  close(p[1]);
}

TEST_F(ChannelTableTest, AGoneDaemonIsEio) {
  int fd = OpenChannel();
  daemon_.reset();
  rdma_ucm_create_id_resp resp{};
  EXPECT_EQ(CreateId(fd, &resp), -EIO);
  // A waiting GET_EVENT ends too.
  rdma_ucm_event_resp ev{};
  EXPECT_EQ(GetEvent(fd, &ev), -EIO);
}

TEST_F(ChannelTableTest, AWaitingGetEventEndsWhenTheDaemonGoes) {
  int fd = OpenChannel();
  std::atomic<bool> done{false};
  ssize_t result = 0;
  std::thread waiter([&] {
    rdma_ucm_event_resp ev{};
    result = GetEvent(fd, &ev);
    done = true;
  });
  ASSERT_TRUE(daemon_->WaitForCommands(1));
  daemon_.reset();
  waiter.join();
  EXPECT_EQ(result, -EIO);
}

TEST_F(ChannelTableTest, ManyChannels) {
  std::vector<int> fds;
  for (int i = 0; i < 8; ++i) fds.push_back(OpenChannel());
  EXPECT_EQ(table_->size(), 8u);
  EXPECT_TRUE(daemon_->WaitForOpenFiles(8));
  for (int fd : fds) {
    rdma_ucm_create_id_resp resp{};
    EXPECT_GT(CreateId(fd, &resp), 0);
  }
  std::vector<uint64_t> tokens;
  for (auto& c : daemon_->commands()) tokens.push_back(c.file_token);
  std::sort(tokens.begin(), tokens.end());
  EXPECT_EQ(std::unique(tokens.begin(), tokens.end()), tokens.end());
}

}  // namespace
}  // namespace vrdma::cm_client
