// A process that brings the EAL up as vrdmad does and exits with a given status:
//   eal_exit_helper STATUS EAL-ARGS...
// Exit 3 when the EAL does not come up (its message on stderr).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "vfio/eal.h"

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  std::vector<std::string> args(argv + 2, argv + argc);
  absl::Status st = vrdma::vfio::InitEal(args, vrdma::vfio::EalExit::kCleanUpOnFailure);
  if (!st.ok()) {
    std::fprintf(stderr, "%s\n", st.ToString().c_str());
    return 3;
  }
  return std::atoi(argv[1]);
}
