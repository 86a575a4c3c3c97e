#include "vdev/provider/mr_share.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/memfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "vdev/protocol/procmap_query.h"
#include "vdev/provider/remap_window.h"

namespace vrdma::provider {

using proto::kVmaExecutable;
using proto::kVmaReadable;
using proto::kVmaShared;
using proto::kVmaWritable;
using proto::ProcmapQuery;

namespace {

struct Memfd {
  int fd;
  int refs;
  uint64_t page_size;   // of the memfd's pages: the base page, or a huge page size
  uint64_t start, len;  // where it was mapped over the process's memory (RemapPrivate)
};

std::mutex g_mutex;
// Cleared when the kernel answers PROCMAP_QUERY with ENOTTY (before Linux 6.11), or by a test.
std::atomic<bool> g_use_procmap_query{true};
std::map<uint64_t, Memfd>* g_memfds = new std::map<uint64_t, Memfd>;  // by inode

struct Vma {
  uint64_t start, end, offset, inode;
  bool readable, writable, executable, shared;
  std::string path;
};

// The mappings over [lo, hi) one PROCMAP_QUERY each; false (nothing read) when the kernel
// has no such ioctl. A registration asks twice: with the maps file, each time cost a line
// per mapping of the process (formatted by the kernel, parsed here), so that registering
// n MRs, each a mapping of its own once remapped, took time growing as n squared (4,000
// one-page MRs: 44 s).
bool QueryMaps(uint64_t lo, uint64_t hi, std::vector<Vma>* out) {
  bool ok = ForEachMappingIn(lo, hi, [out](const ProcmapQuery& q, const char* name) {
    out->push_back(Vma{q.vma_start, q.vma_end, q.vma_offset, q.inode,
                       (q.vma_flags & kVmaReadable) != 0, (q.vma_flags & kVmaWritable) != 0,
                       (q.vma_flags & kVmaExecutable) != 0, (q.vma_flags & kVmaShared) != 0, name});
  });
  if (!ok) out->clear();
  return ok;
}

std::vector<Vma> ReadMaps(uint64_t lo, uint64_t hi) {
  std::vector<Vma> out;
  if (QueryMaps(lo, hi, &out)) return out;
  FILE* f = fopen("/proc/self/maps", "re");
  if (!f) return out;
  char line[4096];
  while (fgets(line, sizeof line, f)) {
    MapsLine m;
    if (!ParseMapsLine(line, &m) || m.end <= lo || m.start >= hi) continue;
    out.push_back(Vma{m.start, m.end, m.offset, m.inode, m.readable, m.writable, m.executable,
                      m.shared, m.path});
  }
  fclose(f);
  return out;
}

bool IsPrivateAnonymous(const Vma& v) {
  if (v.shared || v.inode != 0) return false;
  return v.path.empty() || v.path == "[heap]" || v.path == "[stack]" ||
         v.path.rfind("[anon:", 0) == 0;
}

// A private mapping of a file (a program's or library's .data, and the part of .bss that
// shares its last page; MAP_PRIVATE of any file): its pages are the process's own once
// written, and a copy is what a NIC pins (ib_umem_get breaks copy-on-write for write
// access). Not huge pages: the page-granular remap cannot split them.
bool IsPrivateFile(const Vma& v) {
  if (v.shared || v.inode == 0 || v.path.empty() || v.path[0] != '/') return false;
  if (v.path.rfind("/anon_hugepage", 0) == 0 || v.path.rfind("/SYSV", 0) == 0) return false;
  // By path, without opening it (opening a device can do things): what the path names
  // now, which a deleted or renamed file no longer is; then the copy is made from the
  // pages, which are what the process reads.
  struct stat st;
  if (stat(v.path.c_str(), &st) != 0 || st.st_ino != v.inode) return true;
  struct statfs fs;
  if (statfs(v.path.c_str(), &fs) == 0 && fs.f_type == HUGETLBFS_MAGIC) return false;
  // MAP_PRIVATE of /dev/zero is anonymous memory; of any other device, not ours to copy.
  return S_ISREG(st.st_mode) || v.path == "/dev/zero";
}

bool IsOurMemfd(const Vma& v) { return v.shared && IsMrMemfdPath(v.path.c_str()); }

// The page size the kernel maps [start, ...) with (smaps' KernelPageSize), or 0.
uint64_t KernelPageSize(uint64_t start) {
  FILE* f = fopen("/proc/self/smaps", "re");
  if (!f) return 0;
  char line[4096];
  bool in_vma = false;
  uint64_t size = 0;
  while (fgets(line, sizeof line, f)) {
    MapsLine m;
    unsigned long long kb;
    if (ParseMapsLine(line, &m)) {
      if (in_vma) break;
      in_vma = m.start == start;
    } else if (in_vma && sscanf(line, "KernelPageSize: %llu kB", &kb) == 1) {
      size = kb * 1024;
      break;
    }
  }
  fclose(f);
  return size;
}

// Writes [start + off, start + off + len) of this process's memory at `off` of memfd `fd`
// by the system call itself, not libc's pwrite: the pages hold more than the buffer being
// registered (other globals, other heap blocks), which a sanitizer's interceptor would
// take for an overflow of that buffer. 0 or an errno.
int WriteAll(int fd, uint64_t start, uint64_t off, uint64_t len) {
  const auto* src = reinterpret_cast<const uint8_t*>(start);
  for (uint64_t done = 0; done < len;) {
    ssize_t n =
        syscall(SYS_pwrite64, fd, src + off + done, len - done, static_cast<off_t>(off + done));
    if (n <= 0) return n < 0 ? errno : EIO;
    done += static_cast<uint64_t>(n);
  }
  return 0;
}

// The copy of huge pages, made through a temporary mapping of the new memfd (hugetlbfs
// has no write()).
int CopyHuge(int fd, uint64_t start, uint64_t len) {
  void* tmp = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (tmp == MAP_FAILED) return errno;  // ENOMEM: not enough free huge pages for the copy
  int err = ReadOwnPages(tmp, reinterpret_cast<const void*>(start), len);
  munmap(tmp, len);
  return err;
}

// MAP_PRIVATE|MAP_HUGETLB, or a private mapping of a hugetlbfs file (whose path may be
// gone): its huge page size, else 0. The kernel's word (smaps), asked only of mappings
// that start and end where a huge page could (64 KiB, the smallest huge page of any
// architecture Linux has).
uint64_t PrivateHugePageSize(const Vma& v) {
  constexpr uint64_t kSmallestHuge = 64 * 1024;
  if (v.shared || v.inode == 0 || v.start % kSmallestHuge || v.end % kSmallestHuge) return 0;
  const uint64_t size = KernelPageSize(v.start);
  if (size <= static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) || (size & (size - 1))) return 0;
  return size;
}

// Copies the runs of private anonymous [start, start + len) that hold data into memfd
// `fd`: pages present or swapped out (/proc/self/pagemap bits 63 and 62). A page never
// touched reads as zeros, as a hole of a memfd does: only the runs need copying, so
// registering a large buffer commits no more memory than the process has used, and the
// rest is faulted in when the process or the daemon first touches it (on demand). False
// when pagemap cannot be read. Allocation-free (in a remap window).
bool CopyDataRuns(int fd, uint64_t start, uint64_t len, int* err) {
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  int map = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (map < 0) return false;
  constexpr uint64_t kPresent = 1ull << 63, kSwapped = 1ull << 62;
  uint64_t entries[512];
  const uint64_t pages = len / page;
  uint64_t run_start = 0, run_len = 0;
  bool ok = true;
  for (uint64_t i = 0; i < pages && ok && !*err;) {
    const uint64_t n = std::min<uint64_t>(pages - i, 512);
    const off_t at = static_cast<off_t>((start / page + i) * sizeof(uint64_t));
    ok = pread(map, entries, n * sizeof(uint64_t), at) == static_cast<ssize_t>(n * 8);
    for (uint64_t j = 0; ok && j < n && !*err; ++j) {
      if (!(entries[j] & (kPresent | kSwapped))) continue;
      const uint64_t off = (i + j) * page;
      if (run_len && run_start + run_len == off) {
        run_len += page;
        continue;
      }
      if (run_len) *err = WriteAll(fd, start, run_start, run_len);
      run_start = off;
      run_len = page;
    }
    i += n;
  }
  if (ok && run_len && !*err) *err = WriteAll(fd, start, run_start, run_len);
  close(map);
  return ok;
}

// The move of a registration, in a remap window (remap_window.h): the pages' contents into
// the memfd, and the memfd mapped over them.
struct ToMemfd {
  int fd;
  uint64_t start, len;
  int prot;
  bool huge, anonymous;
};
int CopyAndMapOver(void* arg) {
  const auto& m = *static_cast<const ToMemfd*>(arg);
  int err = 0;
  if (m.huge) {
    err = CopyHuge(m.fd, m.start, m.len);
  } else if (!(m.anonymous && CopyDataRuns(m.fd, m.start, m.len, &err)) && !err) {
    err = WriteAll(m.fd, m.start, 0, m.len);  // pwrite rewrites what a failed pass wrote
  }
  if (!err && MapOver(reinterpret_cast<void*>(m.start), m.len, m.prot, MAP_SHARED | MAP_FIXED,
                      m.fd) == MAP_FAILED) {
    err = errno;
  }
  return err;
}

// Copies [start, start+len) into a new sealed memfd and maps it over the same pages,
// with the protection they had, in a remap window. `page_size` above the base page: huge
// pages (start and len aligned to it), copied into a hugetlbfs memfd of that page size.
// `anonymous`: private anonymous memory, of which only the pages in use are copied.
int RemapPrivate(uint64_t start, uint64_t len, int prot, uint64_t page_size, bool anonymous,
                 uint64_t* inode_out) {
  const bool huge = page_size > static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
  if (huge) {
    flags |= MFD_HUGETLB | (static_cast<unsigned>(__builtin_ctzll(page_size)) << MFD_HUGE_SHIFT);
  }
  int fd = memfd_create(kMrMemfdName, flags);
  if (fd < 0) return errno;
  int err = 0;
  if (ftruncate(fd, static_cast<off_t>(len)) != 0) err = errno;
  // The daemon refuses memory it could be made to fault on: seal the size.
  if (!err && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) err = errno;
  struct stat st;
  if (!err && fstat(fd, &st) != 0) err = errno;
  ToMemfd move{fd, start, len, prot, huge, anonymous};
  if (!err) err = InRemapWindow(start, start + len, prot, CopyAndMapOver, &move);
  if (err) {
    close(fd);
    return err;
  }
  // Keep fork-safety (ibv_fork_init) for the new mapping, as for the pages it replaced.
  if (ibv_is_fork_initialized() == IBV_FORK_ENABLED) {
    madvise(reinterpret_cast<void*>(start), len, MADV_DONTFORK);
  }
  (*g_memfds)[st.st_ino] = Memfd{fd, 0, huge ? page_size : 0, start, len};
  *inode_out = st.st_ino;
  return 0;
}

// A memfd no registration uses: its pages back to private memory, the memfd closed.
std::map<uint64_t, Memfd>::iterator Retire(std::map<uint64_t, Memfd>::iterator it) {
  MakeMemfdPrivate(it->first, it->second.start, it->second.len);
  close(it->second.fd);
  return g_memfds->erase(it);
}

// Memfds made by a registration that then failed.
void DropUnreferenced() {
  for (auto it = g_memfds->begin(); it != g_memfds->end();) {
    it = it->second.refs > 0 ? std::next(it) : Retire(it);
  }
}

int ProtOf(const Vma& v) {
  return PROT_READ | (v.writable ? PROT_WRITE : 0) | (v.executable ? PROT_EXEC : 0);
}

int ShareRangeLocked(uint64_t lo, uint64_t hi, SharedPages* out) {
  // Two passes: first make every piece a memfd mapping, then describe the range from
  // the final maps (remapping changes the VMAs).
  for (int pass = 0; pass < 2; ++pass) {
    std::vector<Vma> vmas = ReadMaps(lo, hi);
    uint64_t cursor = lo;
    out->segments.clear();
    out->fds.clear();
    out->inodes.clear();
    for (const Vma& v : vmas) {
      if (v.start > cursor) return EFAULT;  // a hole: not mapped
      uint64_t s = std::max(v.start, cursor), e = std::min(v.end, hi);
      if (!v.readable) return EFAULT;
      auto known = g_memfds->find(v.inode);
      if (IsOurMemfd(v) && known != g_memfds->end()) {
        if (pass == 1) {
          out->segments.push_back({s - lo, e - s, v.offset + (s - v.start), 0, 0});
          out->fds.push_back(known->second.fd);
          out->inodes.push_back(v.inode);
        }
      } else if (v.shared && !IsOurMemfd(v)) {
        // Memory the process already shares (System V shm, MAP_SHARED anonymous, a
        // memfd of its own): the daemon reaches it itself, and decides what it accepts.
        if (pass == 1) out->segments.push_back({s - lo, e - s, 0, 1, 0});
      } else if (pass == 1) {
        return EAGAIN;  // changed under us
      } else if (const uint64_t unit = PrivateHugePageSize(v)) {
        // Whole huge pages: the mapping starts and ends on them, the range may not.
        const uint64_t hs = s & ~(unit - 1), he = std::min(v.end, (e + unit - 1) & ~(unit - 1));
        uint64_t inode;
        if (int err = RemapPrivate(hs, he - hs, ProtOf(v), unit, false, &inode)) return err;
      } else if (IsPrivateAnonymous(v) || IsPrivateFile(v) || IsOurMemfd(v)) {
        uint64_t inode;
        if (int err = RemapPrivate(s, e - s, ProtOf(v), 0, IsPrivateAnonymous(v), &inode)) {
          return err;
        }
      } else {
        return EOPNOTSUPP;
      }
      cursor = e;
    }
    if (cursor < hi) return EFAULT;
  }
  if (out->segments.size() > proto::kMaxMrSegments) return ENOMEM;
  for (uint64_t ino : out->inodes) (*g_memfds)[ino].refs++;
  out->page_base = lo;
  out->page_length = hi - lo;
  return 0;
}

}  // namespace

bool ParseMapsLine(char* line, MapsLine* out) {
  char perms[8] = {};
  unsigned dev_major, dev_minor;
  int path_at = 0;
  if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %" SCNx64 " %x:%x %" SCNu64 " %n", &out->start,
             &out->end, perms, &out->offset, &dev_major, &dev_minor, &out->inode, &path_at) < 7) {
    return false;
  }
  out->readable = perms[0] == 'r';
  out->writable = perms[1] == 'w';
  out->executable = perms[2] == 'x';
  out->shared = perms[3] == 's';
  char* path = path_at ? line + path_at : line + strlen(line);
  size_t n = strlen(path);
  // Only the line end goes: a file's name may end in spaces.
  if (n > 0 && path[n - 1] == '\n') path[--n] = 0;
  out->path = path;
  return true;
}

bool UsesProcmapQuery() { return g_use_procmap_query.load(std::memory_order_relaxed); }
void SetUseProcmapQuery(bool use) { g_use_procmap_query.store(use, std::memory_order_relaxed); }

bool IsMrMemfdPath(const char* path) {
  // Exactly our name: an application's own memfd "vrdma-mr-cache" is not ours.
  const size_t name_len = strlen(kMrMemfdName);
  if (strncmp(path, "/memfd:", 7) != 0 || strncmp(path + 7, kMrMemfdName, name_len) != 0) {
    return false;
  }
  const char* rest = path + 7 + name_len;
  return *rest == 0 || strcmp(rest, " (deleted)") == 0;
}

// syscall() is variadic and hands the kernel six full registers: every argument goes as a
// long (an int 0 as the sixth, passed on the stack, leaves the upper half of whatever was
// there, and the kernel reads it: EINVAL, or another offset).
void* MapOver(void* addr, size_t len, int prot, int flags, int fd) {
  return reinterpret_cast<void*>(syscall(SYS_mmap, addr, len, static_cast<long>(prot),
                                         static_cast<long>(flags), static_cast<long>(fd), 0L));
}

void* MoveOnto(void* from, size_t len, void* to) {
  return reinterpret_cast<void*>(
      syscall(SYS_mremap, from, len, len, static_cast<long>(MREMAP_MAYMOVE | MREMAP_FIXED), to));
}

int ReadOwnPages(void* to, const void* from, size_t len) {
  iovec local{to, len}, remote{const_cast<void*>(from), len};
  long n = syscall(SYS_process_vm_readv, static_cast<long>(getpid()), &local, 1L, &remote, 1L, 0L);
  if (n == static_cast<long>(len)) return 0;
  return n < 0 ? errno : EIO;
}

int ShareRange(uintptr_t addr, uint64_t length, SharedPages* out) {
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  if (length == 0 || addr + length < addr) return EINVAL;
  uint64_t lo = addr & ~(page - 1);
  uint64_t hi = (addr + length + page - 1) & ~(page - 1);
  InstallForkHandlers();
  std::lock_guard<std::mutex> lock(g_mutex);
  int err = ShareRangeLocked(lo, hi, out);
  if (err) DropUnreferenced();
  return err;
}

void ReleasePages(const std::vector<uint64_t>& inodes) {
  std::lock_guard<std::mutex> lock(g_mutex);
  for (uint64_t ino : inodes) {
    auto it = g_memfds->find(ino);
    if (it == g_memfds->end()) continue;
    if (--it->second.refs <= 0) Retire(it);
  }
}

uint64_t MemfdPageSizeLocked(uint64_t inode) {
  auto it = g_memfds->find(inode);
  return it == g_memfds->end() ? 0 : it->second.page_size;
}

int MemfdFdLocked(uint64_t inode) {
  auto it = g_memfds->find(inode);
  return it == g_memfds->end() ? -1 : it->second.fd;
}

void LockMemfdTable() { g_mutex.lock(); }
void UnlockMemfdTable() { g_mutex.unlock(); }

void ForgetMemfdsInChild() {
  for (auto& [ino, m] : *g_memfds) close(m.fd);
  g_memfds->clear();
}

}  // namespace vrdma::provider
