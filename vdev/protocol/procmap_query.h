// The PROCMAP_QUERY ioctl on /proc/PID/maps (Linux 6.11, include/uapi/linux/fs.h's
// struct procmap_query): one mapping by address, without the kernel formatting and the
// caller parsing every line of the maps file. Debian 12's linux-libc-dev (6.1) does not
// declare it, so the uAPI is declared here; a kernel without it answers ENOTTY. Both sides
// use it: the provider on its own maps, vrdmad on a client's (vdev/shm/client_mapping.cc).
#pragma once

#include <sys/ioctl.h>

#include <cerrno>
#include <cstdint>

namespace vrdma::proto {

struct ProcmapQuery {
  uint64_t size;  // sizeof(ProcmapQuery), for the kernel to know which fields we have
  uint64_t query_flags;
  uint64_t query_addr;
  uint64_t vma_start;
  uint64_t vma_end;
  uint64_t vma_flags;  // kVma* below
  uint64_t vma_page_size;
  uint64_t vma_offset;  // in its file; 0 without one
  uint64_t inode;
  uint32_t dev_major;
  uint32_t dev_minor;
  uint32_t vma_name_size;  // in: the buffer's size (0: no name); out: the name's, with NUL
  uint32_t build_id_size;
  uint64_t vma_name_addr;
  uint64_t build_id_addr;
};
static_assert(sizeof(ProcmapQuery) == 104);
inline constexpr unsigned long kProcmapQuery = _IOWR('f', 17, ProcmapQuery);

// vma_flags, and the query flags that filter on them.
inline constexpr uint64_t kVmaReadable = 0x01;
inline constexpr uint64_t kVmaWritable = 0x02;
inline constexpr uint64_t kVmaExecutable = 0x04;
inline constexpr uint64_t kVmaShared = 0x08;
// The mapping that covers query_addr, or else the first one above it.
inline constexpr uint64_t kQueryCoveringOrNext = 0x10;

// The mapping that covers `addr`, or else the first above it, of the process whose maps
// file `maps_fd` is open, its path (as the maps file shows it) into `name` when there is
// one (else ""): 0, or ENOENT when there is none, or ENOTTY/EINVAL when the kernel has no
// PROCMAP_QUERY. Allocation-free.
inline int QueryMappingFrom(int maps_fd, uint64_t addr, char* name, uint32_t name_size,
                            ProcmapQuery* q) {
  *q = ProcmapQuery{};
  q->size = sizeof *q;
  q->query_flags = kQueryCoveringOrNext;
  q->query_addr = addr;
  q->vma_name_addr = reinterpret_cast<uintptr_t>(name);
  q->vma_name_size = name_size;
  if (ioctl(maps_fd, kProcmapQuery, q) != 0) return errno;
  if (q->vma_name_size == 0 && name_size) name[0] = 0;
  return 0;
}

}  // namespace vrdma::proto
