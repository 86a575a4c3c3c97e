#include "vdev/admin.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "vdev/device_query.h"
#include "vdev/log.h"
#include "vdev/netdev/netdev_info.h"
#include "vdev/object_info.h"
#include "vdev/protocol/admin_call.h"

namespace vrdma::vdev {

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

std::string MacText(const driver::wire::MacAddr& m) {
  return absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

std::string GidText(const driver::wire::Gid& g) {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, g.data(), buf, sizeof buf);
  return buf;
}

const char* GidType(const driver::GidEntry& g) {
  switch (g.type) {
    case driver::wire::NetworkType::kRoceV1:
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

std::string NameList(const std::vector<std::string>& names) {
  return names.empty() ? "none" : absl::StrJoin(names, ", ");
}

// What to say when `name` names no vdev (ENODEV, as ibv_destroy_virtual_ibdev reports
// it): a pdev is not a vdev, and a name no device has gets the list of those there are.
// What the requester may see (AdminContext): every device and client for the
// administrator, else the devices of its network namespace and its own clients.
bool Sees(const AdminContext& ctx, const Vdev& v) {
  return !ctx.may_see_vdev || ctx.may_see_vdev(v);
}
bool Sees(const AdminContext& ctx, const Session& s) {
  return !ctx.may_see_session || ctx.may_see_session(s);
}
const Vdev* FindVisible(const AdminContext& ctx, const std::string& name) {
  const Vdev* v = ctx.registry->FindVdev(name);
  return v && Sees(ctx, *v) ? v : nullptr;
}
const Pdev* FindVisiblePdev(const AdminContext& ctx, const std::string& name) {
  return ctx.may_see_pdevs ? ctx.registry->FindPdev(name) : nullptr;
}

AdminResult NoDevice(const AdminContext& ctx, const std::string& name, std::string_view command) {
  if (FindVisiblePdev(ctx, name)) {
    if (command == "dev del") {
      return Fail(ENODEV, absl::StrCat(name,
                                       " is a physical device (pdev): pdevs are not deleted with "
                                       "`dev del`, which removes vdevs; a pdev is a port vrdmad "
                                       "was started with (--pdev), gone when vrdmad stops"));
    }
    if (command == "dev set") {
      return Fail(ENODEV, absl::StrCat(name,
                                       " is a physical device (pdev): quotas are set on vdevs; "
                                       "its limits are in `vrdmactl pdev show ",
                                       name, "`"));
    }
    return Fail(ENODEV, absl::StrCat(name, " is a physical device (pdev): `", std::string(command),
                                     "` is about vdevs; see `vrdmactl pdev show ", name, "`"));
  }
  std::vector<std::string> vdevs;
  for (const auto& [n, v] : ctx.registry->vdevs()) {
    if (Sees(ctx, *v)) vdevs.push_back(n);
  }
  return Fail(ENODEV, absl::StrCat("no device named ", name, " (vdevs: ", NameList(vdevs), ")"));
}

int ErrnoOfStatus(const absl::Status& st) {
  switch (st.code()) {
    case absl::StatusCode::kAlreadyExists:
      return EEXIST;
    case absl::StatusCode::kNotFound:
      return ENODEV;
    case absl::StatusCode::kResourceExhausted:
      return ENOSPC;
    case absl::StatusCode::kFailedPrecondition:
      return EBUSY;
    case absl::StatusCode::kOutOfRange:
      return ERANGE;
    default:
      return EINVAL;
  }
}

// ---- pdev ----

AdminResult PdevShow(const AdminContext& ctx, const std::string& name, bool json) {
  std::vector<std::string> rows;
  std::string text;
  int index = 0;
  bool found = false;
  for (const auto& p : ctx.registry->pdevs()) {
    if (!ctx.may_see_pdevs) break;
    ++index;
    if (!name.empty() && p->name != name) continue;
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
  if (!name.empty() && !found) {
    if (ctx.registry->FindVdev(name)) {
      return Fail(ENODEV,
                  absl::StrCat(name, " is a vdev, not a pdev: see `vrdmactl dev show ", name, "`"));
    }
    std::vector<std::string> pdevs;
    for (const auto& p : ctx.registry->pdevs()) pdevs.push_back(p->name);
    return Fail(ENODEV, absl::StrCat("no pdev named ", name, " (pdevs: ", NameList(pdevs), ")"));
  }
  return {0, json ? absl::StrCat("[", absl::StrJoin(rows, ","), "]\n") : text};
}

// ---- dev ----

std::string DevText(const Vdev& v) {
  std::string t = absl::StrCat(
      v.id, ": ", v.name, ": type virtual pdev ", v.pdev->name, " netdev ", v.netdev,
      v.netns_handle ? absl::StrCat(" netns net:[", v.netns_handle->inode(), "]") : "", " node_guid ",
      GuidText(v.node_guid_be), " mac ", MacText(v.mac), " mtu ", 128 << v.ActiveMtu(),
      " contexts ", v.open_contexts, "\n    access owner ", v.access.owner, " group ",
      v.access.group, " mode ", absl::StrFormat("0%o", v.access.mode), " node ",
      v.node.empty() ? "none" : v.node, "\n    cm roce_mode ", v.cm_roce_v1 ? "v1" : "v2",
      "\n    raw spoofchk ", v.spoof_check ? "on" : "off", "\n    quota");
  for (size_t i = 0; i < kResourceCount; ++i) {
    absl::StrAppend(&t, " ", kResourceNames[i], " ", v.quota[i]);
  }
  t += "\n";
  for (size_t i = 0; i < v.gids.size(); ++i) {
    if (!v.gids[i].valid) continue;
    absl::StrAppend(&t, "    gid ", i, " ", GidText(v.gids[i].gid), " ", GidType(v.gids[i]),
                    v.gids[i].has_vlan ? absl::StrCat(" vlan ", v.gids[i].vlan_id) : "", "\n");
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
      v.netns_handle ? absl::StrCat(",\"netns\":", v.netns_handle->inode()) : "",
      ",\"node_guid\":", Json(GuidText(v.node_guid_be)), ",\"mac\":", Json(MacText(v.mac)),
      ",\"active_mtu\":", 128 << v.ActiveMtu(), ",\"contexts\":", v.open_contexts,
      ",\"owner\":", v.access.owner, ",\"group\":", v.access.group,
      ",\"mode\":", Json(absl::StrFormat("0%o", v.access.mode)), ",\"node\":", Json(v.node),
      v.node_error.empty() ? "" : absl::StrCat(",\"node_error\":", Json(v.node_error)),
      ",\"roce_mode\":", Json(v.cm_roce_v1 ? "v1" : "v2"),
      ",\"spoofchk\":", Json(v.spoof_check ? "on" : "off"), ",\"quota\":", CountsJson(v.quota),
      ",\"gids\":[", absl::StrJoin(gids, ","), "]}");
}

AdminResult DevShow(const AdminContext& ctx, const std::string& name, bool json) {
  if (!name.empty() && !FindVisible(ctx, name)) {
    // The device list holds pdevs too: `dev show pdev0` shows the pdev.
    if (FindVisiblePdev(ctx, name)) return PdevShow(ctx, name, json);
    return NoDevice(ctx, name, "dev show");
  }
  std::vector<std::string> rows;
  std::string text;
  for (const auto& [n, v] : ctx.registry->vdevs()) {
    if ((!name.empty() && n != name) || !Sees(ctx, *v)) continue;
    if (json) {
      rows.push_back(DevJson(*v));
    } else {
      text += DevText(*v);
    }
  }
  return {0, json ? absl::StrCat("[", absl::StrJoin(rows, ","), "]\n") : text};
}

// The pdev a vdev goes on when the command names none: the only one; of several, the
// first whose port the interface sits on, else the first.
const Pdev* DefaultPdev(const Registry& registry, const std::string& netdev) {
  const auto& pdevs = registry.pdevs();
  if (pdevs.empty()) return nullptr;
  if (pdevs.size() > 1) {
    for (const auto& p : pdevs) {
      if (!p->iface.empty() && NetdevSitsOn(netdev, p->iface)) return p.get();
    }
  }
  return pdevs.front().get();
}

AdminResult DevAdd(const AdminContext& ctx, const proto::AdminCommand& cmd, bool json,
                   int netns_fd) {
  std::shared_ptr<Netns> netns;
  if (!cmd.netns.empty()) {
    if (netns_fd < 0) {
      return Fail(EINVAL, "netns " + cmd.netns +
                              ": the namespace comes as a descriptor with the request (vrdmactl "
                              "opens the path)");
    }
    absl::StatusOr<std::shared_ptr<Netns>> ns = Netns::Adopt(netns_fd);
    if (!ns.ok()) return Fail(EINVAL, "netns " + cmd.netns + ": " + std::string(ns.status().message()));
    netns = std::move(*ns);
  } else if (netns_fd >= 0) {
    close(netns_fd);
  }
  std::string pdev = cmd.pdev;
  if (pdev.empty()) {
    const Pdev* p = DefaultPdev(*ctx.registry, cmd.netdev);
    if (!p) return Fail(ENODEV, "vrdmad has no pdev to add a vdev on");
    pdev = p->name;
  }
  auto v = ctx.registry->AddVdev(cmd.name, pdev, cmd.netdev, std::move(netns));
  if (!v.ok()) return Fail(ErrnoOfStatus(v.status()), std::string(v.status().message()));
  if (!(*v)->node_error.empty()) {
    Log(LogLevel::kWarn, "device_node_failed",
        absl::StrCat("dev=", (*v)->name, " reason=", LogQuote((*v)->node_error)));
  }
  if (ctx.notify) ctx.notify("vdev_add", *v);
  return {0, json ? DevJson(**v) + "\n" : DevText(**v)};
}

AdminResult DevDel(const AdminContext& ctx, const std::string& name) {
  Vdev* v = ctx.registry->FindVdev(name);
  if (!v) return NoDevice(ctx, name, "dev del");
  if (ctx.notify) ctx.notify("vdev_del", v);
  if (ctx.before_delete) ctx.before_delete(v);
  absl::Status st = ctx.registry->DelVdev(name);
  if (!st.ok()) return Fail(EINVAL, std::string(st.message()));
  return {0, ""};
}

AdminResult DevSet(const AdminContext& ctx, const proto::AdminCommand& cmd, bool json) {
  Vdev* v = ctx.registry->FindVdev(cmd.name);
  if (!v) return NoDevice(ctx, cmd.name, "dev set");
  std::vector<std::pair<Resource, uint64_t>> values;
  for (const auto& [res, n] : cmd.quotas) {
    size_t r = 0;
    while (r < kResourceCount && kResourceNames[r] != res) ++r;
    if (r == kResourceCount) return Fail(EINVAL, absl::StrCat("unknown resource '", res, "'"));
    values.emplace_back(static_cast<Resource>(r), n);
  }
  // Who may open it, by name or number (resolved here: the daemon's users and groups).
  AccessPolicy access = v->access;
  if (!cmd.owner.empty()) {
    absl::StatusOr<uid_t> u = ResolveUser(cmd.owner);
    if (!u.ok()) return Fail(EINVAL, absl::StrCat("owner ", cmd.owner, ": no such user"));
    access.owner = *u;
  }
  if (!cmd.group.empty()) {
    absl::StatusOr<gid_t> g = ResolveGroup(cmd.group);
    if (!g.ok()) return Fail(EINVAL, absl::StrCat("group ", cmd.group, ": no such group"));
    access.group = *g;
  }
  if (cmd.mode >= 0) access.mode = static_cast<uint32_t>(cmd.mode);
  if (!cmd.roce_mode.empty() && cmd.roce_mode != "v1" && cmd.roce_mode != "v2") {
    return Fail(EINVAL, absl::StrCat("bad roce_mode '", cmd.roce_mode, "': v1 or v2"));
  }
  if (!values.empty()) {
    absl::Status st = ctx.registry->SetQuotas(*v, values);
    if (!st.ok()) {
      int err = st.code() == absl::StatusCode::kFailedPrecondition ? EBUSY : ERANGE;
      return Fail(err, std::string(st.message()));
    }
  }
  // Contexts already open keep it, as an open device file keeps working after chmod.
  ctx.registry->SetAccess(*v, access);
  // IDs already bound keep the GID they chose, as in Linux.
  if (!cmd.roce_mode.empty()) v->cm_roce_v1 = cmd.roce_mode == "v1";
  // Raw packet QPs created from now on (as a VF's spoof check applies to what it sends).
  if (!cmd.spoofchk.empty()) v->spoof_check = cmd.spoofchk == "on";
  return {0, json ? DevJson(*v) + "\n" : ""};
}

// ---- res ----

AdminResult ResCounts(const AdminContext& ctx, const std::string& name, bool json) {
  std::vector<std::string> rows;
  std::string text;
  for (const auto& [n, v] : ctx.registry->vdevs()) {
    if ((!name.empty() && n != name) || !Sees(ctx, *v)) continue;
    // Per process: a process may hold several contexts on one vdev.
    std::map<pid_t, std::pair<std::string, ResourceCounts>> procs;
    for (const auto& s : *ctx.sessions) {
      if (s->vdev() != v.get() || !Sees(ctx, *s)) continue;
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

const char* QpTypeName(int type) {
  switch (type) {
    case IBV_QPT_RC:
      return "RC";
    case IBV_QPT_UC:
      return "UC";
    case IBV_QPT_UD:
      return "UD";
    case IBV_QPT_RAW_PACKET:
      return "RAW_PACKET";
    case IBV_QPT_XRC_SEND:
      return "XRC_INI";
    case IBV_QPT_XRC_RECV:
      return "XRC_TGT";
    default:
      return "UNKNOWN";
  }
}

// One field of an object record: its name in text and JSON, and its value.
struct Field {
  std::string key;
  std::string value;  // as printed
  bool number;        // JSON: a number, not a string
};

std::vector<Field> ObjectFields(const Vdev& v, const ObjectInfo& o) {
  auto num = [](std::string k, uint64_t n) { return Field{std::move(k), absl::StrCat(n), true}; };
  auto hex = [](std::string k, uint32_t n) {
    return Field{std::move(k), absl::StrFormat("0x%x", n), false};
  };
  auto str = [](std::string k, std::string s) { return Field{std::move(k), std::move(s), false}; };
  switch (o.kind) {
    case Resource::kQp: {
      std::vector<Field> f = {str("link", absl::StrCat(v.name, "/1")), num("lqpn", o.id)};
      bool connected = (o.qp_type == IBV_QPT_RC || o.qp_type == IBV_QPT_UC) &&
                       o.qp_state >= IBV_QPS_RTR && o.qp_state <= IBV_QPS_SQE;
      if (connected) f.push_back(num("rqpn", o.dest_qpn));
      f.push_back(str("type", QpTypeName(o.qp_type)));
      f.push_back(str("state", driver::QpStateName(static_cast<ibv_qp_state>(o.qp_state))));
      f.push_back(num("sq-psn", o.sq_psn));
      f.push_back(num("rq-psn", o.rq_psn));
      f.push_back(num("pdn", o.pd));
      return f;
    }
    case Resource::kCq:
      return {str("dev", v.name), num("cqn", o.id), num("cqe", o.cqe), num("users", o.users)};
    case Resource::kMr:
      return {str("dev", v.name),  num("mrn", o.id),       hex("rkey", o.rkey),
              hex("lkey", o.lkey), num("mrlen", o.length), num("pdn", o.pd)};
    case Resource::kPd:
      return {str("dev", v.name), num("pdn", o.id), num("users", o.users)};
    case Resource::kSrq:
      return {str("dev", v.name), num("srqn", o.id), num("max_wr", o.cqe), num("pdn", o.pd)};
    case Resource::kAh:
      return {str("dev", v.name), num("ahn", o.id), num("pdn", o.pd)};
    default:
      return {str("dev", v.name), num("id", o.id)};
  }
}

// res show qp|cq|mr|pd|srq|ah [dev DEV]: one line (or JSON object) per object, as
// iproute2's `rdma res show qp` lists them.
// res show TYPE for a type a layer above lists (cm_id): its objects on the vdevs and of
// the clients the requester may see, with the owner's pid and comm.
AdminResult ResReported(const AdminContext& ctx, const ObjectReporter& reporter,
                        const proto::AdminCommand& cmd, bool json) {
  std::vector<ReportedObject> objects;
  reporter.Report(&objects);
  std::vector<std::string> rows;
  std::string text;
  for (const ReportedObject& o : objects) {
    if (o.vdev && !Sees(ctx, *o.vdev)) continue;
    if (!cmd.name.empty() && (!o.vdev || o.vdev->name != cmd.name)) continue;
    if (!o.owner || !Sees(ctx, *o.owner)) continue;
    std::vector<ReportedField> fields;
    if (o.vdev) fields.push_back({"link", absl::StrCat(o.vdev->name, "/1"), false});
    fields.insert(fields.end(), o.fields.begin(), o.fields.end());
    fields.push_back({"pid", absl::StrCat(o.owner->pid()), true});
    fields.push_back({"comm", o.owner->comm(), false});
    if (json) {
      std::vector<std::string> kv;
      if (o.vdev) {
        kv.push_back(absl::StrCat("\"ifindex\":", o.vdev->id));
        kv.push_back(absl::StrCat("\"ifname\":", Json(o.vdev->name)));
        kv.push_back("\"port\":1");
      }
      for (const ReportedField& f : fields) {
        if (f.key == "link") continue;
        kv.push_back(absl::StrCat(Json(f.key), ":", f.number ? f.value : Json(f.value)));
      }
      rows.push_back(absl::StrCat("{", absl::StrJoin(kv, ","), "}"));
    } else {
      std::vector<std::string> parts;
      for (const ReportedField& f : fields) parts.push_back(absl::StrCat(f.key, " ", f.value));
      absl::StrAppend(&text, absl::StrJoin(parts, " "), "\n");
    }
  }
  return {0, json ? absl::StrCat("[", absl::StrJoin(rows, ","), "]\n") : text};
}

AdminResult ResObjects(const AdminContext& ctx, const proto::AdminCommand& cmd, bool json) {
  if (ctx.reporters) {
    for (const ObjectReporter* r : *ctx.reporters) {
      if (r->type() == cmd.res_type) return ResReported(ctx, *r, cmd, json);
    }
  }
  size_t kind = 0;
  while (kind < kResourceCount && kResourceNames[kind] != cmd.res_type) ++kind;
  if (kind == kResourceCount) return Fail(EINVAL, absl::StrCat("unknown type ", cmd.res_type));
  std::vector<std::string> rows;
  std::string text;
  for (const auto& [n, v] : ctx.registry->vdevs()) {
    if ((!cmd.name.empty() && n != cmd.name) || !Sees(ctx, *v)) continue;
    for (const auto& s : *ctx.sessions) {
      if (s->vdev() != v.get() || !Sees(ctx, *s)) continue;
      std::vector<ObjectInfo> objects;
      s->ListObjects(&objects);
      std::erase_if(objects,
                    [&](const ObjectInfo& o) { return static_cast<size_t>(o.kind) != kind; });
      std::sort(objects.begin(), objects.end(),
                [](const ObjectInfo& a, const ObjectInfo& b) { return a.id < b.id; });
      for (const ObjectInfo& o : objects) {
        std::vector<Field> fields = ObjectFields(*v, o);
        fields.push_back(Field{"pid", absl::StrCat(s->pid()), true});
        fields.push_back(Field{"comm", s->comm(), false});
        if (json) {
          std::vector<std::string> kv = {absl::StrCat("\"ifindex\":", v->id),
                                         absl::StrCat("\"ifname\":", Json(n))};
          if (o.kind == Resource::kQp) kv.push_back("\"port\":1");
          for (const Field& f : fields) {
            if (f.key == "link" || f.key == "dev") continue;  // ifname, port
            kv.push_back(absl::StrCat(Json(f.key), ":", f.number ? f.value : Json(f.value)));
          }
          rows.push_back(absl::StrCat("{", absl::StrJoin(kv, ","), "}"));
        } else {
          std::vector<std::string> parts;
          for (const Field& f : fields) parts.push_back(absl::StrCat(f.key, " ", f.value));
          absl::StrAppend(&text, absl::StrJoin(parts, " "), "\n");
        }
      }
    }
  }
  return {0, json ? absl::StrCat("[", absl::StrJoin(rows, ","), "]\n") : text};
}

AdminResult ResShow(const AdminContext& ctx, const proto::AdminCommand& cmd, bool json) {
  if (!cmd.name.empty() && !FindVisible(ctx, cmd.name)) {
    return NoDevice(ctx, cmd.name, "res show");
  }
  return cmd.res_type.empty() ? ResCounts(ctx, cmd.name, json) : ResObjects(ctx, cmd, json);
}

// ---- stat ----

AdminResult StatShow(const AdminContext& ctx, const std::string& name, bool json) {
  std::vector<std::string> args;
  if (!name.empty()) args.push_back(name);
  bool any = false;
  std::vector<std::string> rows;
  std::string text;
  // A row: "[LAYER ]KIND NAME: counter value ..." ({"KIND": NAME[, "layer": LAYER], ...}).
  auto emit = [&](const std::string& kind, const std::string& name,
                  const std::vector<std::pair<std::string, uint64_t>>& counters,
                  std::string_view layer = {}) {
    any = true;
    if (json) {
      std::vector<std::string> kv;
      if (!layer.empty()) kv.push_back(absl::StrCat("\"layer\":", Json(layer)));
      for (const auto& [k, val] : counters) kv.push_back(absl::StrCat(Json(k), ":", val));
      rows.push_back(
          absl::StrCat("{\"", kind, "\":", Json(name), ",", absl::StrJoin(kv, ","), "}"));
    } else {
      if (!layer.empty()) text.append(layer).append(" ");
      absl::StrAppend(&text, kind, " ", name, ":");
      for (const auto& [k, val] : counters) absl::StrAppend(&text, " ", k, " ", val);
      text += "\n";
    }
  };
  static const std::vector<const CounterReporter*> kNoReporters;
  const auto& reporters = ctx.counter_reporters ? *ctx.counter_reporters : kNoReporters;
  auto shown_pdev = [&](const Pdev& p) {
    return ctx.may_see_pdevs && (args.empty() || args[0] == p.name);
  };
  auto shown_vdev = [&](const std::string& n, const Vdev& v) {
    return (args.empty() || args[0] == n) && Sees(ctx, v);
  };
  for (const auto& p : ctx.registry->pdevs()) {
    if (shown_pdev(*p)) emit("pdev", p->name, PdevCounters(*p));
  }
  for (const auto& [n, v] : ctx.registry->vdevs()) {
    if (shown_vdev(n, *v)) emit("dev", n, VdevCounters(*v));
  }
  // The layers' own rows (the CM's), after the devices' so that the first rows stay
  // the devices'.
  for (const CounterReporter* r : reporters) {
    for (const auto& p : ctx.registry->pdevs()) {
      CounterList c;
      if (shown_pdev(*p)) r->PdevCounters(*p, &c);
      if (!c.empty()) emit("pdev", p->name, c, r->kind());
    }
    for (const auto& [n, v] : ctx.registry->vdevs()) {
      CounterList c;
      if (shown_vdev(n, *v)) r->VdevCounters(*v, &c);
      if (!c.empty()) emit("dev", n, c, r->kind());
    }
  }
  if (!any && !args.empty()) return NoDevice(ctx, args[0], "stat show");
  return {0, json ? absl::StrCat("[", absl::StrJoin(rows, ","), "]\n") : text};
}

AdminResult Refused(const proto::AdminParseResult& parsed) {
  if (parsed.result == proto::AdminParse::kUsage || parsed.result == proto::AdminParse::kHelp) {
    std::string text = parsed.error.empty() ? "" : parsed.error + "\n";
    return Fail(EINVAL, text + proto::AdminUsage());
  }
  return Fail(EINVAL, parsed.error);
}

}  // namespace

absl::StatusOr<AdminRequest> DecodeAdminRequest(const proto::Message& msg) {
  if (msg.header.op != static_cast<uint16_t>(proto::Op::kAdmin)) {
    return absl::InvalidArgumentError(
        absl::StrCat("not an admin request (op ", msg.header.op, ")"));
  }
  proto::AdminRequest head;
  if (!msg.Copy(&head)) {
    return absl::InvalidArgumentError(
        absl::StrCat("admin request of ", msg.payload.size(), " bytes is shorter than its header"));
  }
  if (head.flags & ~(proto::kAdminJson | proto::kAdminPretty)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("admin request with unknown flags 0x%x", head.flags));
  }
  if (head.nwords > kMaxAdminWords) {
    return absl::InvalidArgumentError(
        absl::StrCat("admin request of ", head.nwords, " words (at most ", kMaxAdminWords, ")"));
  }
  AdminRequest req;
  req.json = head.flags & proto::kAdminJson;
  req.pretty = req.json && (head.flags & proto::kAdminPretty);
  const char* p = reinterpret_cast<const char*>(msg.payload.data()) + sizeof head;
  const char* end = reinterpret_cast<const char*>(msg.payload.data()) + msg.payload.size();
  while (req.words.size() < head.nwords) {
    const void* z = p < end ? std::memchr(p, 0, end - p) : nullptr;
    if (!z) {
      return absl::InvalidArgumentError(absl::StrCat("admin request word ", req.words.size() + 1,
                                                     " of ", head.nwords,
                                                     " is missing or not NUL-terminated"));
    }
    req.words.emplace_back(p, static_cast<const char*>(z));
    p = static_cast<const char*>(z) + 1;
  }
  if (p != end) {
    return absl::InvalidArgumentError(
        absl::StrCat("admin request has ", end - p, " bytes after its ", head.nwords, " words"));
  }
  return req;
}

std::string PrettyJson(std::string_view in) {
  std::string out;
  int depth = 0;
  bool in_string = false;
  auto newline = [&] {
    out += '\n';
    out.append(static_cast<size_t>(std::max(depth, 0)) * 4, ' ');
  };
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < in.size()) {
        out += in[++i];
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        out += c;
        break;
      case '{':
      case '[':
        out += c;
        // An empty object or array stays on its line.
        if (i + 1 < in.size() && (in[i + 1] == '}' || in[i + 1] == ']')) {
          out += in[++i];
        } else {
          ++depth;
          newline();
        }
        break;
      case '}':
      case ']':
        --depth;
        newline();
        out += c;
        break;
      case ',':
        out += c;
        newline();
        break;
      case ':':
        out += ": ";
        break;
      case ' ':
      case '\t':
      case '\r':
        break;
      case '\n':
        if (depth == 0) out += c;
        break;
      default:
        out += c;
    }
  }
  return out;
}

// ---- cgroup ----

// One rdma.max-like line per (cgroup, vdev) with limits, and what that cgroup and its
// descendants use on the vdev (rdma.current).
AdminResult CgroupShow(const AdminContext& ctx, const std::string& path, bool json) {
  const CgroupLimits& limits = ctx.registry->cgroup_limits();
  std::string want;
  if (!path.empty()) {
    absl::StatusOr<std::string> p = NormalizeCgroupPath(path);
    if (!p.ok()) return Fail(EINVAL, std::string(p.status().message()));
    want = *p;
  }
  std::vector<std::string> rows;
  std::string text;
  for (const auto& [key, max] : limits.limits()) {
    const auto& [cg, dev] = key;
    if (!want.empty() && cg != want) continue;
    CgroupCounts cur = limits.Usage(cg, dev);
    if (json) {
      std::vector<std::string> kv;
      for (size_t i = 0; i < kCgroupResourceCount; ++i) {
        kv.push_back(absl::StrCat(Json(kCgroupResourceNames[i]), ":",
                                  max[i] == kCgroupNoLimit ? Json("max") : absl::StrCat(max[i])));
      }
      std::vector<std::string> cj;
      for (size_t i = 0; i < kCgroupResourceCount; ++i) {
        cj.push_back(absl::StrCat(Json(kCgroupResourceNames[i]), ":", cur[i]));
      }
      rows.push_back(absl::StrCat("{\"cgroup\":", Json(cg), ",\"dev\":", Json(dev), ",\"max\":{",
                                  absl::StrJoin(kv, ","), "},\"current\":{", absl::StrJoin(cj, ","),
                                  "}}"));
    } else {
      absl::StrAppend(&text, cg, " ", dev);
      for (size_t i = 0; i < kCgroupResourceCount; ++i) {
        absl::StrAppend(&text, " ", kCgroupResourceNames[i], "=", CgroupLimitText(max[i]));
      }
      text += "  current";
      for (size_t i = 0; i < kCgroupResourceCount; ++i) {
        absl::StrAppend(&text, " ", kCgroupResourceNames[i], "=", cur[i]);
      }
      text += "\n";
    }
  }
  return {0, json ? absl::StrCat("[", absl::StrJoin(rows, ","), "]\n") : text};
}

AdminResult CgroupSet(const AdminContext& ctx, const proto::AdminCommand& cmd) {
  absl::StatusOr<std::string> path = NormalizeCgroupPath(cmd.name);
  if (!path.ok()) return Fail(EINVAL, std::string(path.status().message()));
  // As rdma.max, only for a device there is (the kernel answers ENODEV).
  if (!ctx.registry->FindVdev(cmd.dev)) return NoDevice(ctx, cmd.dev, "cgroup set");
  CgroupLimits& limits = ctx.registry->cgroup_limits();
  // Limits not named keep their value, as a write of part of a line to rdma.max.
  CgroupCounts max = limits.Max(*path, cmd.dev);
  for (const auto& [name, value] : cmd.cgroup_limits) {
    absl::StatusOr<uint64_t> v = ParseCgroupLimit(value);
    if (!v.ok()) return Fail(EINVAL, std::string(v.status().message()));
    for (size_t i = 0; i < kCgroupResourceCount; ++i) {
      if (name == kCgroupResourceNames[i]) max[i] = *v;
    }
  }
  limits.Set(*path, cmd.dev, max);
  return {0, ""};
}

AdminResult CgroupDel(const AdminContext& ctx, const proto::AdminCommand& cmd) {
  absl::StatusOr<std::string> path = NormalizeCgroupPath(cmd.name);
  if (!path.ok()) return Fail(EINVAL, std::string(path.status().message()));
  if (!ctx.registry->cgroup_limits().Del(*path, cmd.dev)) {
    return Fail(ENOENT, absl::StrCat("no limits for cgroup ", *path,
                                     cmd.dev.empty() ? "" : absl::StrCat(" on ", cmd.dev)));
  }
  return {0, ""};
}

AdminResult RunAdmin(const AdminContext& ctx, const AdminRequest& request) {
  // The request's descriptor: DevAdd takes it; any other way out closes it.
  struct FdOwner {
    int fd;
    ~FdOwner() {
      if (fd >= 0) close(fd);
    }
    int Take() { return std::exchange(fd, -1); }
  } netns_fd{request.netns_fd};
  proto::AdminCommand cmd;
  proto::AdminParseResult parsed = proto::ParseAdminCommand(request.words, &cmd);
  if (parsed.result != proto::AdminParse::kOk) return Refused(parsed);
  bool json = request.json;
  bool changes = cmd.op == proto::AdminOp::kDevAdd || cmd.op == proto::AdminOp::kDevDel ||
                 cmd.op == proto::AdminOp::kDevSet;
  if ((cmd.op == proto::AdminOp::kCgroupSet || cmd.op == proto::AdminOp::kCgroupDel) &&
      !ctx.may_change) {
    return Fail(EPERM,
                "cgroup set/del: operation not permitted (needs root or the admin group, "
                "as connected)");
  }
  if (changes && !ctx.may_change) {
    const char* verb = cmd.op == proto::AdminOp::kDevAdd   ? "add"
                       : cmd.op == proto::AdminOp::kDevDel ? "del"
                                                           : "set";
    return Fail(
        EPERM,
        absl::StrCat("dev ", verb,
                     ": operation not permitted (needs root or the admin group, as connected)"));
  }
  AdminResult r;
  switch (cmd.op) {
    case proto::AdminOp::kPdevShow:
      r = PdevShow(ctx, cmd.name, json);
      break;
    case proto::AdminOp::kDevShow:
      r = DevShow(ctx, cmd.name, json);
      break;
    case proto::AdminOp::kDevAdd:
      r = DevAdd(ctx, cmd, json, netns_fd.Take());
      break;
    case proto::AdminOp::kDevDel:
      r = DevDel(ctx, cmd.name);
      break;
    case proto::AdminOp::kDevSet:
      r = DevSet(ctx, cmd, json);
      break;
    case proto::AdminOp::kResShow:
      r = ResShow(ctx, cmd, json);
      break;
    case proto::AdminOp::kStatShow:
      r = StatShow(ctx, cmd.name, json);
      break;
    case proto::AdminOp::kCgroupShow:
      r = CgroupShow(ctx, cmd.name, json);
      break;
    case proto::AdminOp::kCgroupSet:
      r = CgroupSet(ctx, cmd);
      break;
    case proto::AdminOp::kCgroupDel:
      r = CgroupDel(ctx, cmd);
      break;
  }
  if (r.status == 0 && json && request.pretty) r.text = PrettyJson(r.text);
  return r;
}

AdminResult RunAdmin(const AdminContext& ctx, std::span<const std::string> words, bool json) {
  AdminRequest request;
  request.words.assign(words.begin(), words.end());
  request.json = json;
  return RunAdmin(ctx, request);
}

}  // namespace vrdma::vdev
