// vrdma: a CNI plugin (apps/vrdma-cni/cni.h). Called by a container runtime with CNI_*
// variables and the network configuration on stdin; prints the result, or an error
// result and exits 1.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <map>
#include <string>

#include "apps/vrdma-cni/cni.h"

extern char** environ;

int main() {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string kv(*e);
    size_t eq = kv.find('=');
    if (eq != std::string::npos && kv.rfind("CNI_", 0) == 0)
      env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  vrdma::cni::Outcome out = vrdma::cni::Run(env, input);
  std::fputs(out.output.c_str(), stdout);
  return out.exit_code;
}
