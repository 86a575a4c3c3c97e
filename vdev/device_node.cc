// Device nodes of vdevs (device_node.h).
#include "vdev/device_node.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace vrdma::vdev {

namespace {

std::string Why(const std::string& what, int err) {
  return absl::StrCat(what, ": ", std::strerror(err));
}

// A node of ours: a character device of the null device number.
bool IsVrdmaNode(const struct stat& st) {
  return S_ISCHR(st.st_mode) && major(st.st_rdev) == 0 && minor(st.st_rdev) == 0;
}

// The directory, opened without following a symbolic link in its last component.
int OpenDir(const std::string& dir) {
  return open(dir.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

}  // namespace

DeviceNodes::~DeviceNodes() {
  while (!made_.empty()) Remove(std::string(made_.begin()->first));
}

absl::StatusOr<std::string> DeviceNodes::Create(std::string_view name, const AccessPolicy& policy) {
  if (dir_.empty()) return absl::FailedPreconditionError("device nodes are off (--dev-dir none)");
  const std::string path = absl::StrCat(dir_, "/", std::string(name));
  // Names are device names (no '/'); these two would be the directory or its parent.
  if (name == "." || name == "..") return absl::InvalidArgumentError(path + ": not a node name");
  if (mkdir(dir_.c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::FailedPreconditionError(Why(dir_, errno));
  }
  int dfd = OpenDir(dir_);
  if (dfd < 0) return absl::FailedPreconditionError(Why(dir_, errno));
  const std::string leaf(name);
  // Made unreadable first; the owner, group and mode come after (no window with more).
  int rc = mknodat(dfd, leaf.c_str(), S_IFCHR | 0600, makedev(0, 0));
  if (rc != 0 && errno == EEXIST) {
    struct stat st {};
    if (fstatat(dfd, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && !IsVrdmaNode(st)) {
      close(dfd);
      return absl::AlreadyExistsError(
          absl::StrCat(path, " exists and is not a vrdma device node (char 0:0): left alone"));
    }
    (void)unlinkat(dfd, leaf.c_str(), 0);
    rc = mknodat(dfd, leaf.c_str(), S_IFCHR | 0600, makedev(0, 0));
  }
  if (rc != 0) {
    int err = errno;
    close(dfd);
    return absl::FailedPreconditionError(Why(path, err));
  }
  struct stat st {};
  if (fstatat(dfd, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !IsVrdmaNode(st)) {
    int err = errno ? errno : EEXIST;
    close(dfd);
    return absl::FailedPreconditionError(Why(path, err));
  }
  made_[leaf] = Made{st.st_dev, st.st_ino};
  close(dfd);
  if (absl::Status applied = Apply(name, policy); !applied.ok()) {
    Remove(name);
    return applied;
  }
  return path;
}

absl::Status DeviceNodes::Apply(std::string_view name, const AccessPolicy& policy) {
  auto it = made_.find(name);
  if (it == made_.end()) return absl::OkStatus();
  int dfd = OpenDir(dir_);
  if (dfd < 0) return absl::FailedPreconditionError(Why(dir_, errno));
  const std::string leaf(name);
  struct stat st {};
  absl::Status status = absl::OkStatus();
  if (fstatat(dfd, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || st.st_ino != it->second.ino ||
      st.st_dev != it->second.dev) {
    status = absl::NotFoundError(absl::StrCat(dir_, "/", leaf, " is no longer this vdev's node"));
  } else if (fchownat(dfd, leaf.c_str(), policy.owner, policy.group, AT_SYMLINK_NOFOLLOW) != 0 ||
             fchmodat(dfd, leaf.c_str(), policy.mode & 0777, 0) != 0) {
    status = absl::FailedPreconditionError(Why(absl::StrCat(dir_, "/", leaf), errno));
  }
  close(dfd);
  return status;
}

void DeviceNodes::Remove(std::string_view name) {
  auto it = made_.find(name);
  if (it == made_.end()) return;
  const Made made = it->second;
  const std::string leaf(name);
  made_.erase(it);
  int dfd = OpenDir(dir_);
  if (dfd < 0) return;
  struct stat st {};
  if (fstatat(dfd, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_ino == made.ino &&
      st.st_dev == made.dev) {
    (void)unlinkat(dfd, leaf.c_str(), 0);
  }
  close(dfd);
}

}  // namespace vrdma::vdev
