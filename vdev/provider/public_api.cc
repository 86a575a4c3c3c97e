// The public C API (include/vrdma/vrdma.h): the talk's calls for creating, provisioning
// and destroying virtual devices, as administration requests to vrdmad.
#include <cerrno>
#include <string>
#include <vector>

#include "include/vrdma/vrdma.h"
#include "vdev/protocol/admin_call.h"
#include "vdev/provider/provider.h"

namespace {

thread_local std::string t_last_error;

int Fail(int err, std::string message) {
  t_last_error = std::move(message);
  errno = err;
  return err;
}

// Runs an admin request on the daemon at `socket_path` (empty: the first one).
int RunAdmin(const std::vector<std::string>& words, const std::string& socket_path = "") {
  vrdma::proto::AdminReply reply;
  if (int err = vrdma::proto::CallAdmin(words, false, &reply, socket_path)) {
    return Fail(err, "cannot reach vrdmad at " +
                         (socket_path.empty() ? vrdma::proto::SocketPath() : socket_path));
  }
  if (reply.status) {
    while (!reply.text.empty() && reply.text.back() == '\n') reply.text.pop_back();
    return Fail(reply.status, std::move(reply.text));
  }
  t_last_error.clear();
  return 0;
}

const vrdma::proto::DeviceRecord* RecordOf(ibv_device* dev) {
  if (!vrdma::provider::IsVrdmaDevice(dev)) return nullptr;
  return &reinterpret_cast<vrdma::provider::VDevice*>(dev)->record;
}

bool IsOfType(ibv_device* dev, vrdma::proto::DeviceType type) {
  const vrdma::proto::DeviceRecord* rec = RecordOf(dev);
  return rec && rec->type == static_cast<uint32_t>(type);
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) enum ibv_device_type ibv_get_device_type(
    struct ibv_device* dev) {
  if (IsOfType(dev, vrdma::proto::DeviceType::kVirtual)) return IBV_DEVICE_TYPE_VIRTUAL;
  if (IsOfType(dev, vrdma::proto::DeviceType::kPhysical)) return IBV_DEVICE_TYPE_PHYSICAL;
  return IBV_DEVICE_TYPE_UNKNOWN;
}

__attribute__((visibility("default"))) int ibv_create_virtual_ibdev(struct ibv_device* pdev,
                                                                    const char* netdev_name,
                                                                    const char* new_ibdev_name) {
  if (!IsOfType(pdev, vrdma::proto::DeviceType::kPhysical)) {
    return Fail(EINVAL, "pdev is not a vrdma physical device");
  }
  if (!netdev_name || !new_ibdev_name) return Fail(EINVAL, "netdev and device names are needed");
  // The daemon that has the pdev creates the vdev.
  return RunAdmin(
      {"dev", "add", new_ibdev_name, "pdev", RecordOf(pdev)->name, "netdev", netdev_name},
      reinterpret_cast<vrdma::provider::VDevice*>(pdev)->socket_path);
}

__attribute__((visibility("default"))) int ibv_destroy_virtual_ibdev(
    const char* virtual_ibdev_name) {
  if (!virtual_ibdev_name) return Fail(EINVAL, "a device name is needed");
  return RunAdmin({"dev", "del", virtual_ibdev_name});
}

__attribute__((visibility("default"))) int ibv_provision_resources(
    struct ibv_device* vdev, const struct ibv_resource_config* resources) {
  if (!IsOfType(vdev, vrdma::proto::DeviceType::kVirtual)) {
    return Fail(EINVAL, "not a vrdma virtual device");
  }
  constexpr uint32_t kKnown = (IBV_RESOURCE_CONFIG_MR_BYTES << 1) - 1;
  if (!resources || !resources->mask || (resources->mask & ~kKnown)) {
    return Fail(EINVAL, "no resources, or unknown bits in the mask");
  }
  // Field order = the daemon's resource names (vrdmactl dev set).
  const struct {
    uint32_t bit;
    const char* name;
    uint64_t value;
  } fields[] = {
      {IBV_RESOURCE_CONFIG_QP, "qp", resources->max_qp},
      {IBV_RESOURCE_CONFIG_CQ, "cq", resources->max_cq},
      {IBV_RESOURCE_CONFIG_MR, "mr", resources->max_mr},
      {IBV_RESOURCE_CONFIG_PD, "pd", resources->max_pd},
      {IBV_RESOURCE_CONFIG_SRQ, "srq", resources->max_srq},
      {IBV_RESOURCE_CONFIG_AH, "ah", resources->max_ah},
      {IBV_RESOURCE_CONFIG_MR_BYTES, "mr_bytes", resources->max_mr_bytes},
  };
  std::vector<std::string> words = {"dev", "set", RecordOf(vdev)->name};
  for (const auto& f : fields) {
    if (!(resources->mask & f.bit)) continue;
    words.push_back(f.name);
    words.push_back(std::to_string(f.value));
  }
  return RunAdmin(words, reinterpret_cast<vrdma::provider::VDevice*>(vdev)->socket_path);
}

__attribute__((visibility("default"))) const char* vrdma_last_error(void) {
  return t_last_error.c_str();
}

}  // extern "C"
