#include "cm/ucma_requests.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "cm/route.h"
#include "vdev/client_fd.h"
#include "vdev/log.h"
#include "vdev/session.h"

namespace vrdma::cm {

namespace {

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(ts.tv_nsec);
}

// One command's bytes as the client sent them.
struct CommandIn {
  const uint8_t* data;
  size_t len;
  // The command struct: the bytes given, zero beyond them (an older librdmacm writes
  // shorter structs; ucma copies what the header says).
  template <typename T>
  T As() const {
    T v{};
    std::memcpy(&v, data, std::min(len, sizeof v));
    return v;
  }
};

template <typename T>
void Respond(vdev::Reply* reply, const T& resp, uint32_t out_len, uint32_t flags = 0) {
  size_t n = std::min<size_t>(out_len, sizeof resp);
  proto::CmCommandReply head{static_cast<uint32_t>(n), flags};
  reply->payload.resize(sizeof head + n);
  std::memcpy(reply->payload.data(), &head, sizeof head);
  std::memcpy(reply->payload.data() + sizeof head, &resp, n);
}

void RespondEmpty(vdev::Reply* reply, uint32_t flags = 0) {
  proto::CmCommandReply head{0, flags};
  reply->payload.resize(sizeof head);
  std::memcpy(reply->payload.data(), &head, sizeof head);
}

sockaddr_storage FromIn6(const sockaddr_in6& a) {
  sockaddr_storage ss{};
  std::memcpy(&ss, &a, sizeof a);
  return ss;
}

}  // namespace

void UcmaRequests::Handle(vdev::Session& client, proto::Message& msg, vdev::Reply* reply) {
  switch (static_cast<proto::Op>(msg.header.op)) {
    case proto::Op::kCmOpen:
      Open(client, msg, reply);
      return;
    case proto::Op::kCmCommand:
      Command(client, msg, reply);
      return;
    default:
      reply->status = EOPNOTSUPP;
  }
}

void UcmaRequests::Open(vdev::Session& client, proto::Message& msg, vdev::Reply* reply) {
  if (msg.fd_count() != 1) {
    reply->status = EINVAL;
    return;
  }
  int fd = msg.TakeFd(0);
  if (int err = vdev::CheckEventChannel(fd)) {
    close(fd);
    reply->status = err;
    return;
  }
  absl::StatusOr<uint64_t> token = cm_->OpenFile(client, fd);
  if (!token.ok()) {
    close(fd);
    reply->status = EBUSY;
    return;
  }
  proto::CmOpenReply out{*token};
  reply->payload.resize(sizeof out);
  std::memcpy(reply->payload.data(), &out, sizeof out);
}

void UcmaRequests::Command(vdev::Session& client, const proto::Message& msg, vdev::Reply* reply) {
  UcmaFile* file = cm_->FileOf(client);
  proto::CmCommand head;
  if (!file || !msg.Copy(&head) || head.in_len > proto::kCmMaxCommand ||
      head.out_len > proto::kCmMaxCommand || msg.payload.size() < sizeof head + head.in_len ||
      msg.payload.size() > sizeof head + head.in_len + proto::kCmMaxCommand) {
    vdev::Log(vdev::LogLevel::kDebug, "cm_command_refused",
              std::string("reason=") + (file ? "malformed" : "not_a_cm_file") +
                  " pid=" + std::to_string(client.pid()));
    reply->status = EINVAL;
    return;
  }
  const CommandIn in{msg.payload.data() + sizeof head, head.in_len};
  // SET_OPTION's value follows the command (the client library copied it from optval).
  const uint8_t* extra = in.data + in.len;
  const size_t extra_len = msg.payload.size() - sizeof head - head.in_len;
  const uint32_t out_len = head.out_len;
  const uint64_t now = NowNs();
  // The ID a command names, in this file only (ucma_get_ctx).
  auto find = [&](uint32_t handle) -> CmId* { return file->Find(handle); };
  int err = 0;
  switch (head.cmd) {
    case RDMA_USER_CM_CMD_CREATE_ID: {
      auto c = in.As<rdma_ucm_create_id>();
      if (out_len < sizeof(rdma_ucm_create_id_resp)) {
        err = ENOSPC;
        break;
      }
      rdma_ucm_create_id_resp resp{};
      err = cm_->CreateId(*file, c.uid, c.ps, c.qp_type, &resp.id);
      if (!err) Respond(reply, resp, out_len);
      break;
    }
    case RDMA_USER_CM_CMD_DESTROY_ID:
    case RDMA_USER_CM_CMD_LEAVE_MCAST: {  // the same command and answer (ucma.c)
      auto c = in.As<rdma_ucm_destroy_id>();
      if (out_len < sizeof(rdma_ucm_destroy_id_resp)) {
        err = ENOSPC;
        break;
      }
      rdma_ucm_destroy_id_resp resp{};
      bool drained = false;
      err = head.cmd == RDMA_USER_CM_CMD_DESTROY_ID
                ? cm_->DestroyId(*file, c.id, &resp.events_reported, &drained)
                : cm_->LeaveMulticast(*file, c.id, &resp.events_reported, &drained);
      if (!err) Respond(reply, resp, out_len, drained ? proto::kCmQueueDrained : 0);
      break;
    }
    case RDMA_USER_CM_CMD_BIND_IP: {
      auto c = in.As<rdma_ucm_bind_ip>();
      CmId* id = find(c.id);
      sockaddr_storage addr = FromIn6(c.addr);
      if (!id)
        err = ENOENT;
      else if (!(err = CheckSockaddr(addr, sizeof c.addr)))
        err = cm_->Bind(*id, addr);
      if (!err) RespondEmpty(reply);
      break;
    }
    case RDMA_USER_CM_CMD_BIND: {
      auto c = in.As<rdma_ucm_bind>();
      CmId* id = find(c.id);
      sockaddr_storage addr{};
      std::memcpy(&addr, &c.addr, sizeof addr);
      if (!id)
        err = ENOENT;
      else if (!(err = CheckSockaddr(addr, c.addr_size)))
        err = cm_->Bind(*id, addr);
      if (!err) RespondEmpty(reply);
      break;
    }
    case RDMA_USER_CM_CMD_RESOLVE_IP: {
      auto c = in.As<rdma_ucm_resolve_ip>();
      CmId* id = find(c.id);
      sockaddr_storage src = FromIn6(c.src_addr), dst = FromIn6(c.dst_addr);
      if (!id)
        err = ENOENT;
      else if (src.ss_family && (err = CheckSockaddr(src, sizeof c.src_addr)))
        break;
      else if (!(err = CheckSockaddr(dst, sizeof c.dst_addr)))
        err = cm_->ResolveAddr(*id, src.ss_family ? &src : nullptr, dst, c.timeout_ms, now);
      if (!err) RespondEmpty(reply);
      break;
    }
    case RDMA_USER_CM_CMD_RESOLVE_ADDR: {
      auto c = in.As<rdma_ucm_resolve_addr>();
      CmId* id = find(c.id);
      sockaddr_storage src{}, dst{};
      std::memcpy(&src, &c.src_addr, sizeof src);
      std::memcpy(&dst, &c.dst_addr, sizeof dst);
      if (!id)
        err = ENOENT;
      else if (c.src_size && (err = CheckSockaddr(src, c.src_size)))
        break;
      else if (!(err = CheckSockaddr(dst, c.dst_size)))
        err = cm_->ResolveAddr(*id, c.src_size ? &src : nullptr, dst, c.timeout_ms, now);
      if (!err) RespondEmpty(reply);
      break;
    }
    case RDMA_USER_CM_CMD_RESOLVE_ROUTE: {
      auto c = in.As<rdma_ucm_resolve_route>();
      CmId* id = find(c.id);
      err = id ? cm_->ResolveRoute(*id) : ENOENT;
      if (!err) RespondEmpty(reply);
      break;
    }
    case RDMA_USER_CM_CMD_QUERY_ROUTE: {
      auto c = in.As<rdma_ucm_query>();
      CmId* id = find(c.id);
      rdma_ucm_query_route_resp resp;
      err = id ? cm_->QueryRoute(*id, &resp) : ENOENT;
      if (!err) Respond(reply, resp, out_len);
      break;
    }
    case RDMA_USER_CM_CMD_QUERY: {
      auto c = in.As<rdma_ucm_query>();
      CmId* id = find(c.id);
      if (!id) {
        err = ENOENT;
      } else if (c.option == RDMA_USER_CM_QUERY_ADDR) {
        rdma_ucm_query_addr_resp resp;
        err = cm_->QueryAddr(*id, &resp);
        if (!err) Respond(reply, resp, out_len);
      } else {
        err = ENOSYS;  // QUERY_PATH and QUERY_GID serve AF_IB, which vdevs do not offer
      }
      break;
    }
    case RDMA_USER_CM_CMD_CONNECT: {
      auto c = in.As<rdma_ucm_connect>();
      CmId* id = find(c.id);
      if (!id)
        err = ENOENT;
      else if (!c.conn_param.valid)
        err = EINVAL;
      else
        err = cm_->Connect(*id, c.conn_param, now);
      if (!err) RespondEmpty(reply);
      break;
    }
    case RDMA_USER_CM_CMD_LISTEN: {
      auto c = in.As<rdma_ucm_listen>();
      CmId* id = find(c.id);
      err = id ? cm_->Listen(*id, static_cast<int>(c.backlog)) : ENOENT;
      if (!err) RespondEmpty(reply);
      break;
    }
    case RDMA_USER_CM_CMD_ACCEPT: {
      auto c = in.As<rdma_ucm_accept>();
      CmId* id = find(c.id);
      err = id ? cm_->Accept(*id, c.uid, c.conn_param, c.conn_param.valid != 0, now) : ENOENT;
      if (!err) RespondEmpty(reply);
      break;
    }
    case RDMA_USER_CM_CMD_REJECT: {
      auto c = in.As<rdma_ucm_reject>();
      CmId* id = find(c.id);
      if (!id)
        err = ENOENT;
      else
        err = cm_->Reject(*id, c.reason, c.private_data, c.private_data_len);
      if (!err) RespondEmpty(reply);
      break;
    }
    case RDMA_USER_CM_CMD_DISCONNECT: {
      auto c = in.As<rdma_ucm_disconnect>();
      CmId* id = find(c.id);
      err = id ? cm_->Disconnect(*id, now) : ENOENT;
      if (!err) RespondEmpty(reply);
      break;
    }
    case RDMA_USER_CM_CMD_INIT_QP_ATTR: {
      auto c = in.As<rdma_ucm_init_qp_attr>();
      CmId* id = find(c.id);
      if (out_len < sizeof(ib_uverbs_qp_attr)) {
        err = ENOSPC;
        break;
      }
      ib_uverbs_qp_attr resp;
      err = id ? cm_->InitQpAttr(*id, c.qp_state, &resp) : ENOENT;
      if (err && id) {
        vdev::Log(vdev::LogLevel::kDebug, "cm_init_qp_attr_refused",
                  "qp_state=" + std::to_string(c.qp_state) + " id_state=" + IdStateName(id->state) +
                      " conn=" + std::to_string(static_cast<int>(id->conn)));
      }
      if (!err) Respond(reply, resp, out_len);
      break;
    }
    case RDMA_USER_CM_CMD_GET_EVENT: {
      if (out_len < sizeof(rdma_ucm_event_resp)) {
        err = ENOSPC;
        break;
      }
      rdma_ucm_event_resp resp;
      bool drained = false;
      // Never waits: the client library waits on its channel and asks again.
      if (!file->Dequeue(&resp, &drained)) {
        err = EAGAIN;
        break;
      }
      Respond(reply, resp, out_len, drained ? proto::kCmQueueDrained : 0);
      break;
    }
    case RDMA_USER_CM_CMD_SET_OPTION: {
      auto c = in.As<rdma_ucm_set_option>();
      CmId* id = find(c.id);
      if (extra_len != c.optlen)
        err = EINVAL;
      else
        err = id ? cm_->SetOption(*id, c.level, c.optname, extra, c.optlen) : ENOENT;
      if (!err) RespondEmpty(reply);
      break;
    }
    case RDMA_USER_CM_CMD_NOTIFY: {
      auto c = in.As<rdma_ucm_notify>();
      err = find(c.id) ? 0 : ENOENT;
      if (!err) RespondEmpty(reply);
      break;
    }
    case RDMA_USER_CM_CMD_MIGRATE_ID: {
      auto c = in.As<rdma_ucm_migrate_id>();
      UcmaFile* from = cm_->FileByToken(head.peer_token);
      // Only between files of one client process (its own channels).
      if (!from || from->session()->peer().pid() != client.peer().pid() ||
          from->session()->peer().uid() != client.peer().uid()) {
        err = EBADF;
        break;
      }
      if (out_len < sizeof(rdma_ucm_migrate_resp)) {
        err = ENOSPC;
        break;
      }
      rdma_ucm_migrate_resp resp{};
      bool drained = false;
      err = cm_->MigrateId(*from, c.id, *file, &resp.events_reported, &drained);
      if (!err) Respond(reply, resp, out_len, drained ? proto::kCmPeerQueueDrained : 0);
      break;
    }
    case RDMA_USER_CM_CMD_JOIN_IP_MCAST:
    case RDMA_USER_CM_CMD_JOIN_MCAST: {
      // ucma_join_ip_multicast is JOIN_MCAST of a full member with the address's size.
      rdma_ucm_join_mcast c{};
      if (head.cmd == RDMA_USER_CM_CMD_JOIN_IP_MCAST) {
        auto ip = in.As<rdma_ucm_join_ip_mcast>();
        c.uid = ip.uid;
        c.id = ip.id;
        c.join_flags = RDMA_MC_JOIN_FLAG_FULLMEMBER;
        const sockaddr_storage a = FromIn6(ip.addr);
        c.addr_size = static_cast<uint16_t>(SockaddrLen(a));
        if (!c.addr_size) {
          err = EINVAL;  // rdma_addr_size_in6: not an IP family
          break;
        }
        std::memcpy(&c.addr, &a, c.addr_size);
      } else {
        c = in.As<rdma_ucm_join_mcast>();
      }
      if (out_len < sizeof(rdma_ucm_create_id_resp)) {
        err = ENOSPC;
        break;
      }
      sockaddr_storage addr{};
      std::memcpy(&addr, &c.addr, sizeof addr);
      // ucma_process_join: the size given must be the family's.
      if ((err = CheckSockaddr(addr, c.addr_size))) break;
      if (c.addr_size != SockaddrLen(addr)) {
        err = EINVAL;
        break;
      }
      CmId* id = find(c.id);
      if (!id) {
        err = ENOENT;
        break;
      }
      rdma_ucm_create_id_resp resp{};
      err = cm_->JoinMulticast(*id, c.uid, addr, c.join_flags, &resp.id);
      if (!err) Respond(reply, resp, out_len);
      break;
    }
    case RDMA_USER_CM_CMD_GET_OPTION:
      err = ENOSYS;
      break;
    default:
      err = EINVAL;  // ucma_write: a command number past its table
  }
  if (err) {
    reply->status = err;
    reply->payload.clear();
    // GET_EVENT's EAGAIN is the normal answer of an empty queue, not a refusal.
    if (!(head.cmd == RDMA_USER_CM_CMD_GET_EVENT && err == EAGAIN)) {
      vdev::Log(vdev::LogLevel::kDebug, "cm_command_refused",
                "cmd=" + std::to_string(head.cmd) + " errno=" + std::to_string(err) + " pid=" +
                    std::to_string(client.pid()) + " comm=" + vdev::LogQuote(client.comm()));
    }
  }
}

}  // namespace vrdma::cm
