#include "vdev/shm/client_mapping.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "vdev/protocol/procmap_query.h"
#include "vdev/shm/maps_line.h"

namespace vrdma::vdev {

namespace {

// The whole of /proc/PID/maps or smaps (read in one go: a line cut by a fixed buffer
// would be parsed with half its path).
absl::StatusOr<std::string> ReadProcText(const Peer& peer, const char* name) {
  absl::StatusOr<int> opened = peer.OpenProcFile(name, O_RDONLY);
  if (!opened.ok()) return opened.status();
  int fd = *opened;
  std::string text;
  char buf[16384];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      close(fd);
      return absl::NotFoundError("client's memory map unreadable");
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return text;
}

// The device of the kernel's internal shmem mount, which holds every System V segment,
// shared anonymous mapping and memfd, and no file a process can name or truncate.
std::optional<dev_t> ShmemDevice() {
  static const std::optional<dev_t> dev = []() -> std::optional<dev_t> {
    int fd = memfd_create("vrdma-probe", MFD_CLOEXEC);
    if (fd < 0) return std::nullopt;
    struct stat st;
    bool ok = fstat(fd, &st) == 0;
    close(fd);
    return ok ? std::optional<dev_t>(st.st_dev) : std::nullopt;
  }();
  return dev;
}

std::atomic<bool> g_use_procmap_query{true};

// A mapping of the client, as its maps line says it.
struct Vma {
  uint64_t start = 0, end = 0, offset = 0, inode = 0;
  uint32_t dev_major = 0, dev_minor = 0;
  bool writable = false, shared = false;
  std::string path;
  uint64_t page_size = 0;  // the kernel's (smaps' KernelPageSize) when known, else 0
};

// The mapping covering `addr` by PROCMAP_QUERY: one lookup however many mappings the
// client has, where reading the maps file costs a line per mapping, in the daemon's one
// thread. 1 (found), 0 (none covers addr), -1 (the kernel has no such ioctl, or it failed:
// ask the maps file).
int QueryVma(const Peer& peer, uint64_t addr, Vma* out) {
  if (!g_use_procmap_query.load(std::memory_order_relaxed)) return -1;
  absl::StatusOr<int> opened = peer.OpenProcFile("maps", O_RDONLY);
  if (!opened.ok()) return -1;
  char name[4096];
  proto::ProcmapQuery q;
  int err = proto::QueryMappingFrom(*opened, addr, name, sizeof name, &q);
  close(*opened);
  if (err == ENOTTY || err == EINVAL) g_use_procmap_query.store(false, std::memory_order_relaxed);
  if (err) return err == ENOENT ? 0 : -1;
  if (q.vma_start > addr) return 0;  // the next one up: none covers addr
  *out = Vma{q.vma_start,
             q.vma_end,
             q.vma_offset,
             q.inode,
             q.dev_major,
             q.dev_minor,
             (q.vma_flags & proto::kVmaWritable) != 0,
             (q.vma_flags & proto::kVmaShared) != 0,
             name,
             q.vma_page_size};
  return 1;
}

absl::StatusOr<std::optional<Vma>> FindVma(const Peer& peer, uint64_t addr) {
  Vma vma;
  switch (QueryVma(peer, addr, &vma)) {
    case 1:
      return vma;
    case 0:
      return std::nullopt;
    default:
      break;
  }
  absl::StatusOr<std::string> maps = ReadProcText(peer, "maps");
  if (!maps.ok()) return maps.status();
  for (std::string_view rest = *maps; !rest.empty();) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    std::optional<MapsEntry> e = ParseMapsLine(line);
    if (e && addr >= e->start && addr < e->end) {
      return Vma{e->start,
                 e->end,
                 e->offset,
                 e->inode,
                 e->dev_major,
                 e->dev_minor,
                 e->writable(),
                 e->shared(),
                 std::string(e->path),
                 0};
    }
  }
  return std::nullopt;
}

}  // namespace

void UseProcmapQueryForClientMaps(bool use) {
  g_use_procmap_query.store(use, std::memory_order_relaxed);
}

absl::StatusOr<ClientMapping> OpenClientMapping(const Peer& peer, uint64_t addr, uint64_t length) {
  if (length == 0 || addr + length < addr) return absl::InvalidArgumentError("bad range");
  absl::StatusOr<std::optional<Vma>> found = FindVma(peer, addr);
  if (!found.ok()) return found.status();
  const std::optional<Vma>& vma = *found;
  if (!vma || addr + length > vma->end) {
    return absl::NotFoundError("range is not one mapping of the client");
  }
  const std::string& path = vma->path;
  if (!vma->shared) return absl::FailedPreconditionError("private file mapping");
  // Objects whose size no process can change (IPC_RMID'd or not, a SysV segment keeps
  // its size; a shared anonymous mapping is an unlinked shmem file of fixed size). The
  // name only says which kind the object claims to be: the object itself is checked
  // below (a file named "/SYSV... (deleted)" is not a segment).
  bool sysv = absl::StartsWith(path, "/SYSV") && absl::EndsWith(path, " (deleted)");
  bool shared_anon = path == "/dev/zero (deleted)";
  bool memfd = absl::StartsWith(path, "/memfd:");
  // MAP_SHARED|MAP_HUGETLB: an unlinked file of the kernel's hugetlbfs.
  bool shared_anon_huge = path == "/anon_hugepage (deleted)";
  // Any other file is opened only if the kernel says it is a hugetlbfs mapping (its page
  // size, from smaps): opening a file of the client's choosing could block the daemon (a
  // FUSE file) or do things (a device).
  bool huge_file = false;
  if (!sysv && !shared_anon && !memfd && !shared_anon_huge) {
    std::optional<uint64_t> page_size;
    if (vma->page_size) {
      page_size = vma->page_size;
    } else {
      absl::StatusOr<std::string> smaps = ReadProcText(peer, "smaps");
      page_size = smaps.ok() ? SmapsKernelPageSize(*smaps, vma->start) : std::nullopt;
    }
    huge_file = page_size && *page_size > static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    if (!huge_file) {
      return absl::FailedPreconditionError(
          absl::StrCat("shared mapping of '", path, "' (a file that can be truncated)"));
    }
  }
  ClientMapping m;
  m.writable = vma->writable;
  m.fixed_size = sysv || shared_anon || shared_anon_huge;
  m.file_offset = vma->offset + (addr - vma->start);
  // Through the peer's own /proc directory: once it has exited, this fails rather than
  // open the mapping of a process that took its PID (as ib_umem_get pins current->mm).
  absl::StatusOr<int> opened =
      peer.OpenProcFile(absl::StrFormat("map_files/%" PRIx64 "-%" PRIx64, vma->start, vma->end),
                        m.writable ? O_RDWR : O_RDONLY);
  if (!opened.ok()) return opened.status();
  m.fd = *opened;
  // The client may have remapped the range since the maps line was read: the object
  // opened must be the one that line described.
  struct stat st;
  if (fstat(m.fd, &st) != 0 || st.st_ino != vma->inode || major(st.st_dev) != vma->dev_major ||
      minor(st.st_dev) != vma->dev_minor) {
    close(m.fd);
    return absl::NotFoundError("the client's mapping changed while it was opened");
  }
  struct statfs fs;
  if (fstatfs(m.fd, &fs) == 0 && fs.f_type == HUGETLBFS_MAGIC) {
    // Huge pages, of any of the kinds above or a hugetlbfs file: what ClientMemory
    // accepts of hugetlbfs, and why, is said there.
    return m;
  }
  if (huge_file) {
    close(m.fd);
    return absl::NotFoundError("the client's mapping changed while it was opened");
  }
  if (memfd) {
    int seals = fcntl(m.fd, F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
      close(m.fd);
      return absl::FailedPreconditionError("a memfd not sealed against shrinking");
    }
  }
  std::optional<dev_t> shmem = ShmemDevice();
  if (!shmem || st.st_dev != *shmem || shared_anon_huge) {
    close(m.fd);
    return absl::FailedPreconditionError(
        absl::StrCat("'", path, "' is not shared memory of the kernel (a file named like it)"));
  }
  return m;
}

}  // namespace vrdma::vdev
