// One administration request to the daemon (vrdmactl and the public C API): the
// command's words out, the daemon's status and text back. And the grammar of those
// words, shared by vrdmactl (which checks a command before it connects) and the daemon
// (which checks it again: the C API and any client may send words).
//
// Plain C++ and errno values, like the rest of the protocol library: the provider links it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vrdma::proto {

struct AdminReply {
  int status = 0;    // 0, or the errno the daemon refused the command with
  std::string text;  // what to print, or the daemon's message on failure
};

// Connects to the daemon (VRDMA_SOCKET or the default path), runs `words` and fills
// `out`. Returns 0, or the errno of reaching the daemon (then `out` is untouched).
int CallAdmin(const std::vector<std::string>& words, bool json, AdminReply* out,
              const std::string& socket_path = "");
// The same with the request's flags (kAdminJson, kAdminPretty) spelled out.
// `netns_fd`, when not -1, goes with the request (a `dev add ... netns PATH`'s namespace).
int CallAdminWithFlags(const std::vector<std::string>& words, uint32_t flags, AdminReply* out,
                       const std::string& socket_path = "", int netns_fd = -1);

// ---- the command grammar ---------------------------------------------------------------

// Every command, for usage messages (one per line, no trailing newline).
std::string AdminUsage();

// The rule a device name follows (the kernel's for ib devices), for messages.
inline constexpr const char* kDeviceNameRule =
    "a device name is 1 to 63 printable characters, without '/', '%' or whitespace, and not "
    "'.' or '..'";
// True when `name` follows kDeviceNameRule.
bool IsValidDeviceName(std::string_view name);

// A count or size with an optional binary suffix: K, M, G or T, each optionally followed
// by "iB" or "B" (1K = 1KiB = 1KB = 1024; 1G = 1073741824), or a plain "B". Returns 0, or
// EINVAL (not a number, negative) / ERANGE (above 2^64-1) with the reason in *error.
int ParseQuantity(std::string_view text, uint64_t* out, std::string* error);

enum class AdminOp {
  kPdevShow,
  kDevShow,
  kDevAdd,
  kDevDel,
  kDevSet,
  kResShow,  // per-vdev counts against quota, or (res_type set) one line per object
  kStatShow,
  kCgroupShow,  // limits per cgroup (name: a cgroup path, or empty: every one)
  kCgroupSet,
  kCgroupDel,
};

// A checked command. `link` commands are read as their `dev` equivalents.
struct AdminCommand {
  AdminOp op = AdminOp::kDevShow;
  std::string name;    // the device (pdev for kPdevShow); empty: every one
  std::string pdev;    // kDevAdd: empty when not given (the daemon picks one)
  std::string netdev;  // kDevAdd
  // kDevAdd: the network namespace of `netdev` when not the daemon's (a path such as
  // /run/netns/NAME or /proc/PID/ns/net). The caller opens it and passes the descriptor
  // with the request (CallAdminWithFlags' netns_fd); the daemon uses the descriptor.
  std::string netns;
  std::vector<std::pair<std::string, uint64_t>> quotas;  // kDevSet: resource, value
  // kDevSet: the access policy (owner, group: a name or number; mode: octal), as for
  // /dev/infiniband/uverbsN. Empty / unset: unchanged.
  std::string owner;
  std::string group;
  int32_t mode = -1;
  std::string roce_mode;  // kDevSet: "v1" or "v2" (RDMA-CM's GID type); empty: unchanged
  std::string spoofchk;   // kDevSet: "on" or "off" (raw packet QPs' source check); empty: unchanged
  std::string res_type;   // kResShow: "" (counts) or qp, cq, mr, pd, srq, ah
  // kCgroup*: `name` is the cgroup path, `dev` the vdev (kCgroupDel: empty, every one),
  // `cgroup_limits` the limits set (hca_handle, hca_object; value "N" or "max").
  std::string dev;
  std::vector<std::pair<std::string, std::string>> cgroup_limits;
};

enum class AdminParse {
  kOk,
  kHelp,      // the user asked for the usage
  kUsage,     // not a command: unknown object or verb, wrong arguments
  kBadValue,  // a command with a value that is refused (a number, a name)
};
struct AdminParseResult {
  AdminParse result = AdminParse::kOk;
  std::string error;  // for kUsage and kBadValue: what is wrong (no usage text)
};

// The resource names `dev set` takes, in protocol order.
inline constexpr const char* kQuotaNames[] = {"qp",  "cq", "mr",       "pd",
                                              "srq", "ah", "mr_bytes", "ring_bytes"};
// The limits `cgroup set` takes, as the kernel's rdma.max names them.
inline constexpr const char* kCgroupLimitNames[] = {"hca_handle", "hca_object"};
// The object kinds `res show` lists.
inline constexpr const char* kResTypes[] = {"qp", "cq", "mr", "pd", "srq", "ah", "cm_id"};

AdminParseResult ParseAdminCommand(const std::vector<std::string>& words, AdminCommand* out);
// The canonical words of a command (what vrdmactl sends); parse(words(c)) == c.
std::vector<std::string> AdminCommandWords(const AdminCommand& cmd);

}  // namespace vrdma::proto
