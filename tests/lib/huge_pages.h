// Huge pages for the tests of huge-page memory (unit tests and verbs_check): the free
// ones in the pool, and a guard that skips a test when there are too few, or fails it
// where the caller made a pool for it (scripts/test and hugepages.sh set
// VRDMA_REQUIRE_HUGEPAGES=1), so that a missing pool cannot pass for a passing test.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

namespace vrdma::testing {

inline long FreeHugePages() {
  FILE* f = std::fopen("/proc/meminfo", "r");
  char line[256];
  long n = 0;
  while (f && std::fgets(line, sizeof line, f)) std::sscanf(line, "HugePages_Free: %ld", &n);
  if (f) std::fclose(f);
  return n;
}

}  // namespace vrdma::testing

#define VRDMA_REQUIRE_FREE_HUGE_PAGES(n)                                            \
  do {                                                                              \
    if (::vrdma::testing::FreeHugePages() < (n)) {                                  \
      if (std::getenv("VRDMA_REQUIRE_HUGEPAGES"))                                   \
        FAIL() << "fewer than " << (n) << " free huge pages";                       \
      GTEST_SKIP() << "fewer than " << (n) << " free huge pages (vm.nr_hugepages)"; \
    }                                                                               \
  } while (0)
