#include "vdev/admin.h"

#include <arpa/inet.h>

#include <cerrno>
#include <charconv>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace vrdma {

namespace {

AdminResult Fail(int err, std::string message) { return {err, std::move(message) + "\n"}; }

std::string Json(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += absl::StrFormat("\\u%04x", c);
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string GuidText(uint64_t guid_be) {
  uint8_t b[8];
  std::memcpy(b, &guid_be, 8);
  return absl::StrFormat("%02x%02x:%02x%02x:%02x%02x:%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5],
                         b[6], b[7]);
}

std::string MacText(const wire::MacAddr& m) {
  return absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

std::string GidText(const wire::Gid& g) {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, g.data(), buf, sizeof buf);
  return buf;
}

const char* GidType(const GidEntry& g) {
  switch (g.type) {
    case wire::NetworkType::kRoceV1:
      return "RoCEv1";
    default:
      return "RoCEv2";
  }
}

std::string CountsJson(const ResourceCounts& c) {
  std::vector<std::string> parts;
  for (size_t i = 0; i < kResourceCount; ++i) {
    parts.push_back(absl::StrCat(Json(kResourceNames[i]), ":", c[i]));
  }
  return absl::StrCat("{", absl::StrJoin(parts, ","), "}");
}

bool ParseU64(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

// ---- pdev ----

AdminResult PdevShow(const AdminContext& ctx, std::span<const std::string> args, bool json) {
  if (args.size() > 1) return Fail(EINVAL, "usage: pdev show [NAME]");
  std::vector<std::string> rows;
  std::string text;
  int index = 0;
  bool found = false;
  for (const auto& p : ctx.registry->pdevs()) {
    ++index;
    if (!args.empty() && p->name != args[0]) continue;
    found = true;
    uint32_t nvdev = 0;
    for (const auto& [n, v] : ctx.registry->vdevs()) nvdev += v->pdev == p.get();
    ResourceCounts lim = Registry::PdevLimits(*p);
    if (json) {
      rows.push_back(absl::StrCat(
          "{\"ifindex\":", index - 1, ",\"pdev\":", Json(p->name), ",\"port\":", Json(p->kind),
          ",\"type\":\"physical\",\"node_guid\":", Json(GuidText(p->node_guid_be)),
          ",\"vdevs\":", nvdev, ",\"limits\":", CountsJson(lim), "}"));
    } else {
      absl::StrAppend(&text, index - 1, ": ", p->name, ": type physical port ", p->kind,
                      " node_guid ", GuidText(p->node_guid_be), " vdevs ", nvdev, "\n    limits");
      for (size_t i = 0; i < kResourceCount; ++i) {
        absl::StrAppend(&text, " ", kResourceNames[i], " ", lim[i]);
      }
      text += "\n";
    }
  }
  if (!args.empty() && !found) return Fail(ENODEV, absl::StrCat("no pdev named ", args[0]));
  return {0, json ? absl::StrCat("[", absl::StrJoin(rows, ","), "]\n") : text};
}

// ---- dev ----

std::string DevText(const Vdev& v, bool details) {
  std::string t =
      absl::StrCat(v.id, ": ", v.name, ": type virtual pdev ", v.pdev->name, " netdev ", v.netdev,
                   " node_guid ", GuidText(v.node_guid_be), " mac ", MacText(v.mac), " mtu ",
                   128 << v.ActiveMtu(), " contexts ", v.open_contexts, "\n");
  if (details) {
    for (size_t i = 0; i < v.gids.size(); ++i) {
      if (!v.gids[i].valid) continue;
      absl::StrAppend(&t, "    gid ", i, " ", GidText(v.gids[i].gid), " ", GidType(v.gids[i]),
                      v.gids[i].has_vlan ? absl::StrCat(" vlan ", v.gids[i].vlan_id) : "", "\n");
    }
  }
  return t;
}

std::string DevJson(const Vdev& v) {
  std::vector<std::string> gids;
  for (size_t i = 0; i < v.gids.size(); ++i) {
    if (!v.gids[i].valid) continue;
    gids.push_back(
        absl::StrCat("{\"index\":", i, ",\"gid\":", Json(GidText(v.gids[i].gid)),
                     ",\"type\":", Json(GidType(v.gids[i])),
                     v.gids[i].has_vlan ? absl::StrCat(",\"vlan\":", v.gids[i].vlan_id) : "", "}"));
  }
  return absl::StrCat(
      "{\"ifindex\":", v.id, ",\"ifname\":", Json(v.name),
      ",\"type\":\"virtual\",\"pdev\":", Json(v.pdev->name), ",\"netdev\":", Json(v.netdev),
      ",\"node_guid\":", Json(GuidText(v.node_guid_be)), ",\"mac\":", Json(MacText(v.mac)),
      ",\"active_mtu\":", 128 << v.ActiveMtu(), ",\"contexts\":", v.open_contexts,
      ",\"quota\":", CountsJson(v.quota), ",\"gids\":[", absl::StrJoin(gids, ","), "]}");
}

AdminResult DevShow(const AdminContext& ctx, std::span<const std::string> args, bool json) {
  if (args.size() > 1) return Fail(EINVAL, "usage: dev show [NAME]");
  std::vector<std::string> rows;
  std::string text;
  for (const auto& [n, v] : ctx.registry->vdevs()) {
    if (!args.empty() && n != args[0]) continue;
    if (json) {
      rows.push_back(DevJson(*v));
    } else {
      text += DevText(*v, !args.empty());
    }
  }
  if (!args.empty() && !ctx.registry->FindVdev(args[0])) {
    return Fail(ENODEV, absl::StrCat("no device named ", args[0]));
  }
  return {0, json ? absl::StrCat("[", absl::StrJoin(rows, ","), "]\n") : text};
}

AdminResult DevAdd(const AdminContext& ctx, std::span<const std::string> args, bool json) {
  // dev add NAME pdev PDEV netdev IFACE
  if (args.size() != 5 || args[1] != "pdev" || args[3] != "netdev") {
    return Fail(EINVAL, "usage: dev add NAME pdev PDEV netdev IFACE");
  }
  auto v = ctx.registry->AddVdev(args[0], args[2], args[4]);
  if (!v.ok()) {
    absl::StatusCode code = v.status().code();
    int err = code == absl::StatusCode::kAlreadyExists       ? EEXIST
              : code == absl::StatusCode::kNotFound          ? ENODEV
              : code == absl::StatusCode::kResourceExhausted ? ENOSPC
                                                             : EINVAL;
    return Fail(err, std::string(v.status().message()));
  }
  if (ctx.notify) ctx.notify("vdev_add", *v);
  return {0, json ? DevJson(**v) + "\n" : DevText(**v, true)};
}

AdminResult DevDel(const AdminContext& ctx, std::span<const std::string> args) {
  if (args.size() != 1) return Fail(EINVAL, "usage: dev del NAME");
  Vdev* v = ctx.registry->FindVdev(args[0]);
  if (!v) return Fail(ENODEV, absl::StrCat("no device named ", args[0]));
  if (ctx.notify) ctx.notify("vdev_del", v);
  if (ctx.before_delete) ctx.before_delete(v);
  absl::Status st = ctx.registry->DelVdev(args[0]);
  if (!st.ok()) return Fail(EINVAL, std::string(st.message()));
  return {0, ""};
}

AdminResult DevSet(const AdminContext& ctx, std::span<const std::string> args, bool json) {
  // dev set NAME RES N [RES N ...]
  if (args.size() < 3 || args.size() % 2 == 0) {
    return Fail(EINVAL, "usage: dev set NAME {qp|cq|mr|pd|srq|ah|mr_bytes} N ...");
  }
  Vdev* v = ctx.registry->FindVdev(args[0]);
  if (!v) return Fail(ENODEV, absl::StrCat("no device named ", args[0]));
  std::vector<std::pair<Resource, uint64_t>> values;
  for (size_t i = 1; i < args.size(); i += 2) {
    size_t r = 0;
    while (r < kResourceCount && kResourceNames[r] != args[i]) ++r;
    if (r == kResourceCount) {
      return Fail(EINVAL, absl::StrCat("unknown resource '", args[i],
                                       "' (qp, cq, mr, pd, srq, ah, mr_bytes)"));
    }
    uint64_t n;
    if (!ParseU64(args[i + 1], &n)) {
      return Fail(EINVAL, absl::StrCat("bad value '", args[i + 1], "' for ", args[i]));
    }
    for (const auto& [prev, unused] : values) {
      if (prev == static_cast<Resource>(r)) {
        return Fail(EINVAL, absl::StrCat(args[i], " given twice"));
      }
    }
    values.emplace_back(static_cast<Resource>(r), n);
  }
  absl::Status st = ctx.registry->SetQuotas(*v, values);
  if (!st.ok()) {
    int err = st.code() == absl::StatusCode::kFailedPrecondition ? EBUSY : ERANGE;
    return Fail(err, std::string(st.message()));
  }
  return {0, json ? DevJson(*v) + "\n" : ""};
}

// ---- res ----

AdminResult ResShow(const AdminContext& ctx, std::span<const std::string> args, bool json) {
  if (args.size() > 1) return Fail(EINVAL, "usage: res show [NAME]");
  if (!args.empty() && !ctx.registry->FindVdev(args[0])) {
    return Fail(ENODEV, absl::StrCat("no device named ", args[0]));
  }
  std::vector<std::string> rows;
  std::string text;
  for (const auto& [n, v] : ctx.registry->vdevs()) {
    if (!args.empty() && n != args[0]) continue;
    // Per process: a process may hold several contexts on one vdev.
    std::map<pid_t, std::pair<std::string, ResourceCounts>> procs;
    for (const auto& s : *ctx.sessions) {
      if (s->vdev() != v.get()) continue;
      auto& [comm, counts] = procs[s->pid()];
      comm = s->comm();
      for (size_t i = 0; i < kResourceCount; ++i) counts[i] += s->used()[i];
    }
    if (json) {
      std::vector<std::string> pj;
      for (const auto& [pid, pc] : procs) {
        pj.push_back(absl::StrCat("{\"pid\":", pid, ",\"comm\":", Json(pc.first),
                                  ",\"used\":", CountsJson(pc.second), "}"));
      }
      rows.push_back(absl::StrCat("{\"ifname\":", Json(n), ",\"used\":", CountsJson(v->used),
                                  ",\"quota\":", CountsJson(v->quota), ",\"processes\":[",
                                  absl::StrJoin(pj, ","), "]}"));
    } else {
      absl::StrAppend(&text, v->id, ": ", n, ":");
      for (size_t i = 0; i < kResourceCount; ++i) {
        absl::StrAppend(&text, " ", kResourceNames[i], " ", v->used[i], "/", v->quota[i]);
      }
      text += "\n";
      for (const auto& [pid, pc] : procs) {
        absl::StrAppend(&text, "    pid ", pid, " comm ", pc.first);
        for (size_t i = 0; i < kResourceCount; ++i) {
          absl::StrAppend(&text, " ", kResourceNames[i], " ", pc.second[i]);
        }
        text += "\n";
      }
    }
  }
  return {0, json ? absl::StrCat("[", absl::StrJoin(rows, ","), "]\n") : text};
}

// ---- stat ----

std::vector<std::pair<std::string, uint64_t>> PdevCounters(const Pdev& p) {
  const DeviceCounters& c = p.device->counters();
  std::vector<std::pair<std::string, uint64_t>> out = {
      {"rx_packets", c.rx_packets},       {"rx_bytes", c.rx_bytes},
      {"tx_packets", c.tx_packets},       {"tx_bytes", c.tx_bytes},
      {"tx_dropped", c.tx_dropped},       {"tx_zero_copy", c.tx_zero_copy},
      {"tx_port_busy", c.tx_port_busy},   {"rx_unknown_qp", c.rx_unknown_qp},
      {"rx_not_for_us", c.rx_not_for_us}, {"rx_bad_pkey", c.rx_bad_pkey},
      {"rx_bad_qkey", c.rx_bad_qkey},     {"rx_wrong_transport", c.rx_wrong_transport},
      {"rx_wrong_path", c.rx_wrong_path}, {"rx_no_recv_wqe", c.rx_no_recv_wqe},
      {"rx_duplicate", c.rx_duplicate},   {"rx_out_of_sequence", c.rx_out_of_sequence},
      {"rnr_naks_sent", c.rnr_naks_sent}, {"seq_naks_sent", c.seq_naks_sent},
      {"naks_sent", c.naks_sent},         {"retransmits", c.retransmits},
      {"timeouts", c.timeouts},           {"rnr_naks_received", c.rnr_naks_received},
      {"cq_overruns", c.cq_overruns},
  };
  // Frames that are not RoCE (the kernel's ARP, TCP, ... on a shared interface) are
  // counted apart from malformed RoCE.
  constexpr size_t kNotRoce = static_cast<size_t>(wire::DropReason::kNotRoce);
  uint64_t parse_drops = 0;
  for (size_t i = 0; i < c.rx_parse_drops.size(); ++i) {
    if (i != kNotRoce) parse_drops += c.rx_parse_drops[i];
  }
  out.emplace_back("rx_not_roce", c.rx_parse_drops[kNotRoce]);
  out.emplace_back("rx_malformed", parse_drops);
  if (p.exception_port) {
    const ExceptionCounters& e = p.exception_port->counters();
    out.emplace_back("to_kernel", e.to_kernel);
    out.emplace_back("from_kernel", e.from_kernel);
    out.emplace_back("kernel_dropped", e.dropped);
  }
  return out;
}

std::vector<std::pair<std::string, uint64_t>> VdevCounters(const Vdev& v) {
  return {{"send_wqes", v.stats.send_wqes},      {"recv_wqes", v.stats.recv_wqes},
          {"completions", v.stats.completions},  {"rejected_wqes", v.stats.rejected_wqes},
          {"cq_overruns", v.stats.cq_overruns},  {"async_events", v.stats.async_events},
          {"bad_requests", v.stats.bad_requests}};
}

AdminResult StatShow(const AdminContext& ctx, std::span<const std::string> args, bool json) {
  if (args.size() > 1) return Fail(EINVAL, "usage: stat show [NAME]");
  bool any = false;
  std::vector<std::string> rows;
  std::string text;
  auto emit = [&](const std::string& kind, const std::string& name,
                  const std::vector<std::pair<std::string, uint64_t>>& counters) {
    any = true;
    if (json) {
      std::vector<std::string> kv;
      for (const auto& [k, val] : counters) kv.push_back(absl::StrCat(Json(k), ":", val));
      rows.push_back(
          absl::StrCat("{\"", kind, "\":", Json(name), ",", absl::StrJoin(kv, ","), "}"));
    } else {
      absl::StrAppend(&text, kind, " ", name, ":");
      for (const auto& [k, val] : counters) absl::StrAppend(&text, " ", k, " ", val);
      text += "\n";
    }
  };
  for (const auto& p : ctx.registry->pdevs()) {
    if (args.empty() || args[0] == p->name) emit("pdev", p->name, PdevCounters(*p));
  }
  for (const auto& [n, v] : ctx.registry->vdevs()) {
    if (args.empty() || args[0] == n) emit("dev", n, VdevCounters(*v));
  }
  if (!any && !args.empty()) return Fail(ENODEV, absl::StrCat("no device named ", args[0]));
  return {0, json ? absl::StrCat("[", absl::StrJoin(rows, ","), "]\n") : text};
}

}  // namespace

AdminResult RunAdmin(const AdminContext& ctx, std::span<const std::string> words, bool json) {
  const char* usage =
      "usage: vrdmactl [-j] {pdev show [PDEV] | dev show [DEV] | dev add DEV pdev PDEV netdev "
      "IFACE | dev del DEV | dev set DEV RES N ... | res show [DEV] | stat show [DEV]}";
  if (words.empty()) return Fail(EINVAL, usage);
  const std::string& object = words[0];
  std::string verb = words.size() > 1 ? words[1] : "show";
  std::span<const std::string> args =
      words.size() > 2 ? words.subspan(2) : words.subspan(words.size());
  if (object == "pdev" && verb == "show") return PdevShow(ctx, args, json);
  if (object == "dev") {
    if (verb == "show") return DevShow(ctx, args, json);
    if ((verb == "add" || verb == "del" || verb == "set") && !ctx.may_change) {
      return Fail(EPERM, absl::StrCat("dev ", verb,
                                      ": operation not permitted (needs root or "
                                      "CAP_NET_ADMIN)"));
    }
    if (verb == "add") return DevAdd(ctx, args, json);
    if (verb == "del") return DevDel(ctx, args);
    if (verb == "set") return DevSet(ctx, args, json);
  }
  if (object == "res" && verb == "show") return ResShow(ctx, args, json);
  if (object == "stat" && verb == "show") return StatShow(ctx, args, json);
  return Fail(EINVAL, absl::StrCat("unknown command '", absl::StrJoin(words, " "), "'\n", usage));
}

}  // namespace vrdma
