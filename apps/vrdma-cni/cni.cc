#include "apps/vrdma-cni/cni.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "vdev/protocol/admin_call.h"
#include "vdev/protocol/channel.h"
#include "vdev/protocol/protocol.h"

namespace vrdma::cni {

namespace {

using nlohmann::json;

const char* const kVersions[] = {"0.3.0", "0.3.1", "0.4.0", "1.0.0"};

// The specification's error codes (SPEC.md, "Error"); 100 and up are the plugin's.
enum Code {
  kIncompatibleVersion = 1,
  kInvalidEnvironment = 4,
  kDecodeFailure = 6,
  kInvalidConfig = 7,
  kTryAgainLater = 11,
  kDaemonRefused = 100,
  kNotAsAdded = 101,
};

Outcome Error(const std::string& version, int code, const std::string& msg,
              const std::string& details = "") {
  json e = {{"cniVersion", version.empty() ? "1.0.0" : version}, {"code", code}, {"msg", msg}};
  if (!details.empty()) e["details"] = details;
  return Outcome{1, e.dump() + "\n"};
}

std::string Get(const std::map<std::string, std::string>& env, const char* key) {
  auto it = env.find(key);
  return it == env.end() ? "" : it->second;
}

struct Call {
  int err = 0;  // reaching the daemon
  proto::AdminReply reply;
};
Call Admin(const std::string& socket, const std::vector<std::string>& words, int netns_fd = -1) {
  Call c;
  c.err = proto::CallAdminWithFlags(words, proto::kAdminJson, &c.reply, socket, netns_fd);
  return c;
}

// The vdev as `dev show -j` describes it, or null when there is none.
json Describe(const std::string& socket, const std::string& name, std::string* error) {
  Call c = Admin(socket, {"dev", "show", name});
  if (c.err) {
    *error = std::string("cannot reach vrdmad: ") + std::strerror(c.err);
    return nullptr;
  }
  if (c.reply.status == ENODEV) return nullptr;
  if (c.reply.status) {
    *error = c.reply.text;
    return nullptr;
  }
  json j = json::parse(c.reply.text, nullptr, false);
  if (j.is_array() && !j.empty()) j = j[0];
  return j.is_object() ? j : json(nullptr);
}

// Whether vdev `j` is bound to `ifname` in the namespace at `netns_path`.
bool AsAdded(const json& j, const std::string& ifname, const std::string& netns_path) {
  struct stat st;
  if (stat(netns_path.c_str(), &st) != 0) return false;
  return j.value("netdev", "") == ifname && j.contains("netns") &&
         j["netns"].is_number_unsigned() && j["netns"].get<uint64_t>() == st.st_ino;
}

}  // namespace

std::string DeviceName(const std::string& prefix, const std::string& container_id,
                       const std::string& ifname) {
  return prefix + container_id.substr(0, 12) + "-" + ifname;
}

Outcome Run(const std::map<std::string, std::string>& env, const std::string& stdin_text) {
  const std::string command = Get(env, "CNI_COMMAND");
  json conf = json::parse(stdin_text, nullptr, false);
  if (command == "VERSION") {
    json v = {{"cniVersion", "1.0.0"}, {"supportedVersions", kVersions}};
    return Outcome{0, v.dump() + "\n"};
  }
  if (conf.is_discarded() || !conf.is_object()) {
    return Error("", kDecodeFailure, "the network configuration is not a JSON object");
  }
  const std::string version = conf.value("cniVersion", "");
  bool known = false;
  for (const char* v : kVersions) known |= version == v;
  if (!known) {
    return Error(version, kIncompatibleVersion, "unsupported cniVersion '" + version + "'",
                 "this plugin speaks 0.3.0, 0.3.1, 0.4.0 and 1.0.0");
  }
  const std::string id = Get(env, "CNI_CONTAINERID");
  const std::string ifname = Get(env, "CNI_IFNAME");
  const std::string netns = Get(env, "CNI_NETNS");
  if (command != "ADD" && command != "DEL" && command != "CHECK") {
    return Error(version, kInvalidEnvironment, "unknown CNI_COMMAND '" + command + "'");
  }
  if (id.empty() || ifname.empty()) {
    return Error(version, kInvalidEnvironment, "CNI_CONTAINERID and CNI_IFNAME are required");
  }
  if (!conf.value("socket", json("")).is_string() || !conf.value("pdev", json("")).is_string() ||
      !conf.value("name_prefix", json("")).is_string()) {
    return Error(version, kInvalidConfig, "socket, pdev and name_prefix are strings");
  }
  const std::string socket = conf.value("socket", proto::SocketPath());
  const std::string name = DeviceName(conf.value("name_prefix", "vrdma-"), id, ifname);
  if (!proto::IsValidDeviceName(name)) {
    return Error(version, kInvalidConfig, "vdev name '" + name + "' is not a device name",
                 proto::kDeviceNameRule);
  }

  if (command == "DEL") {
    // DEL succeeds for what is already gone (SPEC.md: DEL is idempotent).
    Call c = Admin(socket, {"dev", "del", name});
    if (c.err) return Error(version, kTryAgainLater, "cannot reach vrdmad", std::strerror(c.err));
    if (c.reply.status && c.reply.status != ENODEV) {
      return Error(version, kDaemonRefused, "vrdmad refused dev del " + name, c.reply.text);
    }
    return Outcome{0, ""};
  }
  if (netns.empty()) return Error(version, kInvalidEnvironment, "CNI_NETNS is required");

  if (command == "CHECK") {
    std::string error;
    json j = Describe(socket, name, &error);
    if (!error.empty()) return Error(version, kTryAgainLater, "cannot check " + name, error);
    if (j.is_null()) return Error(version, kNotAsAdded, "vdev " + name + " does not exist");
    if (!AsAdded(j, ifname, netns)) {
      return Error(version, kNotAsAdded, "vdev " + name + " is not on " + ifname + " of " + netns);
    }
    return Outcome{0, ""};
  }

  // ADD. Again for a vdev already as asked (a runtime retrying) is success.
  std::string error;
  json existing = Describe(socket, name, &error);
  if (!error.empty()) return Error(version, kTryAgainLater, "cannot reach vrdmad", error);
  if (existing.is_null()) {
    int fd = open(netns.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return Error(version, kInvalidEnvironment, "CNI_NETNS " + netns, std::strerror(errno));
    std::vector<std::string> words = {"dev", "add", name};
    if (!conf.value("pdev", "").empty()) words.insert(words.end(), {"pdev", conf["pdev"]});
    words.insert(words.end(), {"netdev", ifname, "netns", netns});
    Call c = Admin(socket, words, fd);
    close(fd);
    if (c.err) return Error(version, kTryAgainLater, "cannot reach vrdmad", std::strerror(c.err));
    if (c.reply.status) {
      return Error(version, kDaemonRefused, "vrdmad refused dev add " + name, c.reply.text);
    }
  } else if (!AsAdded(existing, ifname, netns)) {
    return Error(version, kNotAsAdded, "vdev " + name + " exists on another interface");
  }
  // The result: the previous plugin's, passed on; on its own, the interface it used.
  json result = conf.contains("prevResult") && conf["prevResult"].is_object()
                    ? conf["prevResult"]
                    : json{{"interfaces", json::array({{{"name", ifname}, {"sandbox", netns}}})}};
  result["cniVersion"] = version;
  return Outcome{0, result.dump() + "\n"};
}

}  // namespace vrdma::cni
