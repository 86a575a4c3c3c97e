// vdev/peer.h: a client identified by its connect-time credentials and a pidfd, and
// admin rights decided from them (admin_requests.h).
#include "vdev/peer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "vdev/admin_requests.h"

namespace vrdma::vdev {
namespace {

TEST(Peer, FromSocketIsThisProcess) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  absl::StatusOr<Peer> p = Peer::FromSocket(sv[0]);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->pid(), getpid());
  EXPECT_EQ(p->uid(), geteuid());
  EXPECT_EQ(p->gid(), getegid());
  std::string comm;
  std::getline(std::ifstream("/proc/self/comm"), comm);
  EXPECT_EQ(p->comm(), comm);
  EXPECT_TRUE(p->netns().known());
  EXPECT_EQ(p->netns(), NamespaceId::Current());
  auto fd = p->OpenProcFile("maps", O_RDONLY);
  ASSERT_TRUE(fd.ok()) << fd.status();
  close(*fd);
  // Moved, it stays the same peer.
  Peer q = *std::move(p);
  EXPECT_EQ(q.pid(), getpid());
  fd = q.OpenProcFile("status", O_RDONLY);
  ASSERT_TRUE(fd.ok()) << fd.status();
  close(*fd);
  close(sv[0]);
  close(sv[1]);
}

// Linux before 6.5 has no SO_PEERPIDFD: pidfd_open of the PID, proven by the process
// holding the other end of the connection (sock_diag, /proc/PID/fd).
TEST(Peer, WithoutPeerPidfdTheProcessIsProvenBySocket) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  absl::StatusOr<Peer> p = Peer::FromSocket(sv[0], Peer::PidfdSource::kPidfdOpen);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->pid(), getpid());
  EXPECT_TRUE(p->netns().known());
  auto fd = p->OpenProcFile("maps", O_RDONLY);
  ASSERT_TRUE(fd.ok()) << fd.status();
  close(*fd);
  // The other end closed: no process holds it any more, its process is not proven (its
  // namespace still is: the kernel names the socket's).
  close(sv[1]);
  absl::StatusOr<Peer> q = Peer::FromSocket(sv[0], Peer::PidfdSource::kPidfdOpen);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->netns(), NamespaceId::Current());
  EXPECT_TRUE(absl::IsFailedPrecondition(q->OpenProcFile("maps", O_RDONLY).status()));
  close(sv[0]);
}

// A client in another network namespace is seen as such: the server end of its connection
// was made in its namespace (needs root, for unshare(CLONE_NEWNET)).
TEST(Peer, NetworkNamespaceIsTheClients) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  std::string path = "/tmp/vrdma-peer-test-" + std::to_string(getpid()) + ".sock";
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
  int lis = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  unlink(path.c_str());
  ASSERT_EQ(bind(lis, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(listen(lis, 1), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (unshare(CLONE_NEWNET) != 0) _exit(1);
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) _exit(1);
    char c;
    (void)!read(s, &c, 1);
    _exit(0);
  }
  int conn = accept4(lis, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(conn, 0);
  absl::StatusOr<Peer> p = Peer::FromSocket(conn);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->netns().known());
  EXPECT_NE(p->netns(), NamespaceId::Current());
  // Without SO_PEERPIDFD, the process is proven by sock_diag asked in its namespace.
  absl::StatusOr<Peer> q = Peer::FromSocket(conn, Peer::PidfdSource::kPidfdOpen);
  ASSERT_TRUE(q.ok()) << q.status();
  auto maps = q->OpenProcFile("maps", O_RDONLY);
  EXPECT_TRUE(maps.ok()) << maps.status();
  if (maps.ok()) close(*maps);
  close(conn);
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  close(lis);
  unlink(path.c_str());
}

TEST(Peer, ProcFilesStayUnderItsDirectory) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  absl::StatusOr<Peer> p = Peer::FromSocket(sv[0]);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_FALSE(p->OpenProcFile("no-such-file", O_RDONLY).ok());
  close(sv[0]);
  close(sv[1]);
}

TEST(Peer, CredentialsOnlyHaveNoProcess) {
  Peer p = Peer::ForCredentials(1234, 1000, 1000);
  EXPECT_EQ(p.uid(), 1000u);
  EXPECT_FALSE(p.netns().known());
  EXPECT_TRUE(absl::IsFailedPrecondition(p.OpenProcFile("maps", O_RDONLY).status()));
}

// Admin is root of the daemon's user namespace or the configured group, nothing else:
// capabilities of a user namespace or of a later exec never count (issue 12, item 2).
TEST(MayAdminister, RootOrTheAdminGroup) {
  EXPECT_TRUE(MayAdminister(Peer::ForCredentials(1, 0, 0), std::nullopt));
  EXPECT_FALSE(MayAdminister(Peer::ForCredentials(1, 1000, 1000), std::nullopt));
  EXPECT_TRUE(MayAdminister(Peer::ForCredentials(1, 1000, 4242), gid_t{4242}));
  EXPECT_FALSE(MayAdminister(Peer::ForCredentials(1, 1000, 1000), gid_t{4242}));
}

}  // namespace
}  // namespace vrdma::vdev
