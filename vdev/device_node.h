// The character node of each vdev under /dev/infiniband: where RDMA software that does not
// stop at libibverbs looks for a device (UCX, for one, takes a device only when
// /dev/infiniband/<ibv_device.dev_name> is a character device it may read and write).
//
// The node is char 0:0, the null device number: no driver can own major 0, so opening it
// is ENXIO on any kernel, and a tenant given the node gains no kernel device, even on a host
// whose kernel has RDMA (its uverbs nodes are 231:192 and up). Its owner, group and mode
// are the vdev's access policy (access.h), as udev gives a uverbs node its permissions; the
// daemon enforces the policy itself when a client opens the vdev.
//
// A name already taken by anything but a char 0:0 node (a kernel device's node, a file) is
// left alone: the vdev works, without a node. A char 0:0 node of that name is replaced: it is
// a vrdmad's, left by one that died or held by another daemon with a vdev of the same name
// (librdmacm and libibverbs show only one of them anyway). Only a node this object made, the
// same inode, is removed.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "vdev/access.h"

namespace vrdma::vdev {

class DeviceNodes {
 public:
  static constexpr const char* kDefaultDir = "/dev/infiniband";

  // `dir` empty: no nodes.
  explicit DeviceNodes(std::string dir = "") : dir_(std::move(dir)) {}
  ~DeviceNodes();  // removes the nodes it made
  DeviceNodes(const DeviceNodes&) = delete;
  DeviceNodes& operator=(const DeviceNodes&) = delete;

  const std::string& dir() const { return dir_; }
  // Sets the directory; only while no node exists.
  void set_dir(std::string dir) { dir_ = std::move(dir); }

  // Makes DIR/name with `policy` (creating DIR, mode 0755, if missing). The path, or an
  // error saying why there is none.
  absl::StatusOr<std::string> Create(std::string_view name, const AccessPolicy& policy);
  // Gives the node `name` made here the policy's owner, group and mode; OK when there is none.
  absl::Status Apply(std::string_view name, const AccessPolicy& policy);
  // Removes the node `name` if it is still the one made here.
  void Remove(std::string_view name);

 private:
  struct Made {
    dev_t dev;
    ino_t ino;
  };
  std::string dir_;
  std::map<std::string, Made, std::less<>> made_;
};

}  // namespace vrdma::vdev
