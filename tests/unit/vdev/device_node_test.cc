// vdev/device_node.h: a vdev's character node, in a directory of the test's own.
#include "vdev/device_node.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

namespace vrdma::vdev {
namespace {

class DeviceNodesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "mknod of a character device needs root";
    char tmpl[] = "/tmp/vrdma-nodes.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    dir_ = root_ + "/infiniband";  // made by the first Create
  }
  void TearDown() override {
    if (!root_.empty()) std::system(("rm -rf " + root_).c_str());
  }
  struct stat Stat(const std::string& name) {
    struct stat st {};
    EXPECT_EQ(lstat((dir_ + "/" + name).c_str(), &st), 0) << name;
    return st;
  }
  bool Exists(const std::string& name) {
    struct stat st {};
    return lstat((dir_ + "/" + name).c_str(), &st) == 0;
  }
  std::string root_, dir_;
};

TEST_F(DeviceNodesTest, ANullCharacterNodeWithThePolicy) {
  DeviceNodes nodes(dir_);
  auto path = nodes.Create("vdev_a", AccessPolicy{1234, 5678, 0660});
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, dir_ + "/vdev_a");
  struct stat st = Stat("vdev_a");
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(major(st.st_rdev), 0u);
  EXPECT_EQ(minor(st.st_rdev), 0u);
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  struct stat d {};
  ASSERT_EQ(stat(dir_.c_str(), &d), 0);
  EXPECT_EQ(d.st_mode & 07777, 0755u);
  // Opening it reaches no driver: major 0 belongs to none.
  int fd = open(path->c_str(), O_RDWR | O_CLOEXEC);
  EXPECT_LT(fd, 0);
  EXPECT_EQ(errno, ENXIO);
  if (fd >= 0) close(fd);

  // The policy follows `dev set`.
  ASSERT_TRUE(nodes.Apply("vdev_a", AccessPolicy{0, 0, 0666}).ok());
  st = Stat("vdev_a");
  EXPECT_EQ(st.st_mode & 07777, 0666u);
  EXPECT_EQ(st.st_uid, 0u);
  // The mode takes only permission bits: no set-id or sticky bit from a policy.
  ASSERT_TRUE(nodes.Apply("vdev_a", AccessPolicy{0, 0, 07666}).ok());
  EXPECT_EQ(Stat("vdev_a").st_mode & 07777, 0666u);
  EXPECT_TRUE(nodes.Apply("never_made", AccessPolicy{}).ok());

  nodes.Remove("vdev_a");
  EXPECT_FALSE(Exists("vdev_a"));
}

TEST_F(DeviceNodesTest, WhatIsNotANullNodeIsLeftAlone) {
  ASSERT_EQ(mkdir(dir_.c_str(), 0755), 0);
  // A kernel device's node (here /dev/null's number) and a plain file keep their names.
  ASSERT_EQ(mknod((dir_ + "/uverbs0").c_str(), S_IFCHR | 0600, makedev(1, 3)), 0);
  int fd = open((dir_ + "/rdma_cm").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  close(fd);
  ASSERT_EQ(symlink("/dev/null", (dir_ + "/link").c_str()), 0);
  DeviceNodes nodes(dir_);
  for (const char* name : {"uverbs0", "rdma_cm", "link"}) {
    auto path = nodes.Create(name, AccessPolicy{});
    EXPECT_EQ(path.status().code(), absl::StatusCode::kAlreadyExists) << name;
  }
  struct stat st = Stat("uverbs0");
  EXPECT_EQ(major(st.st_rdev), 1u);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_TRUE(S_ISREG(Stat("rdma_cm").st_mode));
  EXPECT_TRUE(S_ISLNK(Stat("link").st_mode));
  for (const char* name : {".", ".."}) {
    EXPECT_EQ(nodes.Create(name, AccessPolicy{}).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST_F(DeviceNodesTest, AStaleNodeIsTakenOverAndOnlyItsOwnIsRemoved) {
  ASSERT_EQ(mkdir(dir_.c_str(), 0755), 0);
  // A node a daemon that died left behind.
  ASSERT_EQ(mknod((dir_ + "/vdev_a").c_str(), S_IFCHR | 0600, makedev(0, 0)), 0);
  {
    DeviceNodes nodes(dir_);
    ASSERT_TRUE(nodes.Create("vdev_a", AccessPolicy{0, 0, 0640}).ok());
    EXPECT_EQ(Stat("vdev_a").st_mode & 07777, 0640u);
    ASSERT_TRUE(nodes.Create("vdev_b", AccessPolicy{}).ok());
    // Another daemon takes vdev_b's name over (a node of its own renamed over this one's,
    // so that the two are different inodes): not this object's to remove, nor to change.
    ASSERT_EQ(mknod((dir_ + "/other").c_str(), S_IFCHR | 0600, makedev(0, 0)), 0);
    ASSERT_EQ(rename((dir_ + "/other").c_str(), (dir_ + "/vdev_b").c_str()), 0);
    EXPECT_EQ(nodes.Apply("vdev_b", AccessPolicy{0, 0, 0666}).code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(Stat("vdev_b").st_mode & 07777, 0600u);
  }  // the destructor removes what it made
  EXPECT_FALSE(Exists("vdev_a"));
  EXPECT_TRUE(Exists("vdev_b"));
}

TEST_F(DeviceNodesTest, NoDirectoryNoNodes) {
  DeviceNodes nodes;
  EXPECT_EQ(nodes.Create("vdev_a", AccessPolicy{}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // A directory that cannot be made: an error, no crash.
  DeviceNodes under_file("/proc/version/infiniband");
  EXPECT_FALSE(under_file.Create("vdev_a", AccessPolicy{}).ok());
}

}  // namespace
}  // namespace vrdma::vdev
