// vdev/access.h: who sees and who opens a vdev (namespace, then owner/group/mode).
#include "vdev/access.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace vrdma::vdev {
namespace {

// This process as a peer (its network namespace proven through its own /proc).
Peer Self() {
  int sv[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  absl::StatusOr<Peer> p = Peer::FromSocket(sv[0]);
  close(sv[0]);
  close(sv[1]);
  EXPECT_TRUE(p.ok()) << p.status();
  return *std::move(p);
}

TEST(Access, ExclusiveModeIsTheSameNamespaceOnly) {
  Peer self = Self();
  ASSERT_TRUE(self.netns().known());
  NamespaceId other{self.netns().cookie + 1};
  EXPECT_TRUE(VisibleTo(self.netns(), self, NetnsMode::kExclusive));
  EXPECT_FALSE(VisibleTo(other, self, NetnsMode::kExclusive));
  EXPECT_TRUE(VisibleTo(other, self, NetnsMode::kShared));
  // Unknown on either side is not "the same".
  EXPECT_FALSE(VisibleTo(NamespaceId{}, self, NetnsMode::kExclusive));
  Peer unknown = Peer::ForCredentials(1, 1000, 1000);
  EXPECT_FALSE(VisibleTo(self.netns(), unknown, NetnsMode::kExclusive));
  EXPECT_TRUE(VisibleTo(self.netns(), unknown, NetnsMode::kShared));
  // Invisible is ENODEV, whoever asks (root too, as in the kernel's exclusive mode).
  EXPECT_EQ(OpenErrno(other, AccessPolicy{}, self, NetnsMode::kExclusive), ENODEV);
}

TEST(Access, OwnerGroupModeAsADeviceNode) {
  NamespaceId any{2};
  auto open_as = [&](uid_t uid, gid_t gid, AccessPolicy policy) {
    return OpenErrno(any, policy, Peer::ForCredentials(1, uid, gid), NetnsMode::kShared);
  };
  AccessPolicy p{1000, 2000, 0660};
  EXPECT_EQ(open_as(1000, 1000, p), 0);       // owner
  EXPECT_EQ(open_as(1001, 2000, p), 0);       // group
  EXPECT_EQ(open_as(1001, 1001, p), EACCES);  // other
  EXPECT_EQ(open_as(0, 0, p), 0);             // root passes the mode
  // Read and write are both needed (ibv_open_device opens the node O_RDWR).
  EXPECT_EQ(open_as(1001, 1001, AccessPolicy{0, 0, 0664}), EACCES);
  EXPECT_EQ(open_as(1001, 1001, AccessPolicy{0, 0, 0666}), 0);
  // The owner's bits decide for the owner, even when the group's would allow it.
  EXPECT_EQ(open_as(1000, 2000, AccessPolicy{1000, 2000, 0060}), EACCES);
}

}  // namespace
}  // namespace vrdma::vdev
