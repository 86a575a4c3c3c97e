// Attribute texts as the kernel's drivers/infiniband/core/sysfs.c writes them.
#include "vdev/provider/sysfs_format.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>

namespace vrdma::provider::sysfs {

std::string_view ClassPath(const char* path) {
  static constexpr char kBase[] = "/sys/class/infiniband";
  if (!path || std::strncmp(path, kBase, sizeof kBase - 1) != 0) return {};
  std::string_view rest(path + sizeof("/sys/class/") - 1);
  for (std::string_view cls : {"infiniband_verbs", "infiniband_mad", "infiniband"}) {
    if (rest.substr(0, cls.size()) == cls &&
        (rest.size() == cls.size() || rest[cls.size()] == '/')) {
      return rest;
    }
  }
  return {};
}

std::string Guid(uint64_t guid_be) {
  const uint64_t g = __builtin_bswap64(guid_be);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04x:%04x:%04x:%04x\n", static_cast<unsigned>(g >> 48),
                static_cast<unsigned>((g >> 32) & 0xffff),
                static_cast<unsigned>((g >> 16) & 0xffff), static_cast<unsigned>(g & 0xffff));
  return buf;
}

std::string Gid(const uint8_t gid[16]) {
  std::string out;
  char buf[8];
  for (int i = 0; i < 16; i += 2) {
    std::snprintf(buf, sizeof buf, "%s%02x%02x", i ? ":" : "", gid[i], gid[i + 1]);
    out += buf;
  }
  return out + "\n";
}

std::string GidType(uint32_t ibv_gid_type) {
  return ibv_gid_type == IBV_GID_TYPE_ROCE_V2 ? "RoCE v2\n" : "IB/RoCE v1\n";
}

std::string PortState(uint32_t state) {
  static const char* const kNames[] = {"NOP", "DOWN", "INIT", "ARMED", "ACTIVE", "ACTIVE_DEFER"};
  const char* name = state < 6 ? kNames[state] : "UNKNOWN";
  return std::to_string(state) + ": " + name + "\n";
}

std::string PhysState(uint32_t phys_state) {
  static const char* const kNames[] = {
      "<unknown>",         "Sleep",   "Polling", "Disabled", "PortConfigurationTraining", "LinkUp",
      "LinkErrorRecovery", "Phy Test"};
  const char* name = phys_state < 8 ? kNames[phys_state] : "<unknown>";
  return std::to_string(phys_state) + ": " + name + "\n";
}

std::string Rate(uint8_t active_speed, uint8_t active_width) {
  // The kernel's rate_show(): the lane rate in tenths of Gb/s times the width.
  int rate = 25;
  const char* speed = " SDR";
  switch (active_speed) {
    case 2:
      rate = 50, speed = " DDR";
      break;
    case 4:
      rate = 100, speed = " QDR";
      break;
    case 8:
      rate = 100, speed = " FDR10";
      break;
    case 16:
      rate = 140, speed = " FDR";
      break;
    case 32:
      rate = 250, speed = " EDR";
      break;
    case 64:
      rate = 500, speed = " HDR";
      break;
    case 128:
      rate = 1000, speed = " NDR";
      break;
    default:
      break;
  }
  int width = 1;
  switch (active_width) {
    case 2:
      width = 4;
      break;
    case 4:
      width = 8;
      break;
    case 8:
      width = 12;
      break;
    case 16:
      width = 2;
      break;
    default:
      break;
  }
  rate *= width;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%d%s Gb/sec (%dX%s)\n", rate / 10, rate % 10 ? ".5" : "", width,
                speed);
  return buf;
}

std::string LinkLayer(uint8_t link_layer) {
  return link_layer == IBV_LINK_LAYER_ETHERNET ? "Ethernet\n" : "InfiniBand\n";
}

std::string NodeType() { return "1: CA\n"; }

}  // namespace vrdma::provider::sysfs
