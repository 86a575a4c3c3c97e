// vdev/client_fd: what the daemon accepts as an event channel, and I/O on client
// descriptors that never blocks whatever the client did to them (issue 12, item 4).
#include "vdev/client_fd.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

namespace vrdma::vdev {
namespace {

class ClientFdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/client_fd_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    // A test that blocks fails by this alarm instead of hanging the suite.
    alarm(20);
  }
  void TearDown() override {
    alarm(0);
    std::string cmd = "rm -rf " + dir_;
    ASSERT_EQ(system(cmd.c_str()), 0);
  }
  std::string dir_;
};

struct Pair {
  int fd[2] = {-1, -1};
  explicit Pair(int type) { EXPECT_EQ(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fd), 0); }
  ~Pair() {
    for (int f : fd) {
      if (f >= 0) close(f);
    }
  }
};

TEST_F(ClientFdTest, ASeqpacketSocketpairIsAnEventChannel) {
  Pair p(SOCK_SEQPACKET);
  EXPECT_EQ(CheckEventChannel(p.fd[0]), 0);
  EXPECT_EQ(CheckEventChannel(p.fd[1]), 0);
}

TEST_F(ClientFdTest, AnythingElseIsRefused) {
  EXPECT_EQ(CheckEventChannel(-1), EINVAL);
  // Pipes: every writer takes the pipe's mutex, which the reader can hold (client_fd.h).
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  EXPECT_EQ(CheckEventChannel(pipefd[0]), EINVAL);
  EXPECT_EQ(CheckEventChannel(pipefd[1]), EINVAL);
  close(pipefd[0]);
  close(pipefd[1]);
  // A named FIFO, a regular file, a directory, an eventfd.
  std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  int f = open(fifo.c_str(), O_RDWR | O_NONBLOCK);
  ASSERT_GE(f, 0);
  EXPECT_EQ(CheckEventChannel(f), EINVAL);
  close(f);
  std::string file = dir_ + "/file";
  f = open(file.c_str(), O_CREAT | O_RDWR, 0600);
  ASSERT_GE(f, 0);
  EXPECT_EQ(CheckEventChannel(f), EINVAL);
  close(f);
  f = open(dir_.c_str(), O_RDONLY | O_DIRECTORY);
  EXPECT_EQ(CheckEventChannel(f), EINVAL);
  close(f);
  f = eventfd(0, 0);
  EXPECT_EQ(CheckEventChannel(f), EINVAL);
  close(f);
  // Sockets of the wrong kind.
  Pair stream(SOCK_STREAM), dgram(SOCK_DGRAM);
  EXPECT_EQ(CheckEventChannel(stream.fd[0]), EINVAL);
  EXPECT_EQ(CheckEventChannel(dgram.fd[0]), EINVAL);
  int lone = socket(AF_UNIX, SOCK_SEQPACKET, 0);
  EXPECT_EQ(CheckEventChannel(lone), EINVAL);  // not connected
  close(lone);
  int inet = socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_EQ(CheckEventChannel(inet), EINVAL);
  close(inet);
}

TEST_F(ClientFdTest, ASocketConnectedToANamedServiceIsRefused) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string path = dir_ + "/listen.sock";
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  int l = socket(AF_UNIX, SOCK_SEQPACKET, 0);
  ASSERT_EQ(bind(l, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(l, 1), 0);
  int c = socket(AF_UNIX, SOCK_SEQPACKET, 0);
  ASSERT_EQ(connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(CheckEventChannel(c), EINVAL);
  // The socket file itself, through an O_PATH descriptor: S_ISSOCK, but not a socket.
  int opath = open(path.c_str(), O_PATH);
  ASSERT_GE(opath, 0);
  EXPECT_EQ(CheckEventChannel(opath), EINVAL);
  close(opath);
  close(c);
  close(l);
}

TEST_F(ClientFdTest, SendNeverBlocksWhateverTheClientDid) {
  Pair p(SOCK_SEQPACKET);
  int daemon_end = p.fd[1], client_end = p.fd[0];
  // The client's doing: blocking mode on the shared description, the smallest buffers,
  // a splice holding its reader end, never a read.
  ASSERT_EQ(fcntl(daemon_end, F_SETFL, 0), 0);
  int one = 1;
  setsockopt(daemon_end, SOL_SOCKET, SO_SNDBUF, &one, sizeof one);
  setsockopt(client_end, SOL_SOCKET, SO_RCVBUF, &one, sizeof one);
  pid_t holder = fork();
  if (holder == 0) {
    int q[2];
    if (pipe(q) != 0) _exit(1);
    fcntl(q[1], F_SETFL, O_NONBLOCK);
    char junk[4096] = {};
    while (write(q[1], junk, sizeof junk) > 0) {
    }
    fcntl(q[1], F_SETFL, 0);
    for (;;) {
      if (splice(client_end, nullptr, q[1], nullptr, 16, 0) < 0 && errno != EINTR) pause();
    }
  }
  struct {
    uint64_t element;
    uint32_t type;
    uint32_t reserved;
  } rec{7, 3, 0};
  int sent = 0;
  for (int i = 0; i < 10000; ++i) sent += SendEventRecord(daemon_end, &rec, sizeof rec);
  EXPECT_GT(sent, 0);      // some fit
  EXPECT_LT(sent, 10000);  // then the client's events are dropped, nothing blocks
  kill(holder, SIGKILL);
  waitpid(holder, nullptr, 0);
  // Whole records, in order.
  fcntl(client_end, F_SETFL, O_NONBLOCK);
  decltype(rec) got{};
  ASSERT_EQ(read(client_end, &got, sizeof got), static_cast<ssize_t>(sizeof got));
  EXPECT_EQ(got.element, 7u);
  EXPECT_EQ(got.type, 3u);
}

TEST_F(ClientFdTest, AShutDownChannelFailsWithoutSigpipe) {
  Pair p(SOCK_SEQPACKET);
  ASSERT_EQ(shutdown(p.fd[1], SHUT_WR), 0);  // what a client can do to the shared socket
  uint64_t rec = 1;
  EXPECT_FALSE(SendEventRecord(p.fd[1], &rec, sizeof rec));  // SIGPIPE would end the test
  close(p.fd[0]);
  p.fd[0] = -1;
  Pair q(SOCK_SEQPACKET);
  close(q.fd[0]);
  q.fd[0] = -1;
  EXPECT_FALSE(SendEventRecord(q.fd[1], &rec, sizeof rec));  // the reader is gone
  EXPECT_FALSE(SendEventRecord(-1, &rec, sizeof rec));
}

TEST_F(ClientFdTest, DrainingADoorbellNeverBlocks) {
  // The client cleared EFD_NONBLOCK's O_NONBLOCK and emptied the counter before us.
  int efd = eventfd(0, EFD_NONBLOCK);
  ASSERT_GE(efd, 0);
  ASSERT_EQ(fcntl(efd, F_SETFL, 0), 0);
  EXPECT_TRUE(DrainEventfd(efd));  // empty: returns at once
  uint64_t v = 5;
  ASSERT_EQ(write(efd, &v, sizeof v), static_cast<ssize_t>(sizeof v));
  EXPECT_TRUE(DrainEventfd(efd));
  fcntl(efd, F_SETFL, O_NONBLOCK);
  EXPECT_EQ(read(efd, &v, sizeof v), -1);  // the counter was emptied
  EXPECT_EQ(errno, EAGAIN);
  close(efd);
}

}  // namespace
}  // namespace vrdma::vdev
