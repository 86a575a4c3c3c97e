// The daemon's physical and virtual devices: names, interfaces, GID tables, quotas.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "vdev/pdev.h"
#include "vdev/vdev.h"

namespace vrdma {

class Registry {
 public:
  absl::Status AddPdev(std::unique_ptr<Pdev> pdev);
  Pdev* FindPdev(std::string_view name) const;
  const std::vector<std::unique_ptr<Pdev>>& pdevs() const { return pdevs_; }

  // Creates a vdev on `pdev` bound to interface `netdev`: its GID table is built from
  // the interface's MAC and addresses, its quotas default to the pdev's limits.
  absl::StatusOr<Vdev*> AddVdev(std::string_view name, std::string_view pdev,
                                std::string_view netdev);
  // Removes a vdev; the caller has closed its clients' contexts.
  absl::Status DelVdev(std::string_view name);
  Vdev* FindVdev(std::string_view name) const;
  Vdev* FindVdevByIfindex(int ifindex) const;
  const std::map<std::string, std::unique_ptr<Vdev>, std::less<>>& vdevs() const { return vdevs_; }

  // Re-reads the interface and rewrites the vdev's GID table. NotFound when the
  // interface is gone.
  absl::Status RefreshGids(Vdev& vdev);
  // Sets quotas; refuses (changing nothing) a value below what is in use or above the pdev.
  absl::Status SetQuotas(Vdev& vdev, const std::vector<std::pair<Resource, uint64_t>>& values);
  static ResourceCounts PdevLimits(const Pdev& pdev);

  // The Ethernet address a GID of a vdev on `pdev` answers to (the internal switch's
  // neighbour table); a MAC-derived link-local GID maps back to its MAC.
  wire::MacAddr ResolveMac(const Pdev& pdev, const wire::Gid& dgid) const;

 private:
  absl::Status WriteGids(Vdev& vdev, const std::vector<GidEntry>& gids);

  std::vector<std::unique_ptr<Pdev>> pdevs_;
  std::map<std::string, std::unique_ptr<Vdev>, std::less<>> vdevs_;
  uint32_t next_id_ = 1;
};

// Checks a device name as the kernel checks ib device names (1..63 printable, no '/',
// no whitespace).
bool ValidDeviceName(std::string_view name);

}  // namespace vrdma
