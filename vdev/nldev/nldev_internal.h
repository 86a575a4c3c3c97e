// What nldev.cc (dispatch; device, port, statistic and system messages) and nldev_res.cc
// (the resource tables) share.
#pragma once

#include <linux/netlink.h>
#include <rdma/rdma_netlink.h>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vdev/nldev/nl_message.h"
#include "vdev/nldev/nldev.h"

namespace vrdma::vdev::nldev {

// One request: its header and the attributes of the policy's types (nldev.c's
// nldev_policy), lengths checked.
struct Request {
  nlmsghdr hdr{};
  std::span<const uint8_t> message;  // the whole message, for an error's echo
  std::array<std::span<const uint8_t>, RDMA_NLDEV_ATTR_MAX> attrs{};
  std::array<bool, RDMA_NLDEV_ATTR_MAX> present{};

  uint32_t op() const { return RDMA_NL_GET_OP(hdr.nlmsg_type); }
  bool dump() const { return (hdr.nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP; }
  bool has(uint16_t type) const { return type < present.size() && present[type]; }
  uint32_t U32(uint16_t type) const;  // present, so of length 4
  std::string String(uint16_t type) const;
};

// A refusal: the errno the kernel would give, and the extended ACK's message.
struct Failure {
  int err = 0;
  std::string text;
};
using Result = std::optional<Failure>;  // nullopt: answered

struct Device {
  const Vdev* vdev = nullptr;
  const Pdev* pdev = nullptr;
  uint32_t index = 0;
  std::string name;
};

class Nldev {
 public:
  Nldev(const AdminContext& ctx, const Requester& who) : ctx_(ctx), who_(who) {}

  std::vector<std::vector<uint8_t>> Answer(std::span<const uint8_t> datagram);

  // ---- nldev.cc
  std::vector<Device> Devices() const;                     // visible to the requester, by index
  std::optional<Device> DeviceOf(const Request& r) const;  // by DEV_INDEX
  // A message answering `r` (same type and sequence number), with the device's handle.
  NlMessage Start(const Request& r, uint16_t flags, const Device* dev) const;
  // Queues a message, packed with the ones before it into datagrams of kDatagramSize.
  void Emit(std::vector<uint8_t> msg);
  void EndDatagram();
  // Queues the last message of its datagram (a doit's reply, an ACK, a dump's end).
  void EmitLast(NlMessage m);
  bool administrator() const { return ctx_.may_change; }

  // ---- nldev_res.cc
  Result ResSummary(const Request& r);
  Result ResTable(const Request& r);

 private:
  Result One(const Request& r);
  Result DevGet(const Request& r);
  Result PortGet(const Request& r);
  Result StatGet(const Request& r);
  Result SysGet(const Request& r);
  void FillDev(NlAttrs* m, const Device& d) const;
  void FillPort(NlAttrs* m, const Device& d) const;
  void Ack(const Request& r, int err, const std::string& text);
  void Done(const Request& r, int err);

  // nldev_res.cc: the objects of one kind on `d`, each as its entry's attributes.
  struct Entry {
    uint32_t id = 0;
    uint32_t port = 0;  // 0: none (a QP before INIT, an unbound ID)
    std::vector<uint8_t> attrs;
  };
  std::vector<Entry> Entries(uint32_t op, const Device& d);
  // The PID `s`'s process has in the requester's PID namespace; nullopt: the requester
  // may not see it (another user's, or a process its namespace cannot see).
  std::optional<pid_t> PidOf(const Session& s);

  const AdminContext& ctx_;
  const Requester& who_;
  std::vector<std::vector<uint8_t>> out_;
  std::vector<uint8_t> open_;  // the datagram being filled
  std::map<const Session*, std::optional<pid_t>> pids_;
};

}  // namespace vrdma::vdev::nldev
