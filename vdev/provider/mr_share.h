// Registered memory shared with the daemon (DESIGN.md, "Memory"): the pages of a
// registration are remapped, in place and with their contents, onto memfds the daemon
// maps too, so the engine reads and writes the application's buffers directly.
//
// The pages are found in /proc/self/maps: private pages (heap, stack, anonymous mmap, and
// private file mappings such as a program's .data and .bss) are copied into a new memfd
// which is then mapped over them at the same address, with the same protection; pages
// already remapped by an earlier registration reuse their memfd. Shared mappings (System V
// shm, MAP_SHARED anonymous, the application's own memfds) are already shared: they go by
// reference and the daemon opens them itself, accepting only objects that cannot shrink
// under it. Private huge pages (MAP_PRIVATE|MAP_HUGETLB, private hugetlbfs mappings) are
// copied into a hugetlbfs memfd of the same page size, whole huge pages at a time (which
// needs as many free huge pages again while the copy is made). The kernel's special
// mappings ([vdso], [vvar]) are refused with EOPNOTSUPP rather than registered wrongly. The
// copy and the remap run in a remap window (remap_window.h), so that other threads' writes to
// those pages meanwhile are kept. Pages no registration uses any more become private again,
// and a forked child gets private copies (mr_private.cc).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <vector>

#include "vdev/protocol/procmap_query.h"
#include "vdev/protocol/protocol.h"

namespace vrdma::provider {

// The name of the memfds registered pages live in (/proc/self/maps shows /memfd:NAME).
inline constexpr const char* kMrMemfdName = "vrdma-mr";

// One line of /proc/self/maps.
struct MapsLine {
  uint64_t start, end, offset, inode;
  bool readable, writable, executable, shared;
  const char* path;  // into the parsed line, trailing newline and spaces cut; "" if none
};
// Parses `line` (modified in place). Allocation-free: the fork child uses it.
bool ParseMapsLine(char* line, MapsLine* out);
// Whether a mapping's path names one of our MR memfds.
bool IsMrMemfdPath(const char* path);

struct SharedPages {
  uint64_t page_base = 0;
  uint64_t page_length = 0;
  std::vector<proto::MrSegment> segments;
  std::vector<int> fds;          // one per segment not by reference, owned by the memfd table
  std::vector<uint64_t> inodes;  // memfds referenced, one reference each
};

// mmap(MAP_FIXED) and mremap(MREMAP_FIXED) straight to the kernel, past libc's symbols.
// Moving registered pages keeps the memory at those addresses (contents, protection) and
// every registration of it: hooks on libc's mmap/mremap that take a mapping replaced for an
// unmap (UCX's UCM, which then evicts the range from its registration cache, in the middle
// of the registration that caused it) must not see these. Allocation-free.
void* MapOver(void* addr, size_t len, int prot, int flags, int fd);
void* MoveOnto(void* from, size_t len, void* to);

// Copies [from, from + len) of this process to `to` by the kernel (process_vm_readv on
// itself): the pages hold more than any one object (other globals, other heap blocks, a
// stack's frames), which a sanitizer's memcpy interceptor would take for overflows.
// Returns 0 or an errno. Allocation-free.
int ReadOwnPages(void* to, const void* from, size_t len);

// Shares the pages of [addr, addr+length). Returns 0 or an errno.
int ShareRange(uintptr_t addr, uint64_t length, SharedPages* out);
// Drops the references ShareRange took; the pages of a memfd no registration uses
// become private anonymous memory again (same contents) and the memfd is closed.
void ReleasePages(const std::vector<uint64_t>& inodes);

// The page size of our MR memfd `inode` when it holds huge pages, else 0 (the table's
// lock held; allocation-free, for the fork child).
uint64_t MemfdPageSizeLocked(uint64_t inode);
// The descriptor of our MR memfd `inode`, or -1 (the table's lock held; allocation-free).
int MemfdFdLocked(uint64_t inode);
// mr_private.cc: replaces the mappings of the MR memfd `inode` with private copies: those
// in [start, start + len), where it was made, when the kernel answers PROCMAP_QUERY (a
// mapping the program moved elsewhere stays shared until a fork() makes it private, as
// every registered mapping then), else all of them.
void MakeMemfdPrivate(uint64_t inode, uint64_t start, uint64_t len);
// Whether the process's mappings are looked up with PROCMAP_QUERY (procmap_query.h) or
// read from the maps file: false once the kernel has said it has no such ioctl; a test
// sets it to run the maps file's way, as on kernels before 6.11.
bool UsesProcmapQuery();
void SetUseProcmapQuery(bool use);
// Calls fn(query, name) for each mapping of this process over [lo, hi), one PROCMAP_QUERY
// each (the name as the maps file shows it, "" for none); false when the kernel cannot be
// asked that way (fn may have been called for some: the caller starts over from the maps
// file), and on a kernel without the ioctl UsesProcmapQuery() turns false. Allocation-free.
template <typename Fn>
bool ForEachMappingIn(uint64_t lo, uint64_t hi, Fn fn) {
  if (!UsesProcmapQuery()) return false;
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char name[4096];
  int err = 0;
  for (uint64_t addr = lo; addr < hi;) {
    proto::ProcmapQuery q;
    err = proto::QueryMappingFrom(fd, addr, name, sizeof name, &q);
    if (err == ENOENT) err = 0;  // nothing at or above addr
    if (err || q.vma_start >= hi) break;
    fn(q, name);
    addr = q.vma_end;
  }
  close(fd);
  if (err == ENOTTY || err == EINVAL) SetUseProcmapQuery(false);
  return err == 0;
}
// Registers the fork() handlers that give a child private copies (once per process).
void InstallForkHandlers();
// The memfd table's lock, held across fork(); and the child's clean-up of the table.
void LockMemfdTable();
void UnlockMemfdTable();
void ForgetMemfdsInChild();

}  // namespace vrdma::provider
