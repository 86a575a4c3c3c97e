// GoogleTest main for unit tests: brings up DPDK's EAL (no devices, no hugepages) once.
#include <cstdio>

#include "gtest/gtest.h"
#include "vfio/eal.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  absl::Status st = vrdma::vfio::InitEal(vrdma::vfio::NoDeviceEalArgs());
  if (!st.ok()) {
    std::fprintf(stderr, "%s\n", st.ToString().c_str());
    return 1;
  }
  return RUN_ALL_TESTS();
}
