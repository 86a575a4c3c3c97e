// Lines of /proc/PID/maps as kernels write them, with what each says: shared by the
// tests of the daemon's parser (vdev/shm/maps_line.h) and the provider's
// (vdev/provider/mr_share.h), which must read them alike.
#pragma once

#include <cstdint>
#include <string_view>

namespace vrdma::testing {

struct MapsCase {
  std::string_view line;
  uint64_t start, end;
  std::string_view perms;
  uint64_t offset;
  uint32_t dev_major, dev_minor;
  uint64_t inode;
  std::string_view path;
};

// Padded as the kernel pads (the path starts at column 74 on 64-bit).
inline constexpr MapsCase kMapsCorpus[] = {
    {"55b7f8c10000-55b7f8c31000 rw-p 00000000 00:00 0                          [heap]\n",
     0x55b7f8c10000, 0x55b7f8c31000, "rw-p", 0, 0, 0, 0, "[heap]"},
    {"7ffd1c3a0000-7ffd1c3c1000 rw-p 00000000 00:00 0                          [stack]\n",
     0x7ffd1c3a0000, 0x7ffd1c3c1000, "rw-p", 0, 0, 0, 0, "[stack]"},
    // Anonymous memory: no path, the kernel leaves one space after the inode.
    {"7efc60aff000-7efc60b21000 rw-p 00000000 00:00 0 \n", 0x7efc60aff000, 0x7efc60b21000, "rw-p",
     0, 0, 0, 0, ""},
    {"7efc60aff000-7efc60b21000 ---p 00000000 00:00 0\n", 0x7efc60aff000, 0x7efc60b21000, "---p", 0,
     0, 0, 0, ""},
    {"7f2b4c000000-7f2b4c021000 rw-s 00000000 00:01 32769                      "
     "/SYSV00000000 (deleted)\n",
     0x7f2b4c000000, 0x7f2b4c021000, "rw-s", 0, 0, 1, 32769, "/SYSV00000000 (deleted)"},
    {"7f2b4c100000-7f2b4c121000 r--s 00000000 00:01 32770                      "
     "/SYSV0badc0de (deleted)\n",
     0x7f2b4c100000, 0x7f2b4c121000, "r--s", 0, 0, 1, 32770, "/SYSV0badc0de (deleted)"},
    {"7f2b4d000000-7f2b4d200000 rw-s 00000000 00:01 1025                       "
     "/dev/zero (deleted)\n",
     0x7f2b4d000000, 0x7f2b4d200000, "rw-s", 0, 0, 1, 1025, "/dev/zero (deleted)"},
    {"7f2b4e000000-7f2b4e003000 rw-s 00002000 00:01 2050                       "
     "/memfd:vrdma-mr (deleted)\n",
     0x7f2b4e000000, 0x7f2b4e003000, "rw-s", 0x2000, 0, 1, 2050, "/memfd:vrdma-mr (deleted)"},
    // A memfd name with spaces.
    {"7f2b4e003000-7f2b4e004000 rw-s 00000000 00:01 2051                       "
     "/memfd:my ring buffer (deleted)\n",
     0x7f2b4e003000, 0x7f2b4e004000, "rw-s", 0, 0, 1, 2051, "/memfd:my ring buffer (deleted)"},
    // A file path with spaces, a large offset, a major:minor in hex.
    {"7f2b4f000000-7f2b4f001000 r--p 1234567000 fe:01 131075                     "
     "/home/user/My Documents/data file.bin\n",
     0x7f2b4f000000, 0x7f2b4f001000, "r--p", 0x1234567000, 0xfe, 1, 131075,
     "/home/user/My Documents/data file.bin"},
    // An unlinked file mapped shared, and a file whose own name ends in spaces.
    {"7f2b4f100000-7f2b4f101000 rw-s 00000000 00:2a 77                         "
     "/tmp/scratch (deleted)\n",
     0x7f2b4f100000, 0x7f2b4f101000, "rw-s", 0, 0, 0x2a, 77, "/tmp/scratch (deleted)"},
    {"7f2b4f200000-7f2b4f201000 rw-s 00000000 00:2a 78                         /tmp/trail  \n",
     0x7f2b4f200000, 0x7f2b4f201000, "rw-s", 0, 0, 0x2a, 78, "/tmp/trail  "},
    {"7f2b51000000-7f2b51001000 rw-s 00000000 00:05 1234                       "
     "anon_inode:[io_uring]\n",
     0x7f2b51000000, 0x7f2b51001000, "rw-s", 0, 0, 5, 1234, "anon_inode:[io_uring]"},
    {"7f2b52000000-7f2b52200000 rw-s 00000000 00:0f 5678                       "
     "/anon_hugepage (deleted)\n",
     0x7f2b52000000, 0x7f2b52200000, "rw-s", 0, 0, 0xf, 5678, "/anon_hugepage (deleted)"},
    // The top of the 64-bit address space, no trailing newline, a 20-digit inode.
    {"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]",
     0xffffffffff600000, 0xffffffffff601000, "--xp", 0, 0, 0, 0, "[vsyscall]"},
    {"7f0000000000-7f0000001000 r-xs ffffffffffff0000 103:02 18446744073709551615 /x\n",
     0x7f0000000000, 0x7f0000001000, "r-xs", 0xffffffffffff0000, 0x103, 2, 18446744073709551615u,
     "/x"},
    // A 32-bit process's map (8-digit addresses).
    {"08048000-08049000 r-xp 00000000 08:01 12                                 /bin/x32\n",
     0x08048000, 0x08049000, "r-xp", 0, 8, 1, 12, "/bin/x32"},
};

// Lines that are not maps lines: each must be refused.
inline constexpr std::string_view kMalformedMapsLines[] = {
    "",
    "\n",
    "garbage",
    "7f2b4c000000 rw-s 00000000 00:01 1 /x",                         // no end address
    "7f2b4c000000- rw-s 00000000 00:01 1 /x",                        // empty end address
    "7f2b4c000000-7f2b4c021000 rw-s 00000000 00:01",                 // no inode
    "7f2b4c000000-7f2b4c021000 rw-s 00000000 0001 1 /x",             // no ':' in the device
    "7f2b4c000000-7f2b4c021000 rw-s 00000000 00:01 x /x",            // inode not a number
    "7f2b4c000000-7f2b4c021000 rw-s 00000000 00:01 12x /x",          // inode glued to junk
    "7f2b4c000000-7f2b4c021000 rwxq 00000000 00:01 1 /x",            // neither p nor s
    "7f2b4c000000-7f2b4c021000 rw- 00000000 00:01 1 /x",             // three permission flags
    "7f2b4c000000-7f2b4c021000 RW-S 00000000 00:01 1 /x",            // not the kernel's letters
    "7f2b4c000000-7f2b4c021000 rw-sp 00000000 00:01 1 /x",           // five
    "7f2b4c021000-7f2b4c000000 rw-s 00000000 00:01 1 /x",            // start after end
    "7f2b4c000000-7f2b4c000000 rw-s 00000000 00:01 1 /x",            // empty
    "17f2b4c0000000000-17f2b4c0210000000 rw-s 00000000 00:01 1 /x",  // 17 hex digits
    "7f2b4c000000-7f2b4c021000 rw-s 100000000000000000 00:01 1 /x",  // offset too long
    "7f2b4c000000-7f2b4c021000 rw-s 00000000 00:01 18446744073709551616 /x",  // inode > 2^64-1
    "7f2b4c000000-7f2b4c021000 rw-s 00000000 00:01 99999999999999999999 /x",
    "7f2b4c000000-7f2b4c021000 rw-s 00000000 123456789:01 1 /x",  // major beyond 32 bits
    " 7f2b4c000000-7f2b4c021000 rw-s 00000000 00:01 1 /x",        // leading space
    "7f2b4c000000-7f2b4c021000  rw-s 00000000 00:01 1 /x",        // double separator
    "7f2b4c000000-7f2b4c021000\trw-s 00000000 00:01 1 /x",        // tab
    "-7f2b4c021000 rw-s 00000000 00:01 1 /x",
    "0x7f2b4c000-0x7f2b4c021000 rw-s 00000000 00:01 1 /x",
};

}  // namespace vrdma::testing
