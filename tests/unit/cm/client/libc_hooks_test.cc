// The libc hooks (cm/client/libc_hooks.cc) in a real process: this test binary run again
// with libvrdma.so preloaded (VRDMA_TEST_LIBVRDMA, set by meson), where the versioned
// libc symbols it looks up bind to the interposer, as librdmacm's references do.
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <rdma/rdma_user_cm.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "cm/client/rdma_cm_channel.h"
#include "gtest/gtest.h"
#include "tests/unit/cm/client/fake_daemon.h"

namespace vrdma::cm_client {
namespace {

constexpr const char* kChildEnv = "VRDMA_CM_HOOKS_CHILD";

TEST(LibcHooks, InterposeUnderPreload) {
  const char* lib = getenv("VRDMA_TEST_LIBVRDMA");
  if (!lib || !*lib) GTEST_SKIP() << "VRDMA_TEST_LIBVRDMA (libvrdma.so's path) not set";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    setenv("LD_PRELOAD", lib, 1);
    setenv(kChildEnv, "1", 1);
    execl("/proc/self/exe", "cm_client_test", "--gtest_filter=LibcHooksChild.*", nullptr);
    _exit(127);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
}

// libc's symbol as the dynamic linker binds a reference to name@version.
template <typename Fn>
Fn Bound(const char* name, const char* version, std::string* from) {
  void* sym = dlvsym(RTLD_DEFAULT, name, version);
  Dl_info info{};
  if (sym && dladdr(sym, &info) && info.dli_fname) *from = info.dli_fname;
  return reinterpret_cast<Fn>(sym);
}

TEST(LibcHooksChild, ChannelThroughLibcEntryPoints) {
  if (!getenv(kChildEnv)) GTEST_SKIP() << "run by LibcHooks.InterposeUnderPreload";
  std::string from;
  auto open_fn = Bound<int (*)(const char*, int, ...)>("open", "GLIBC_2.2.5", &from);
  EXPECT_NE(from.find("libvrdma"), std::string::npos) << from;
  auto open64_fn = Bound<int (*)(const char*, int, ...)>("open64", "GLIBC_2.2.5", &from);
  EXPECT_NE(from.find("libvrdma"), std::string::npos) << from;
  auto write_fn = Bound<ssize_t (*)(int, const void*, size_t)>("write", "GLIBC_2.2.5", &from);
  EXPECT_NE(from.find("libvrdma"), std::string::npos) << from;
  auto close_fn = Bound<int (*)(int)>("close", "GLIBC_2.2.5", &from);
  EXPECT_NE(from.find("libvrdma"), std::string::npos) << from;
  auto fstat_fn = Bound<int (*)(int, struct stat*)>("fstat", "GLIBC_2.33", &from);
  EXPECT_NE(from.find("libvrdma"), std::string::npos) << from;
  auto fstat64_fn = Bound<int (*)(int, struct stat64*)>("fstat64", "GLIBC_2.33", &from);
  EXPECT_NE(from.find("libvrdma"), std::string::npos) << from;
  ASSERT_TRUE(open_fn && open64_fn && write_fn && close_fn && fstat_fn && fstat64_fn);

  // No daemon: ENOENT, what a missing device node gives.
  setenv("VRDMA_SOCKET", "/nonexistent/vrdmad.sock", 1);
  errno = 0;
  EXPECT_EQ(open_fn(kRdmaCmPath, O_RDWR | O_CLOEXEC), -1);
  EXPECT_EQ(errno, ENOENT);

  char tmpl[] = "/tmp/vrdma-cm-hooks.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  {
    testing::FakeDaemon daemon(tmpl);
    setenv("VRDMA_SOCKET", daemon.path().c_str(), 1);
    daemon.SetResponse(RDMA_USER_CM_CMD_CREATE_ID, {42, 0, 0, 0});

    // What open_cdev() does: open, then fstat and S_ISCHR.
    int fd = open_fn(kRdmaCmPath, O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0) << strerror(errno);
    struct stat st;
    ASSERT_EQ(fstat_fn(fd, &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));
    EXPECT_EQ(st.st_rdev, CmDeviceNumber());
    struct stat64 st64;
    ASSERT_EQ(fstat64_fn(fd, &st64), 0);
    EXPECT_TRUE(S_ISCHR(st64.st_mode));

    // A command: write() returns len, the response lands.
    struct {
      rdma_ucm_cmd_hdr hdr;
      rdma_ucm_create_id cmd;
    } w{};
    rdma_ucm_create_id_resp resp{};
    w.hdr = {RDMA_USER_CM_CMD_CREATE_ID, sizeof w.cmd, sizeof resp};
    w.cmd.response = reinterpret_cast<uintptr_t>(&resp);
    w.cmd.ps = RDMA_PS_TCP;
    EXPECT_EQ(write_fn(fd, &w, sizeof w), static_cast<ssize_t>(sizeof w));
    EXPECT_EQ(resp.id, 42u);
    errno = 0;
    EXPECT_EQ(write_fn(fd, &w, 6), -1);
    EXPECT_EQ(errno, EINVAL);

    // open64 with O_NONBLOCK: GET_EVENT is EAGAIN.
    int fd2 = open64_fn(kRdmaCmPath, O_RDWR | O_NONBLOCK);
    ASSERT_GE(fd2, 0) << strerror(errno);
    EXPECT_TRUE(daemon.WaitForOpenFiles(2));
    struct {
      rdma_ucm_cmd_hdr hdr;
      rdma_ucm_get_event cmd;
    } g{};
    rdma_ucm_event_resp ev{};
    g.hdr = {RDMA_USER_CM_CMD_GET_EVENT, sizeof g.cmd, sizeof ev};
    g.cmd.response = reinterpret_cast<uintptr_t>(&ev);
    errno = 0;
    EXPECT_EQ(write_fn(fd2, &g, sizeof g), -1);
    EXPECT_EQ(errno, EAGAIN);
    // close() ends the file.
    EXPECT_EQ(close_fn(fd2), 0);
    EXPECT_TRUE(daemon.WaitForOpenFiles(1));

    // Other descriptors are libc's.
    int p[2];
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    EXPECT_EQ(write_fn(p[1], "x", 1), 1);
    ASSERT_EQ(fstat_fn(p[0], &st), 0);
    EXPECT_TRUE(S_ISFIFO(st.st_mode));

    // The channel's number closed behind the interposer's back and reused: a pipe again.
    ASSERT_EQ(close_range(fd, fd, 0), 0);
    ASSERT_EQ(dup2(p[1], fd), fd);
    EXPECT_EQ(write_fn(fd, "y", 1), 1);
    ASSERT_EQ(fstat_fn(fd, &st), 0);
    EXPECT_TRUE(S_ISFIFO(st.st_mode));
    EXPECT_TRUE(daemon.WaitForOpenFiles(0));
    char buf[2];
    EXPECT_EQ(read(p[0], buf, 2), 2);
    EXPECT_EQ(close_fn(fd), 0);
    close_fn(p[0]);
    close_fn(p[1]);

    // Other paths are libc's open.
    int null_fd = open_fn("/dev/null", O_WRONLY | O_CLOEXEC);
    ASSERT_GE(null_fd, 0);
    ASSERT_EQ(fstat_fn(null_fd, &st), 0);
    EXPECT_EQ(st.st_rdev, makedev(1, 3));
    close_fn(null_fd);
  }
  rmdir(tmpl);
}

}  // namespace
}  // namespace vrdma::cm_client
