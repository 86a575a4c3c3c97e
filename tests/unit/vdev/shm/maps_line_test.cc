#include "vdev/shm/maps_line.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "tests/unit/vdev/shm/maps_corpus.h"

namespace vrdma::vdev {
namespace {

TEST(MapsLine, RealWorldLines) {
  for (const testing::MapsCase& c : testing::kMapsCorpus) {
    SCOPED_TRACE(c.line);
    std::optional<MapsEntry> e = ParseMapsLine(c.line);
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->start, c.start);
    EXPECT_EQ(e->end, c.end);
    EXPECT_EQ(e->perms, c.perms);
    EXPECT_EQ(e->offset, c.offset);
    EXPECT_EQ(e->dev_major, c.dev_major);
    EXPECT_EQ(e->dev_minor, c.dev_minor);
    EXPECT_EQ(e->inode, c.inode);
    EXPECT_EQ(e->path, c.path);
    EXPECT_EQ(e->readable(), c.perms[0] == 'r');
    EXPECT_EQ(e->writable(), c.perms[1] == 'w');
    EXPECT_EQ(e->shared(), c.perms[3] == 's');
  }
}

TEST(MapsLine, MalformedLinesAreRefused) {
  for (std::string_view line : testing::kMalformedMapsLines) {
    EXPECT_FALSE(ParseMapsLine(line).has_value()) << "'" << line << "'";
  }
}

TEST(MapsLine, EveryPrefixOfALineIsRefusedOrShorter) {
  // A line cut anywhere before its inode is not a line; cut inside the inode or the
  // path, it reads as another inode or a shorter path (which is why maps files are read
  // whole, never through a fixed line buffer).
  const std::string_view full = testing::kMapsCorpus[4].line;  // the SysV segment
  const size_t inode_at = full.find("32769"), path_at = full.find('/');
  for (size_t n = 0; n < full.size(); ++n) {
    std::optional<MapsEntry> e = ParseMapsLine(full.substr(0, n));
    if (n <= inode_at) {
      EXPECT_FALSE(e.has_value()) << n;
      continue;
    }
    ASSERT_TRUE(e.has_value()) << n;
    EXPECT_EQ(e->start, 0x7f2b4c000000u);
    EXPECT_EQ(e->end, 0x7f2b4c021000u);
    EXPECT_EQ(e->inode,
              std::stoull(std::string(full.substr(inode_at, std::min<size_t>(n - inode_at, 5)))));
    EXPECT_EQ(e->path, n <= path_at ? std::string_view() : full.substr(path_at, n - path_at));
  }
}

TEST(MapsLine, ThisProcessesOwnMapsAllParse) {
  FILE* f = std::fopen("/proc/self/maps", "re");
  ASSERT_NE(f, nullptr);
  char* line = nullptr;
  size_t cap = 0;
  int lines = 0, heap = 0;
  uint64_t last_end = 0;
  while (getline(&line, &cap, f) > 0) {
    std::optional<MapsEntry> e = ParseMapsLine(line);
    ASSERT_TRUE(e.has_value()) << line;
    EXPECT_GE(e->start, last_end) << "maps are sorted and disjoint: " << line;
    last_end = e->end;
    heap += e->path == "[heap]";
    ++lines;
  }
  free(line);
  std::fclose(f);
  EXPECT_GT(lines, 5);
  EXPECT_LE(heap, 1);
}

}  // namespace
}  // namespace vrdma::vdev
