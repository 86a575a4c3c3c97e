#include "vdev/protocol/admin_call.h"

#include <string.h>
#include <unistd.h>

#include <cstring>

#include "vdev/protocol/channel.h"

namespace vrdma::proto {

int CallAdmin(const std::vector<std::string>& words, bool json, AdminReply* out,
              const std::string& socket_path) {
  std::vector<char> req(sizeof(AdminRequest));
  AdminRequest head{json ? kAdminJson : 0u, static_cast<uint32_t>(words.size())};
  std::memcpy(req.data(), &head, sizeof head);
  for (const std::string& w : words) req.insert(req.end(), w.c_str(), w.c_str() + w.size() + 1);
  int sock = ConnectToSocket(socket_path.empty() ? SocketPath() : socket_path);
  if (sock < 0) return -sock;
  Message reply;
  int err = Call(sock, Op::kAdmin, req.data(), req.size(), nullptr, 0, &reply);
  close(sock);
  if (err) return err;
  const char* text = reinterpret_cast<const char*>(reply.payload.data());
  out->status = reply.header.status;
  out->text.assign(text, strnlen(text, reply.payload.size()));
  return 0;
}

}  // namespace vrdma::proto
