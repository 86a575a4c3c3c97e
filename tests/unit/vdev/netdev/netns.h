// Tests that build interfaces run in a network namespace of their own: the whole test
// process moves into a fresh one (root), so nothing of the machine is touched.
#pragma once

#include <sched.h>

#include <cstdlib>

namespace vrdma::testing {

// True when the process is in a private network namespace with veth vt0/vt1 up,
// vt0 = 02:11:22:33:44:55, 10.9.8.7/24, 2001:db8::7/64; vt1 = 10.9.8.8/24.
inline bool PrivateNetns() {
  static const bool ok = [] {
    if (unshare(CLONE_NEWNET) != 0) return false;
    return std::system(
               "ip link set lo up && ip link add vt0 type veth peer name vt1 && "
               "ip link set vt0 address 02:11:22:33:44:55 mtu 1500 up && ip link set vt1 up && "
               "ip addr add 10.9.8.7/24 dev vt0 && ip addr add 2001:db8::7/64 dev vt0 nodad && "
               "ip addr add 10.9.8.8/24 dev vt1") == 0;
  }();
  return ok;
}

}  // namespace vrdma::testing
