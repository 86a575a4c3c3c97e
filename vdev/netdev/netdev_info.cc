#include "vdev/netdev/netdev_info.h"

#include <ifaddrs.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace vrdma::vdev {

namespace {

// 802.1Q devices list their VLAN ID in /proc/net/vlan/<name> ("... VID: 100 ...").
void ReadVlan(NetdevInfo* info) {
  std::ifstream f("/proc/net/vlan/" + info->name);
  std::string word;
  while (f >> word) {
    if (word == "VID:" && f >> info->vlan_id) {
      info->has_vlan = true;
      return;
    }
  }
}

}  // namespace

bool NetdevSitsOn(std::string_view upper, std::string_view lower) {
  if (upper == lower) return true;
  if (upper.empty() || upper.find('/') != std::string_view::npos) return false;
  std::error_code ec;
  std::filesystem::directory_iterator it(absl::StrCat("/sys/class/net/", std::string(upper)), ec);
  for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::string entry = it->path().filename().string();
    if (entry.rfind("lower_", 0) == 0 && NetdevSitsOn(entry.substr(6), lower)) return true;
  }
  return false;
}

absl::StatusOr<NetdevInfo> ReadNetdev(std::string_view ifname) {
  std::string name(ifname);
  if (name.empty() || name.size() >= IFNAMSIZ) {
    return absl::InvalidArgumentError(absl::StrCat("invalid interface name '", name, "'"));
  }
  unsigned index = if_nametoindex(name.c_str());
  if (index == 0) {
    // Only the kernel's "no such device" is a fact about the interface; a failure to ask
    // (EMFILE, ENOBUFS …) says nothing about it (callers delete vdevs on NotFound).
    int err = errno;
    if (err == ENODEV || err == ENXIO) {
      return absl::NotFoundError(absl::StrCat("no interface named ", name));
    }
    return absl::UnavailableError(
        absl::StrCat("looking up interface ", name, ": ", std::strerror(err)));
  }
  NetdevInfo info;
  info.name = name;
  info.ifindex = static_cast<int>(index);
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return absl::ErrnoToStatus(errno, "getifaddrs");
  for (ifaddrs* a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr || name != a->ifa_name) continue;
    switch (a->ifa_addr->sa_family) {
      case AF_PACKET: {
        auto* ll = reinterpret_cast<sockaddr_ll*>(a->ifa_addr);
        if (ll->sll_halen == 6) std::memcpy(info.mac.data(), ll->sll_addr, 6);
        info.up = (a->ifa_flags & IFF_UP) && (a->ifa_flags & IFF_RUNNING);
        info.admin_up = a->ifa_flags & IFF_UP;
        break;
      }
      case AF_INET: {
        auto* in = reinterpret_cast<sockaddr_in*>(a->ifa_addr);
        std::array<uint8_t, 4> v4;
        std::memcpy(v4.data(), &in->sin_addr, 4);
        info.ipv4.push_back(v4);
        break;
      }
      case AF_INET6: {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(a->ifa_addr);
        driver::wire::Gid g;
        std::memcpy(g.data(), &in6->sin6_addr, 16);
        bool link_local = g[0] == 0xfe && (g[1] & 0xc0) == 0x80;
        if (!link_local) info.ipv6.push_back(g);
        break;
      }
      default:
        break;
    }
  }
  freeifaddrs(list);
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s >= 0) {
    ifreq req{};
    std::strncpy(req.ifr_name, name.c_str(), IFNAMSIZ - 1);
    if (ioctl(s, SIOCGIFMTU, &req) == 0) info.mtu = static_cast<uint32_t>(req.ifr_mtu);
    close(s);
  }
  ReadVlan(&info);
  return info;
}

absl::StatusOr<NetdevInfo> ReadNetdevIn(const Netns* netns, std::string_view ifname) {
  NetnsScope scope(netns);
  if (!scope.entered()) return absl::ErrnoToStatus(errno, "entering the interface's namespace");
  return ReadNetdev(ifname);
}

}  // namespace vrdma::vdev
