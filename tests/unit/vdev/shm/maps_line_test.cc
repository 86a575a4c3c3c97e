#include "vdev/shm/maps_line.h"

#include <gtest/gtest.h>
#include <unistd.h>

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

// smaps: the KernelPageSize of one mapping, found by its start; the lines of the
// mappings around it are not taken for its own.
TEST(SmapsKernelPageSize, FindsTheMappingsOwnField) {
  const std::string smaps =
      "55d0c0a00000-55d0c0a21000 rw-p 00000000 00:00 0                          [heap]\n"
      "Size:                132 kB\n"
      "KernelPageSize:        4 kB\n"
      "VmFlags: rd wr mr mw me ac\n"
      "7f0000000000-7f0000400000 rw-s 00000000 00:0f 1234                       /mnt/huge/buf\n"
      "Size:               4096 kB\n"
      "KernelPageSize:     2048 kB\n"
      "MMUPageSize:        2048 kB\n"
      "7f0000400000-7f0000401000 rw-p 00000000 00:00 0 \n"
      "Size:                  4 kB\n";
  EXPECT_EQ(SmapsKernelPageSize(smaps, 0x55d0c0a00000), 4096u);
  EXPECT_EQ(SmapsKernelPageSize(smaps, 0x7f0000000000), 2u << 20);
  // No field under it (a cut file): not the next mapping's, not a guess.
  EXPECT_EQ(SmapsKernelPageSize(smaps, 0x7f0000400000), std::nullopt);
  EXPECT_EQ(SmapsKernelPageSize(smaps, 0x1000), std::nullopt);
  EXPECT_EQ(SmapsKernelPageSize("7f0000000000-7f0000400000 rw-s 00000000 00:0f 1 /x\n"
                                "KernelPageSize:  2048 MB\n",
                                0x7f0000000000),
            std::nullopt);
  EXPECT_EQ(SmapsKernelPageSize("7f0000000000-7f0000400000 rw-s 00000000 00:0f 1 /x\n"
                                "KernelPageSize: 99999999999999999999 kB\n",
                                0x7f0000000000),
            std::nullopt);
}

TEST(SmapsKernelPageSize, ThisProcessesHeapIsBasePages) {
  FILE* f = std::fopen("/proc/self/smaps", "re");
  ASSERT_NE(f, nullptr);
  std::string text;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) text.append(buf, n);
  std::fclose(f);
  std::optional<MapsEntry> first = ParseMapsLine(text.substr(0, text.find('\n')));
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(SmapsKernelPageSize(text, first->start), static_cast<uint64_t>(sysconf(_SC_PAGESIZE)));
}

}  // namespace
}  // namespace vrdma::vdev
