#include "vdev/shm/client_mapping.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace vrdma {

absl::StatusOr<ClientMapping> OpenClientMapping(pid_t pid, uint64_t addr, uint64_t length) {
  if (length == 0 || addr + length < addr) return absl::InvalidArgumentError("bad range");
  FILE* f = std::fopen(absl::StrCat("/proc/", pid, "/maps").c_str(), "re");
  if (!f) return absl::NotFoundError("client's memory map unreadable");
  char line[4096];
  bool found = false;
  uint64_t start = 0, end = 0, offset = 0, vma_inode = 0;
  unsigned vma_major = 0, vma_minor = 0;
  char perms[8] = {};
  std::string path;
  while (std::fgets(line, sizeof line, f)) {
    unsigned major, minor;
    uint64_t inode;
    int path_at = 0;
    if (std::sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %" SCNx64 " %x:%x %" SCNu64 " %n", &start,
                    &end, perms, &offset, &major, &minor, &inode, &path_at) < 7) {
      continue;
    }
    if (addr < start || addr >= end) continue;
    found = true;
    vma_inode = inode;
    vma_major = major;
    vma_minor = minor;
    path = path_at ? line + path_at : "";
    while (!path.empty() && (path.back() == '\n' || path.back() == ' ')) path.pop_back();
    break;
  }
  std::fclose(f);
  if (!found || addr + length > end) {
    return absl::NotFoundError("range is not one mapping of the client");
  }
  if (perms[3] != 's') return absl::FailedPreconditionError("private file mapping");
  // Objects whose size no process can change (IPC_RMID'd or not, a SysV segment keeps
  // its size; a shared anonymous mapping is an unlinked shmem file of fixed size).
  bool sysv = absl::StartsWith(path, "/SYSV") && absl::EndsWith(path, " (deleted)");
  bool shared_anon = path == "/dev/zero (deleted)";
  bool memfd = absl::StartsWith(path, "/memfd:");
  if (!sysv && !shared_anon && !memfd) {
    return absl::FailedPreconditionError(
        absl::StrCat("shared mapping of '", path, "' (a file that can be truncated)"));
  }
  ClientMapping m;
  m.writable = perms[1] == 'w';
  m.fixed_size = sysv || shared_anon;
  m.file_offset = offset + (addr - start);
  std::string link = absl::StrFormat("/proc/%d/map_files/%" PRIx64 "-%" PRIx64, pid, start, end);
  m.fd = open(link.c_str(), (m.writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (m.fd < 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("opening the client's mapping ", link));
  }
  if (memfd) {
    int seals = fcntl(m.fd, F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
      close(m.fd);
      return absl::FailedPreconditionError("a memfd not sealed against shrinking");
    }
  }
  // The client may have remapped the range since the maps line was read: the object
  // opened must be the one that line described.
  struct stat st;
  if (fstat(m.fd, &st) != 0 || st.st_ino != vma_inode || major(st.st_dev) != vma_major ||
      minor(st.st_dev) != vma_minor) {
    close(m.fd);
    return absl::NotFoundError("the client's mapping changed while it was opened");
  }
  // Huge pages (hugetlbfs, SHM_HUGETLB) need huge-page-aligned ranges on both sides,
  // which the page-granular layout does not give: not supported yet.
  if (st.st_blksize > sysconf(_SC_PAGESIZE)) {
    close(m.fd);
    return absl::FailedPreconditionError("huge pages");
  }
  return m;
}

}  // namespace vrdma
