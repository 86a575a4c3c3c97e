// vdev/peer.h: a client identified by its connect-time credentials and a pidfd, and
// admin rights decided from them (admin_requests.h).
#include "vdev/peer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

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
  struct stat st;
  ASSERT_EQ(stat("/proc/self/ns/net", &st), 0);
  EXPECT_EQ(p->netns().ino, st.st_ino);
  EXPECT_EQ(p->netns().dev, st.st_dev);
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
  // The other end closed: no process holds it any more, nothing is proven.
  close(sv[1]);
  absl::StatusOr<Peer> q = Peer::FromSocket(sv[0], Peer::PidfdSource::kPidfdOpen);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_FALSE(q->netns().known());
  EXPECT_TRUE(absl::IsFailedPrecondition(q->OpenProcFile("maps", O_RDONLY).status()));
  close(sv[0]);
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
