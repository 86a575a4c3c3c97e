#include "vdev/protocol/admin_call.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "vdev/protocol/channel.h"

namespace vrdma::proto {

namespace {

// An answer too long for a message: the text in the memfd the daemon passed (protocol.h).
int ReadTextMemfd(int fd, std::string* out) {
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || st.st_size < 0) {
    if (fd >= 0) close(fd);
    return EPROTO;
  }
  out->resize(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < out->size()) {
    ssize_t n = pread(fd, out->data() + done, out->size() - done, static_cast<off_t>(done));
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  close(fd);
  out->resize(done);
  return 0;
}

}  // namespace

int CallAdminWithFlags(const std::vector<std::string>& words, uint32_t flags, AdminReply* out,
                       const std::string& socket_path, int netns_fd) {
  std::vector<char> req(sizeof(AdminRequest));
  AdminRequest head{flags, static_cast<uint32_t>(words.size())};
  std::memcpy(req.data(), &head, sizeof head);
  for (const std::string& w : words) req.insert(req.end(), w.c_str(), w.c_str() + w.size() + 1);
  int sock = ConnectToSocket(socket_path.empty() ? SocketPath() : socket_path);
  if (sock < 0) return -sock;
  Message reply;
  int err = Call(sock, Op::kAdmin, req.data(), req.size(), netns_fd >= 0 ? &netns_fd : nullptr,
                 netns_fd >= 0 ? 1 : 0, &reply);
  close(sock);
  if (err) return err;
  out->status = reply.header.status;
  if (reply.fd_count() > 0) return ReadTextMemfd(reply.TakeFd(0), &out->text);
  const char* text = reinterpret_cast<const char*>(reply.payload.data());
  out->text.assign(text, strnlen(text, reply.payload.size()));
  return 0;
}

int CallAdmin(const std::vector<std::string>& words, bool json, AdminReply* out,
              const std::string& socket_path) {
  return CallAdminWithFlags(words, json ? kAdminJson : 0u, out, socket_path);
}

// ---- grammar -----------------------------------------------------------------------------

std::string AdminUsage() {
  return "usage: vrdmactl [-j [-p]] [-s SOCKET] [-d DEV] OBJECT [COMMAND [ARGS]]\n"
         "  pdev show [PDEV]\n"
         "  dev show [DEV]\n"
         "  dev add DEV [pdev PDEV] netdev IFACE [netns PATH]   (PATH: /run/netns/NAME, ...)\n"
         "  dev del DEV\n"
         "  dev set DEV {qp|cq|mr|pd|srq|ah|mr_bytes|ring_bytes} N [...]   (N: 16, 4K, 1G, ...)\n"
         "  dev set DEV [owner USER] [group GROUP] [mode OCTAL]   (who may open it)\n"
         "  dev set DEV roce_mode v1|v2   (the RoCE version of the connections RDMA-CM starts)\n"
         "  dev set DEV spoofchk on|off   (raw packet QPs send only the interface's MAC)\n"
         "  link show [DEV]\n"
         "  link add DEV type vrdma netdev IFACE [pdev PDEV]\n"
         "  link del DEV\n"
         "  res show [DEV]                                  (use against quota)\n"
         "  res show {qp|cq|mr|pd|srq|ah|cm_id} [dev DEV]   (one line per object)\n"
         "  stat show [DEV]\n"
         "  cgroup show [PATH]                              (limits per cgroup, as rdma.max)\n"
         "  cgroup set PATH dev DEV [hca_handle N|max] [hca_object N|max]\n"
         "  cgroup del PATH [dev DEV]\n"
         "  pci bind BDF [--force] | pci unbind BDF | pci show BDF   (local, no daemon)\n"
         "options: -j/--json  JSON output; -p/--pretty  indented JSON (with -j);\n"
         "         -s/--socket PATH  vrdmad's socket (default $VRDMA_SOCKET or "
         "/run/vrdma/vrdmad.sock);\n"
         "         -d/--device DEV  the device a show command is about; -h/--help";
}

bool IsValidDeviceName(std::string_view name) {
  if (name.empty() || name.size() >= kNameLen) return false;
  // A name is a file's too: the device node, the sysfs view's directory.
  if (name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return c > ' ' && c < 127 && c != '/' && c != '%'; });
}

int ParseQuantity(std::string_view text, uint64_t* out, std::string* error) {
  auto bad = [&](int err, std::string_view why) {
    *error = std::string(why);
    return err;
  };
  constexpr std::string_view kExpected =
      "expected a whole number with an optional K, M, G or T suffix (1G = 1073741824)";
  if (text.empty()) return bad(EINVAL, kExpected);
  if (text[0] == '-') return bad(EINVAL, "negative values are not allowed");
  size_t i = 0;
  uint64_t value = 0;
  bool overflow = false;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (value > (UINT64_MAX - digit) / 10) overflow = true;
    value = value * 10 + digit;
    ++i;
  }
  if (i == 0) return bad(EINVAL, kExpected);
  std::string_view suffix = text.substr(i);
  unsigned shift = 0;
  if (!suffix.empty()) {
    switch (suffix[0]) {
      case 'k':
      case 'K':
        shift = 10;
        break;
      case 'm':
      case 'M':
        shift = 20;
        break;
      case 'g':
      case 'G':
        shift = 30;
        break;
      case 't':
      case 'T':
        shift = 40;
        break;
      case 'b':
      case 'B':
        break;
      default:
        return bad(EINVAL, kExpected);
    }
    std::string_view rest = suffix.substr(1);
    bool unit_only = shift == 0;  // "B" alone
    if (!(rest.empty() ||
          (!unit_only && (rest == "B" || rest == "iB" || rest == "ib" || rest == "b")))) {
      return bad(EINVAL, kExpected);
    }
  }
  if (overflow || (shift && value > (UINT64_MAX >> shift))) {
    return bad(ERANGE, "too large (the largest is 18446744073709551615, 16E)");
  }
  *out = value << shift;
  return 0;
}

namespace {

AdminParseResult Usage(std::string error) { return {AdminParse::kUsage, std::move(error)}; }
AdminParseResult BadValue(std::string error) { return {AdminParse::kBadValue, std::move(error)}; }

bool IsHelp(const std::string& w) { return w == "help" || w == "-h" || w == "--help"; }

template <size_t N>
bool OneOf(const std::string& w, const char* const (&set)[N]) {
  return std::any_of(std::begin(set), std::end(set), [&](const char* s) { return w == s; });
}

AdminParseResult CheckName(const std::string& name) {
  if (IsValidDeviceName(name)) return {};
  return BadValue("invalid device name '" + name + "': " + kDeviceNameRule);
}

// `link` names a port as DEV/PORT (iproute2's rdma); a vdev has port 1 only.
AdminParseResult LinkName(std::string* name) {
  size_t slash = name->find('/');
  if (slash == std::string::npos) return {};
  if (name->substr(slash + 1) != "1") {
    return BadValue("no port '" + name->substr(slash + 1) + "' on " + name->substr(0, slash) +
                    ": a vrdma device has port 1 only");
  }
  name->resize(slash);
  return {};
}

// dev add NAME [pdev PDEV] netdev IFACE  /  link add NAME type vrdma netdev IFACE [pdev PDEV]
AdminParseResult ParseAdd(const std::string& object, const std::vector<std::string>& w,
                          AdminCommand* out) {
  const std::string usage = object == "link"
                                ? "usage: link add DEV type vrdma netdev IFACE [pdev PDEV]"
                                : "usage: dev add DEV [pdev PDEV] netdev IFACE [netns PATH]";
  if (w.size() < 3) return Usage(usage);
  out->op = AdminOp::kDevAdd;
  out->name = w[2];
  bool have_type = false;
  for (size_t i = 3; i < w.size(); i += 2) {
    if (i + 1 >= w.size()) return Usage("'" + w[i] + "' needs a value");
    const std::string& key = w[i];
    const std::string& value = w[i + 1];
    std::string* slot = key == "pdev"     ? &out->pdev
                        : key == "netdev" ? &out->netdev
                        : key == "netns"  ? &out->netns
                                          : nullptr;
    if (key == "type") {
      if (have_type) return Usage("type given twice");
      if (value != "vrdma") {
        return BadValue("link type '" + value + "' is not supported: vrdmad adds type vrdma");
      }
      have_type = true;
      continue;
    }
    if (!slot) return Usage("unknown keyword '" + key + "' (pdev, netdev, netns, type)");
    if (!slot->empty()) return Usage(key + " given twice");
    if (value.empty()) return BadValue("empty " + key + " name");
    *slot = value;
  }
  if (object == "link" && !have_type) return Usage("link add needs 'type vrdma'");
  if (out->netdev.empty()) return Usage(object + " add: netdev IFACE is missing");
  return CheckName(out->name);
}

AdminParseResult ParseSet(const std::vector<std::string>& w, AdminCommand* out) {
  const std::string usage =
      "usage: dev set DEV {qp|cq|mr|pd|srq|ah|mr_bytes|ring_bytes} N [...] [owner USER] "
      "[group GROUP] [mode OCTAL] [roce_mode v1|v2] [spoofchk on|off]";
  if (w.size() < 5 || (w.size() - 3) % 2 != 0) return Usage(usage);
  out->op = AdminOp::kDevSet;
  out->name = w[2];
  for (size_t i = 3; i < w.size(); i += 2) {
    if (w[i] == "owner" || w[i] == "group") {
      std::string& slot = w[i] == "owner" ? out->owner : out->group;
      if (!slot.empty()) return BadValue(w[i] + " given twice");
      if (w[i + 1].empty() || w[i + 1].size() > 64) return BadValue("bad " + w[i] + " name");
      slot = w[i + 1];
      continue;
    }
    if (w[i] == "roce_mode") {
      if (!out->roce_mode.empty()) return BadValue("roce_mode given twice");
      if (w[i + 1] != "v1" && w[i + 1] != "v2") {
        return BadValue("bad roce_mode '" + w[i + 1] + "': v1 or v2");
      }
      out->roce_mode = w[i + 1];
      continue;
    }
    if (w[i] == "spoofchk") {
      if (!out->spoofchk.empty()) return BadValue("spoofchk given twice");
      if (w[i + 1] != "on" && w[i + 1] != "off") {
        return BadValue("bad spoofchk '" + w[i + 1] + "': on or off");
      }
      out->spoofchk = w[i + 1];
      continue;
    }
    if (w[i] == "mode") {
      if (out->mode >= 0) return BadValue("mode given twice");
      const std::string& m = w[i + 1];
      char* end = nullptr;
      unsigned long v = std::strtoul(m.c_str(), &end, 8);
      if (m.empty() || *end || v > 0777) {
        return BadValue("bad mode '" + m + "': octal permission bits, 0 to 0777");
      }
      out->mode = static_cast<int32_t>(v);
      continue;
    }
    if (!OneOf(w[i], kQuotaNames)) {
      return Usage("unknown resource '" + w[i] +
                   "' (qp, cq, mr, pd, srq, ah, mr_bytes, ring_bytes)");
    }
    for (const auto& [prev, unused] : out->quotas) {
      if (prev == w[i]) return BadValue(w[i] + " given twice");
    }
    uint64_t n = 0;
    std::string error;
    if (ParseQuantity(w[i + 1], &n, &error)) {
      return BadValue("bad value '" + w[i + 1] + "' for " + w[i] + ": " + error);
    }
    out->quotas.emplace_back(w[i], n);
  }
  return {};
}

// cgroup show [PATH] / cgroup set PATH dev DEV [hca_handle N|max] [hca_object N|max] /
// cgroup del PATH [dev DEV]. The path is checked by the daemon (cgroup_limits.h).
AdminParseResult ParseCgroup(const std::string& verb, const std::vector<std::string>& w,
                             AdminCommand* out) {
  if (verb == "show" || verb == "list") {
    if (w.size() > 3) return Usage("usage: cgroup show [PATH]");
    out->op = AdminOp::kCgroupShow;
    if (w.size() == 3) out->name = w[2];
    return {};
  }
  if (verb == "del" || verb == "delete") {
    if (w.size() != 3 && !(w.size() == 5 && w[3] == "dev")) {
      return Usage("usage: cgroup del PATH [dev DEV]");
    }
    out->op = AdminOp::kCgroupDel;
    out->name = w[2];
    if (w.size() == 5) out->dev = w[4];
    return {};
  }
  if (verb != "set") return Usage("'" + verb + "' is not a cgroup command (show, set, del)");
  const std::string usage = "usage: cgroup set PATH dev DEV [hca_handle N|max] [hca_object N|max]";
  if (w.size() < 7 || (w.size() - 3) % 2 != 0 || w[3] != "dev") return Usage(usage);
  out->op = AdminOp::kCgroupSet;
  out->name = w[2];
  out->dev = w[4];
  for (size_t i = 5; i < w.size(); i += 2) {
    if (!OneOf(w[i], kCgroupLimitNames)) {
      return Usage("unknown cgroup limit '" + w[i] + "' (hca_handle, hca_object)");
    }
    for (const auto& [prev, unused] : out->cgroup_limits) {
      if (prev == w[i]) return BadValue(w[i] + " given twice");
    }
    const std::string& v = w[i + 1];
    bool number = !v.empty() && v.size() <= 19 &&
                  std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (v != "max" && !number) {
      return BadValue("bad value '" + v + "' for " + w[i] + ": a whole number or 'max'");
    }
    out->cgroup_limits.emplace_back(w[i], v);
  }
  return CheckName(out->dev);
}

AdminParseResult ParseResShow(const std::vector<std::string>& w, AdminCommand* out) {
  const std::string usage = "usage: res show [DEV] | res show {qp|cq|mr|pd|srq|ah|cm_id} [dev DEV]";
  out->op = AdminOp::kResShow;
  size_t i = 2;
  if (i < w.size() && OneOf(w[i], kResTypes)) out->res_type = w[i++];
  if (i < w.size() && w[i] == "dev") {
    if (i + 2 != w.size()) return Usage(usage);
    out->name = w[i + 1];
    return {};
  }
  if (i >= w.size()) return {};  // "res" alone is "res show"
  if (out->res_type.empty() && i + 1 == w.size()) {
    out->name = w[i];
    return {};
  }
  return Usage(usage);
}

}  // namespace

AdminParseResult ParseAdminCommand(const std::vector<std::string>& w, AdminCommand* out) {
  *out = AdminCommand{};
  if (w.empty()) return Usage("no command given");
  const std::string& object = w[0];
  if (IsHelp(object)) return {AdminParse::kHelp, ""};
  const std::string verb = w.size() > 1 ? w[1] : "show";
  if (IsHelp(verb)) return {AdminParse::kHelp, ""};
  if (object == "pdev") {
    if (verb != "show") return Usage("'" + verb + "' is not a pdev command (show)");
    if (w.size() > 3) return Usage("usage: pdev show [PDEV]");
    out->op = AdminOp::kPdevShow;
    if (w.size() == 3) out->name = w[2];
    return {};
  }
  if (object == "dev" || object == "link") {
    if (verb == "show" || verb == "list") {
      if (w.size() > 3) return Usage("usage: " + object + " show [DEV]");
      out->op = AdminOp::kDevShow;
      if (w.size() == 3) out->name = w[2];
      return object == "link" ? LinkName(&out->name) : AdminParseResult{};
    }
    if (verb == "add") return ParseAdd(object, w, out);
    if (verb == "del" || verb == "delete") {
      if (w.size() != 3) return Usage("usage: " + object + " del DEV");
      out->op = AdminOp::kDevDel;
      out->name = w[2];
      return object == "link" ? LinkName(&out->name) : AdminParseResult{};
    }
    if (verb == "set" && object == "dev") return ParseSet(w, out);
    return Usage("'" + verb + "' is not a " + object + " command (" +
                 (object == "dev" ? "show, add, del, set" : "show, add, del") + ")");
  }
  if (object == "res" || object == "resource") {
    if (verb != "show") return Usage("'" + verb + "' is not a res command (show)");
    return ParseResShow(w, out);
  }
  if (object == "stat" || object == "statistic") {
    if (verb != "show") return Usage("'" + verb + "' is not a stat command (show)");
    if (w.size() > 3) return Usage("usage: stat show [DEV]");
    out->op = AdminOp::kStatShow;
    if (w.size() == 3) out->name = w[2];
    return {};
  }
  if (object == "cgroup") return ParseCgroup(verb, w, out);
  return Usage("unknown object '" + object + "' (pdev, dev, link, res, stat, cgroup, pci)");
}

std::vector<std::string> AdminCommandWords(const AdminCommand& c) {
  std::vector<std::string> w;
  auto maybe_name = [&] {
    if (!c.name.empty()) w.push_back(c.name);
  };
  switch (c.op) {
    case AdminOp::kPdevShow:
      w = {"pdev", "show"};
      maybe_name();
      break;
    case AdminOp::kDevShow:
      w = {"dev", "show"};
      maybe_name();
      break;
    case AdminOp::kDevAdd:
      w = {"dev", "add", c.name};
      if (!c.pdev.empty()) w.insert(w.end(), {"pdev", c.pdev});
      w.insert(w.end(), {"netdev", c.netdev});
      if (!c.netns.empty()) w.insert(w.end(), {"netns", c.netns});
      break;
    case AdminOp::kDevDel:
      w = {"dev", "del", c.name};
      break;
    case AdminOp::kDevSet:
      w = {"dev", "set", c.name};
      for (const auto& [r, n] : c.quotas) w.insert(w.end(), {r, std::to_string(n)});
      if (!c.owner.empty()) w.insert(w.end(), {"owner", c.owner});
      if (!c.group.empty()) w.insert(w.end(), {"group", c.group});
      if (c.mode >= 0) {
        char m[16];
        std::snprintf(m, sizeof m, "0%o", static_cast<unsigned>(c.mode) & 0777u);
        w.insert(w.end(), {"mode", m});
      }
      if (!c.roce_mode.empty()) w.insert(w.end(), {"roce_mode", c.roce_mode});
      if (!c.spoofchk.empty()) w.insert(w.end(), {"spoofchk", c.spoofchk});
      break;
    case AdminOp::kResShow:
      w = {"res", "show"};
      if (!c.res_type.empty()) w.push_back(c.res_type);
      // "dev NAME", never a bare name: a vdev may be called "qp".
      if (!c.name.empty()) w.insert(w.end(), {"dev", c.name});
      break;
    case AdminOp::kStatShow:
      w = {"stat", "show"};
      maybe_name();
      break;
    case AdminOp::kCgroupShow:
      w = {"cgroup", "show"};
      maybe_name();
      break;
    case AdminOp::kCgroupSet:
      w = {"cgroup", "set", c.name, "dev", c.dev};
      for (const auto& [k, v] : c.cgroup_limits) w.insert(w.end(), {k, v});
      break;
    case AdminOp::kCgroupDel:
      w = {"cgroup", "del", c.name};
      if (!c.dev.empty()) w.insert(w.end(), {"dev", c.dev});
      break;
  }
  return w;
}

}  // namespace vrdma::proto
