// The vrdma CNI plugin's commands (the Container Network Interface specification, 1.0.0:
// github.com/containernetworking/cni SPEC.md): ADD binds a vdev to the container's
// interface in the container's network namespace, DEL removes it, CHECK checks it is
// there as ADD left it, VERSION says which versions it speaks. Chained after an interface
// plugin (macvlan, ipvlan, veth) it passes the previous result on; on its own it binds to
// an interface the container already has.
//
// The vdev is named PREFIX + the container ID's first 12 characters + "-" + the interface
// ("vrdma-3f2a9c1b7d4e-eth0"), so DEL and CHECK find it from what the runtime passes
// again. Network configuration keys of its own: "socket" (vrdmad's control socket; default
// VRDMA_SOCKET, then /run/vrdma/vrdmad.sock), "pdev" (default: vrdmad's choice),
// "name_prefix" (default "vrdma-").
#pragma once

#include <map>
#include <string>

namespace vrdma::cni {

struct Outcome {
  int exit_code = 0;   // 0, or 1 with an error result on stdout
  std::string output;  // stdout: the result, the version list or the error (JSON)
};

// One invocation: the CNI_* variables of `env`, the network configuration on stdin.
Outcome Run(const std::map<std::string, std::string>& env, const std::string& stdin_text);

// The vdev's name for a container and interface (see above).
std::string DeviceName(const std::string& prefix, const std::string& container_id,
                       const std::string& ifname);

}  // namespace vrdma::cni
