// Turning registered pages back into private memory: when no registration uses them any
// more, and in a child after fork().
//
// Registered pages are MAP_SHARED mappings of memfds (mr_share.cc). Left shared, a forked
// child would write into its parent's heap and buffers: on a NIC the pages stay private
// and copy-on-write (the kernel copies pinned pages for the child since Linux 5.13), and
// applications rely on that. So the child replaces every registered mapping with a
// private copy before fork() returns in either process. The parent waits for that (a
// pipe) so the copy is the memory as it was at fork(). ibv_fork_init()'s MADV_DONTFORK,
// when applied, leaves those ranges out of the child altogether, as on a NIC.
//
// The child side runs before its heap is private: it allocates nothing (fixed buffers,
// raw read() of /proc/self/maps).
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "vdev/provider/mr_share.h"
#include "vdev/provider/remap_window.h"

namespace vrdma::provider {

using proto::kVmaExecutable;
using proto::kVmaShared;
using proto::kVmaWritable;
using proto::ProcmapQuery;

namespace {

struct Range {
  uintptr_t start, end;
  bool writable, executable;
  uint64_t inode;
  uint64_t offset;  // in the memfd
};

// The mappings of our MR memfds (all of them, or those of one inode), into `out`.
// Returns how many were found (at most `cap` stored). Allocation-free.
size_t FindMemfdMappings(uint64_t only_inode, Range* out, size_t cap) {
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[16384];
  char line[1024];
  size_t line_len = 0, found = 0;
  bool overlong = false;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      if (buf[i] != '\n') {
        if (line_len + 1 < sizeof line) {
          line[line_len++] = buf[i];
        } else {
          overlong = true;  // a long path: not one of ours
        }
        continue;
      }
      line[line_len] = 0;
      MapsLine m;
      if (!overlong && ParseMapsLine(line, &m) && m.shared && IsMrMemfdPath(m.path) &&
          (only_inode == 0 || m.inode == only_inode)) {
        if (found < cap) {
          out[found] = Range{m.start, m.end, m.writable, m.executable, m.inode, m.offset};
        }
        ++found;
      }
      line_len = 0;
      overlong = false;
    }
  }
  close(fd);
  return found;
}

// Copies [from, from + len) to `to`, by the kernel (ReadOwnPages), else by memcpy.
void CopyPages(void* to, const void* from, size_t len) {
  if (ReadOwnPages(to, from, len) != 0) std::memcpy(to, from, len);
}

// Copies the parts of range `r` that hold data in memfd `fd` (SEEK_DATA/SEEK_HOLE) into
// `copy`: pages never written, by the process or the daemon, stay holes there and untouched
// zero pages here, so a sparse registration does not commit its memory on the way back
// either. False when the memfd cannot say (then the caller copies everything).
bool CopyDataOnly(const Range& r, int fd, uint8_t* copy) {
  if (fd < 0) return false;
  const off_t first = static_cast<off_t>(r.offset);
  const off_t end = first + static_cast<off_t>(r.end - r.start);
  for (off_t pos = first; pos < end;) {
    off_t data = lseek(fd, pos, SEEK_DATA);
    if (data < 0) return errno == ENXIO;  // no data after pos; other errors: cannot say
    if (data >= end) break;
    off_t hole = lseek(fd, data, SEEK_HOLE);
    if (hole < 0 || hole > end) hole = end;
    CopyPages(copy + (data - first), reinterpret_cast<const void*>(r.start + (data - first)),
              static_cast<size_t>(hole - data));
    pos = hole;
  }
  return true;
}

// The move of a deregistration, in a remap window (remap_window.h): the contents into the
// private copy, and the copy moved over the memfd's mapping.
struct ToPrivate {
  const Range* range;
  int fd;
  void* copy;
  bool data_only;
};
int CopyAndMoveOnto(void* arg) {
  const auto& m = *static_cast<const ToPrivate*>(arg);
  const Range& r = *m.range;
  const size_t len = r.end - r.start;
  if (!m.data_only || !CopyDataOnly(r, m.fd, static_cast<uint8_t*>(m.copy))) {
    CopyPages(m.copy, reinterpret_cast<const void*>(r.start), len);
  }
  if (!r.writable || r.executable) {
    mprotect(m.copy, len,
             PROT_READ | (r.writable ? PROT_WRITE : 0) | (r.executable ? PROT_EXEC : 0));
  }
  return MoveOnto(m.copy, len, reinterpret_cast<void*>(r.start)) == MAP_FAILED ? errno : 0;
}

// Replaces [start, end) with a private anonymous copy of its contents, in a remap window
// (mremap over the old mapping): of huge pages of `huge_page_size` if not 0 and the pool
// has them, else of normal pages (the contents are what must survive). `fd`: the memfd
// behind it, whose holes need no copy. Allocation-free.
bool MakePrivate(const Range& r, uint64_t huge_page_size, int fd) {
  size_t len = r.end - r.start;
  void* copy = MAP_FAILED;
  if (huge_page_size) {
    copy = mmap(nullptr, len, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB |
                    (__builtin_ctzll(huge_page_size) << MAP_HUGE_SHIFT),
                -1, 0);
  }
  if (copy == MAP_FAILED) {
    copy = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  }
  if (copy == MAP_FAILED) return false;
  ToPrivate move{&r, fd, copy, huge_page_size == 0};
  const int prot = PROT_READ | (r.writable ? PROT_WRITE : 0) | (r.executable ? PROT_EXEC : 0);
  if (InRemapWindow(r.start, r.end, prot, CopyAndMoveOnto, &move) != 0) {
    munmap(copy, len);
    // A kernel that cannot move huge pages: normal ones.
    return huge_page_size != 0 && MakePrivate(r, 0, fd);
  }
  return true;
}

void MakeAllPrivate(uint64_t only_inode) {
  Range ranges[256];
  // Each pass converts up to 256 mappings; converted ones no longer match.
  for (int pass = 0; pass < 64; ++pass) {
    size_t n = FindMemfdMappings(only_inode, ranges, 256);
    size_t stored = n < 256 ? n : 256;
    bool progress = false;
    for (size_t i = 0; i < stored; ++i) {
      progress |= MakePrivate(ranges[i], MemfdPageSizeLocked(ranges[i].inode),
                              MemfdFdLocked(ranges[i].inode));
    }
    if (n <= 256 || !progress) return;
  }
}

// fork(): see the file comment.
int g_fork_pipe[2] = {-1, -1};

void BeforeFork() {
  LockMemfdTable();
  if (pipe2(g_fork_pipe, O_CLOEXEC) != 0) g_fork_pipe[0] = g_fork_pipe[1] = -1;
}

void InParentAfterFork() {
  if (g_fork_pipe[0] >= 0) {
    close(g_fork_pipe[1]);  // then only the child holds a write end: EOF if there is none
    char byte;
    while (read(g_fork_pipe[0], &byte, 1) < 0 && errno == EINTR) {
    }
    close(g_fork_pipe[0]);
  }
  UnlockMemfdTable();
}

void InChildAfterFork() {
  MakeAllPrivate(0);
  if (g_fork_pipe[0] >= 0) {
    char byte = 1;
    (void)!write(g_fork_pipe[1], &byte, 1);
    close(g_fork_pipe[0]);
    close(g_fork_pipe[1]);
  }
  // The child's heap is its own now: forget the parent's registrations.
  ForgetMemfdsInChild();
  UnlockMemfdTable();
}

}  // namespace

void MakeMemfdPrivate(uint64_t inode, uint64_t start, uint64_t len) {
  // The maps file line by line costs a line per mapping of the process: with an MR per
  // mapping, deregistering n MRs took time growing as n squared.
  bool asked =
      ForEachMappingIn(start, start + len, [inode](const ProcmapQuery& q, const char* name) {
        if ((q.vma_flags & kVmaShared) && q.inode == inode && IsMrMemfdPath(name)) {
          MakePrivate(Range{q.vma_start, q.vma_end, (q.vma_flags & kVmaWritable) != 0,
                            (q.vma_flags & kVmaExecutable) != 0, inode, q.vma_offset},
                      MemfdPageSizeLocked(inode), MemfdFdLocked(inode));
        }
      });
  if (!asked) MakeAllPrivate(inode);
}

void InstallForkHandlers() {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, [] { pthread_atfork(BeforeFork, InParentAfterFork, InChildAfterFork); });
}

}  // namespace vrdma::provider
