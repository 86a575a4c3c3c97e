// A failed start leaves no EAL runtime directory behind (/var/run/dpdk/PREFIX): neither
// a failed rte_eal_init nor a daemon exiting non-zero after it, unless the directory was
// there before. Each case runs eal_exit_helper, a process of its own.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"
#include "vfio/eal.h"

extern char** environ;

namespace vrdma::vfio {
namespace {

// Runs the helper with STATUS and EAL args; returns its exit status (-1: no exit).
int RunHelper(const std::string& status, std::vector<std::string> eal) {
  std::vector<std::string> args = {EAL_EXIT_HELPER, status};
  args.insert(args.end(), eal.begin(), eal.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // The helper's exit status is what is tested: under the sanitizers, LeakSanitizer must
  // not replace it with its own (the EAL keeps its allocations for the process).
  std::vector<char*> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::string_view(*e).starts_with("ASAN_OPTIONS=")) continue;
    env.push_back(*e);
  }
  std::string asan = "ASAN_OPTIONS=detect_leaks=0";
  env.push_back(asan.data());
  env.push_back(nullptr);
  pid_t pid;
  if (posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), env.data()) != 0) return -1;
  int ws = 0;
  if (waitpid(pid, &ws, 0) != pid || !WIFEXITED(ws)) return -1;
  return WEXITSTATUS(ws);
}

class EalExitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    prefix_ = "vrdma-ut-" + std::to_string(getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name();
    dir_ = EalRuntimeDir({"--file-prefix", prefix_});
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::vector<std::string> Args() {
    return {"--no-huge",
            "-m",
            "128",
            "--no-pci",
            "-l",
            "0",
            "--no-telemetry",
            "--file-prefix",
            prefix_,
            "--log-level=lib.eal:crit"};
  }
  std::string prefix_, dir_;
};

TEST_F(EalExitTest, RuntimeDirFollowsDpdksRules) {
  EXPECT_EQ(
      EalRuntimeDir({"--file-prefix=x"}).substr(EalRuntimeDir({"--file-prefix=x"}).size() - 7),
      "/dpdk/x");
  std::string d = EalRuntimeDir({});
  EXPECT_EQ(d.substr(d.size() - 9), "/dpdk/rte");
}

TEST_F(EalExitTest, ACleanExitKeepsDpdksBehaviour) {
  ASSERT_EQ(RunHelper("0", Args()), 0);
  EXPECT_TRUE(std::filesystem::exists(dir_)) << "DPDK keeps its runtime dir; so do we";
}

TEST_F(EalExitTest, AFailedExitAfterEalInitRemovesTheDirItCreated) {
  ASSERT_EQ(RunHelper("1", Args()), 1);
  EXPECT_FALSE(std::filesystem::exists(dir_)) << dir_;
}

TEST_F(EalExitTest, AFailedEalInitRemovesTheDirItCreated) {
  // A secondary process with no primary fails after the EAL made its runtime dir.
  std::vector<std::string> args = Args();
  args.push_back("--proc-type=secondary");
  ASSERT_EQ(RunHelper("0", args), 3);
  EXPECT_FALSE(std::filesystem::exists(dir_)) << dir_;
}

TEST_F(EalExitTest, ADirThatWasThereStays) {
  std::filesystem::create_directories(dir_);
  ASSERT_EQ(RunHelper("1", Args()), 1);
  EXPECT_TRUE(std::filesystem::exists(dir_));
}

}  // namespace
}  // namespace vrdma::vfio
