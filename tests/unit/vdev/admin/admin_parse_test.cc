// The admin command grammar (vdev/protocol/admin_call.h), the daemon's decoding of an admin
// request, pretty JSON and pdev node GUIDs: no daemon, no namespace, no root.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>

#include "vdev/admin.h"
#include "vdev/protocol/admin_call.h"
#include "vdev/registry.h"

namespace vrdma::vdev {
namespace {

using proto::AdminCommand;
using proto::AdminOp;
using proto::AdminParse;

uint64_t Quantity(std::string_view s) {
  uint64_t n = 0;
  std::string error;
  EXPECT_EQ(proto::ParseQuantity(s, &n, &error), 0) << s << ": " << error;
  return n;
}

int QuantityError(std::string_view s, std::string* error) {
  uint64_t n = 12345;
  int err = proto::ParseQuantity(s, &n, error);
  EXPECT_EQ(n, 12345u) << s << ": a refused value is not written";
  return err;
}

TEST(ParseQuantity, SuffixesAreBinary) {
  EXPECT_EQ(Quantity("0"), 0u);
  EXPECT_EQ(Quantity("16"), 16u);
  EXPECT_EQ(Quantity("1G"), 1073741824u);
  EXPECT_EQ(Quantity("1GiB"), 1073741824u);
  EXPECT_EQ(Quantity("1GB"), 1073741824u);
  EXPECT_EQ(Quantity("1g"), 1073741824u);
  EXPECT_EQ(Quantity("4K"), 4096u);
  EXPECT_EQ(Quantity("4k"), 4096u);
  EXPECT_EQ(Quantity("3M"), 3u << 20);
  EXPECT_EQ(Quantity("2T"), 2ull << 40);
  EXPECT_EQ(Quantity("4096B"), 4096u);
  EXPECT_EQ(Quantity("18446744073709551615"), UINT64_MAX);
  EXPECT_EQ(Quantity("16777215T"), 16777215ull << 40);
}

TEST(ParseQuantity, RefusesNegativeOverflowAndGarbage) {
  std::string error;
  EXPECT_EQ(QuantityError("-1", &error), EINVAL);
  EXPECT_NE(error.find("negative"), std::string::npos) << error;
  EXPECT_EQ(QuantityError("-1G", &error), EINVAL);
  EXPECT_EQ(QuantityError("18446744073709551616", &error), ERANGE);
  EXPECT_NE(error.find("too large"), std::string::npos) << error;
  EXPECT_EQ(QuantityError("16777216T", &error), ERANGE);  // 2^64
  EXPECT_EQ(QuantityError("17179869184G", &error), ERANGE);
  EXPECT_EQ(QuantityError("99999999999999999999999K", &error), ERANGE);
  for (const char* bad : {"", "G", "1.5G", "1X", "1GiBx", "1BB", "1Gi", "0x10", "+1", " 1", "1 "}) {
    EXPECT_EQ(QuantityError(bad, &error), EINVAL) << "'" << bad << "'";
    EXPECT_NE(error.find("K, M, G or T"), std::string::npos) << bad << ": " << error;
  }
}

AdminParse Parse(std::vector<std::string> words, AdminCommand* cmd = nullptr,
                 std::string* error = nullptr) {
  AdminCommand local;
  proto::AdminParseResult r = proto::ParseAdminCommand(words, cmd ? cmd : &local);
  if (error) *error = r.error;
  return r.result;
}

TEST(ParseAdminCommand, UsageAndHelp) {
  EXPECT_EQ(Parse({}), AdminParse::kUsage);
  EXPECT_EQ(Parse({"help"}), AdminParse::kHelp);
  EXPECT_EQ(Parse({"dev", "help"}), AdminParse::kHelp);
  EXPECT_EQ(Parse({"res", "help"}), AdminParse::kHelp);
  std::string error;
  EXPECT_EQ(Parse({"frobnicate"}, nullptr, &error), AdminParse::kUsage);
  EXPECT_NE(error.find("unknown object 'frobnicate'"), std::string::npos) << error;
  EXPECT_EQ(Parse({"dev", "frob"}, nullptr, &error), AdminParse::kUsage);
  EXPECT_NE(error.find("'frob' is not a dev command"), std::string::npos) << error;
  EXPECT_EQ(Parse({"pdev", "del", "pdev0"}), AdminParse::kUsage);
  EXPECT_EQ(Parse({"dev", "show", "a", "b"}), AdminParse::kUsage);
  EXPECT_EQ(Parse({"dev", "del"}), AdminParse::kUsage);
  EXPECT_EQ(Parse({"dev", "set", "v", "qp"}), AdminParse::kUsage);
  EXPECT_EQ(Parse({"dev", "set", "v", "bogus", "1"}), AdminParse::kUsage);
  EXPECT_EQ(Parse({"link", "set", "v", "qp", "1"}), AdminParse::kUsage);
  // The usage names every command and option.
  std::string usage = proto::AdminUsage();
  for (const char* s :
       {"pdev show", "dev add", "dev del", "dev set", "link add", "link show", "link del",
        "res show", "stat show", "pci bind", "-s/--socket", "-j", "-p", "mr_bytes"}) {
    EXPECT_NE(usage.find(s), std::string::npos) << s;
  }
}

TEST(ParseAdminCommand, Quotas) {
  AdminCommand cmd;
  std::string error;
  ASSERT_EQ(Parse({"dev", "set", "v", "mr_bytes", "1G", "qp", "16"}, &cmd), AdminParse::kOk);
  EXPECT_EQ(cmd.op, AdminOp::kDevSet);
  EXPECT_EQ(cmd.name, "v");
  ASSERT_EQ(cmd.quotas.size(), 2u);
  EXPECT_EQ(cmd.quotas[0], std::make_pair(std::string("mr_bytes"), uint64_t{1073741824}));
  EXPECT_EQ(cmd.quotas[1], std::make_pair(std::string("qp"), uint64_t{16}));
  EXPECT_EQ(Parse({"dev", "set", "x", "qp", "-1"}, &cmd, &error), AdminParse::kBadValue);
  EXPECT_NE(error.find("negative"), std::string::npos) << error;
  EXPECT_NE(error.find("qp"), std::string::npos) << error;
  EXPECT_EQ(Parse({"dev", "set", "x", "qp", "12x"}, &cmd, &error), AdminParse::kBadValue);
  EXPECT_EQ(Parse({"dev", "set", "x", "mr_bytes", "99999999999T"}, &cmd, &error),
            AdminParse::kBadValue);
  EXPECT_NE(error.find("too large"), std::string::npos) << error;
  EXPECT_EQ(Parse({"dev", "set", "x", "qp", "1", "qp", "2"}, &cmd, &error), AdminParse::kBadValue);
  EXPECT_NE(error.find("twice"), std::string::npos) << error;
  cmd = AdminCommand{};
  ASSERT_EQ(Parse({"dev", "set", "x", "roce_mode", "v1"}, &cmd), AdminParse::kOk);
  EXPECT_EQ(cmd.roce_mode, "v1");
  EXPECT_EQ(Parse({"dev", "set", "x", "roce_mode", "2"}, &cmd, &error), AdminParse::kBadValue);
  EXPECT_NE(error.find("v1 or v2"), std::string::npos) << error;
  cmd = AdminCommand{};
  ASSERT_EQ(Parse({"dev", "set", "x", "spoofchk", "off"}, &cmd), AdminParse::kOk);
  EXPECT_EQ(cmd.spoofchk, "off");
  EXPECT_EQ(Parse({"dev", "set", "x", "spoofchk", "no"}, &cmd, &error), AdminParse::kBadValue);
  EXPECT_NE(error.find("on or off"), std::string::npos) << error;
}

TEST(ParseAdminCommand, NamesFollowTheKernelRule) {
  EXPECT_TRUE(proto::IsValidDeviceName("vdev_a"));
  EXPECT_TRUE(proto::IsValidDeviceName(std::string(63, 'x')));
  EXPECT_TRUE(ValidDeviceName("mlx5_0"));  // the registry's rule is the same one
  for (std::string bad :
       {std::string(), std::string(64, 'x'), std::string("a/b"), std::string("a b"),
        std::string("a\tb"), std::string("a%d"), std::string("\x7f"), std::string("caf\xc3\xa9")}) {
    EXPECT_FALSE(proto::IsValidDeviceName(bad)) << bad;
    EXPECT_FALSE(ValidDeviceName(bad)) << bad;
    AdminCommand cmd;
    std::string error;
    EXPECT_EQ(Parse({"dev", "add", bad, "netdev", "eth0"}, &cmd, &error), AdminParse::kBadValue)
        << bad;
    EXPECT_NE(error.find("invalid device name '" + bad + "'"), std::string::npos) << error;
    EXPECT_NE(error.find("1 to 63 printable characters, without '/', '%' or whitespace"),
              std::string::npos)
        << error;
  }
}

TEST(ParseAdminCommand, LinkIsDev) {
  AdminCommand cmd;
  std::string error;
  ASSERT_EQ(Parse({"link", "add", "v", "type", "vrdma", "netdev", "eth0"}, &cmd), AdminParse::kOk);
  EXPECT_EQ(cmd.op, AdminOp::kDevAdd);
  EXPECT_EQ(cmd.name, "v");
  EXPECT_EQ(cmd.netdev, "eth0");
  EXPECT_EQ(cmd.pdev, "");  // the daemon picks
  ASSERT_EQ(Parse({"link", "add", "v", "type", "vrdma", "netdev", "eth0", "pdev", "p1"}, &cmd),
            AdminParse::kOk);
  EXPECT_EQ(cmd.pdev, "p1");
  ASSERT_EQ(Parse({"dev", "add", "v", "pdev", "p1", "netdev", "eth0"}, &cmd), AdminParse::kOk);
  EXPECT_EQ(cmd.pdev, "p1");
  EXPECT_EQ(cmd.netdev, "eth0");
  EXPECT_EQ(Parse({"link", "add", "v", "netdev", "eth0"}, &cmd, &error), AdminParse::kUsage);
  EXPECT_NE(error.find("type vrdma"), std::string::npos) << error;
  EXPECT_EQ(Parse({"link", "add", "v", "type", "rxe", "netdev", "eth0"}, &cmd, &error),
            AdminParse::kBadValue);
  EXPECT_EQ(Parse({"link", "add", "v", "type", "vrdma"}, &cmd, &error), AdminParse::kUsage);
  EXPECT_NE(error.find("netdev IFACE is missing"), std::string::npos) << error;
  EXPECT_EQ(Parse({"dev", "add", "v", "netdev", "a", "netdev", "b"}, &cmd), AdminParse::kUsage);
  EXPECT_EQ(Parse({"dev", "add", "v", "netdev"}, &cmd), AdminParse::kUsage);
  ASSERT_EQ(Parse({"link", "show", "v/1"}, &cmd), AdminParse::kOk);
  EXPECT_EQ(cmd.op, AdminOp::kDevShow);
  EXPECT_EQ(cmd.name, "v");
  EXPECT_EQ(Parse({"link", "show", "v/2"}, &cmd, &error), AdminParse::kBadValue);
  EXPECT_NE(error.find("port 1 only"), std::string::npos) << error;
  ASSERT_EQ(Parse({"link"}, &cmd), AdminParse::kOk);
  EXPECT_EQ(cmd.op, AdminOp::kDevShow);
  EXPECT_EQ(cmd.name, "");
  ASSERT_EQ(Parse({"link", "del", "v"}, &cmd), AdminParse::kOk);
  EXPECT_EQ(cmd.op, AdminOp::kDevDel);
}

TEST(ParseAdminCommand, ResShow) {
  AdminCommand cmd;
  ASSERT_EQ(Parse({"res", "show"}, &cmd), AdminParse::kOk);
  EXPECT_EQ(cmd.op, AdminOp::kResShow);
  EXPECT_EQ(cmd.res_type, "");
  ASSERT_EQ(Parse({"res", "show", "v"}, &cmd), AdminParse::kOk);
  EXPECT_EQ(cmd.name, "v");
  EXPECT_EQ(cmd.res_type, "");
  ASSERT_EQ(Parse({"res", "show", "dev", "qp"}, &cmd), AdminParse::kOk);  // a vdev named qp
  EXPECT_EQ(cmd.name, "qp");
  EXPECT_EQ(cmd.res_type, "");
  for (const char* type : proto::kResTypes) {
    ASSERT_EQ(Parse({"res", "show", type}, &cmd), AdminParse::kOk) << type;
    EXPECT_EQ(cmd.res_type, type);
    EXPECT_EQ(cmd.name, "");
  }
  ASSERT_EQ(Parse({"res", "show", "qp", "dev", "v"}, &cmd), AdminParse::kOk);
  EXPECT_EQ(cmd.res_type, "qp");
  EXPECT_EQ(cmd.name, "v");
  EXPECT_EQ(Parse({"res", "show", "qp", "v"}), AdminParse::kUsage);
  EXPECT_EQ(Parse({"res", "show", "qp", "dev"}), AdminParse::kUsage);
  EXPECT_EQ(Parse({"res", "show", "a", "b"}), AdminParse::kUsage);
}

TEST(ParseAdminCommand, CanonicalWordsParseBack) {
  const std::vector<std::vector<std::string>> commands = {
      {"pdev"},
      {"pdev", "show", "p"},
      {"dev"},
      {"dev", "show", "v"},
      {"link", "add", "v", "type", "vrdma", "netdev", "e"},
      {"dev", "add", "v", "pdev", "p", "netdev", "e"},
      {"link", "del", "v/1"},
      {"dev", "set", "v", "mr_bytes", "2G", "ah", "7"},
      {"dev", "set", "v", "roce_mode", "v1"},
      {"dev", "set", "v", "spoofchk", "off"},
      {"res"},
      {"res", "show", "dev", "qp"},
      {"res", "show", "mr", "dev", "v"},
      {"res", "show", "cq"},
      {"stat", "show", "v"},
  };
  for (const auto& words : commands) {
    AdminCommand a, b;
    ASSERT_EQ(Parse(words, &a), AdminParse::kOk) << words[0];
    std::vector<std::string> canonical = proto::AdminCommandWords(a);
    ASSERT_EQ(Parse(canonical, &b), AdminParse::kOk) << canonical.size();
    EXPECT_EQ(a.op, b.op);
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.pdev, b.pdev);
    EXPECT_EQ(a.netdev, b.netdev);
    EXPECT_EQ(a.quotas, b.quotas);
    EXPECT_EQ(a.res_type, b.res_type);
    EXPECT_EQ(a.roce_mode, b.roce_mode);
    EXPECT_EQ(a.spoofchk, b.spoofchk);
  }
}

// ---- DecodeAdminRequest ----

proto::Message AdminMessage(uint32_t flags, uint32_t nwords, std::string_view body,
                            uint16_t op = static_cast<uint16_t>(proto::Op::kAdmin)) {
  proto::Message m;
  m.header.magic = proto::kMagic;
  m.header.version = proto::kVersion;
  m.header.op = op;
  proto::AdminRequest head{flags, nwords};
  m.payload.resize(sizeof head);
  std::memcpy(m.payload.data(), &head, sizeof head);
  m.payload.insert(m.payload.end(), body.begin(), body.end());
  m.header.payload_len = static_cast<uint32_t>(m.payload.size());
  return m;
}

TEST(DecodeAdminRequest, Words) {
  using namespace std::string_view_literals;
  auto r = DecodeAdminRequest(AdminMessage(0, 3, "dev\0show\0vdev_a\0"sv));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->words, (std::vector<std::string>{"dev", "show", "vdev_a"}));
  EXPECT_FALSE(r->json);
  EXPECT_FALSE(r->pretty);
  r = DecodeAdminRequest(AdminMessage(proto::kAdminJson | proto::kAdminPretty, 1, "dev\0"sv));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->json);
  EXPECT_TRUE(r->pretty);
  r = DecodeAdminRequest(AdminMessage(proto::kAdminPretty, 1, "dev\0"sv));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->json);
  EXPECT_FALSE(r->pretty);  // pretty is a kind of JSON
  r = DecodeAdminRequest(AdminMessage(0, 0, ""));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->words.empty());
  r = DecodeAdminRequest(
      AdminMessage(0, 2, "\0\0"sv));  // empty words decode (and are refused later)
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->words, (std::vector<std::string>{"", ""}));
  // The most words there may be.
  std::string body;
  for (uint32_t i = 0; i < kMaxAdminWords; ++i) body += std::string("w") + '\0';
  r = DecodeAdminRequest(AdminMessage(0, kMaxAdminWords, body));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->words.size(), kMaxAdminWords);
}

TEST(DecodeAdminRequest, MalformedIsAnError) {
  using namespace std::string_view_literals;
  auto invalid = [](const proto::Message& m, std::string_view what) {
    auto r = DecodeAdminRequest(m);
    ASSERT_FALSE(r.ok()) << what;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << what;
    EXPECT_NE(std::string(r.status().message()).find(what), std::string::npos) << r.status();
  };
  proto::Message shortmsg;
  shortmsg.header.op = static_cast<uint16_t>(proto::Op::kAdmin);
  shortmsg.payload = {1, 0, 0};
  invalid(shortmsg, "shorter than its header");
  invalid(AdminMessage(0, 1, "dev"), "not NUL-terminated");     // no terminator
  invalid(AdminMessage(0, 3, "dev\0show\0"sv), "word 3 of 3");  // fewer words than said
  invalid(AdminMessage(0, 1, "dev\0show\0"sv), "bytes after");  // more than said
  invalid(AdminMessage(0, 1, "dev\0x"sv), "bytes after");
  invalid(AdminMessage(0, kMaxAdminWords + 1, std::string(200, '\0')), "at most 64");
  invalid(AdminMessage(0, 0xffffffffu, ""), "at most 64");
  invalid(AdminMessage(0x80, 1, "dev\0"sv), "unknown flags");
  invalid(AdminMessage(0, 1, "dev\0"sv, static_cast<uint16_t>(proto::Op::kListDevices)),
          "not an admin request");
}

// ---- output ----

TEST(PrettyJson, IndentsAsIproute2) {
  EXPECT_EQ(PrettyJson("[]\n"), "[]\n");
  EXPECT_EQ(PrettyJson("[{\"a\":1,\"b\":[],\"c\":\"x,{\\\"y\\\"}: [z]\",\"d\":{\"e\":[1,2]}}]\n"),
            "[\n"
            "    {\n"
            "        \"a\": 1,\n"
            "        \"b\": [],\n"
            "        \"c\": \"x,{\\\"y\\\"}: [z]\",\n"
            "        \"d\": {\n"
            "            \"e\": [\n"
            "                1,\n"
            "                2\n"
            "            ]\n"
            "        }\n"
            "    }\n"
            "]\n");
}

// ---- node GUIDs of pdevs ----

std::string GuidText(uint64_t be) {
  uint8_t b[8];
  std::memcpy(b, &be, 8);
  char s[40];
  std::snprintf(s, sizeof s, "%02x%02x:%02x%02x:%02x%02x:%02x%02x", b[0], b[1], b[2], b[3], b[4],
                b[5], b[6], b[7]);
  return s;
}

TEST(PdevNodeGuid, FromThePortMacNotAVdevsOnIt) {
  // EUI-64 with ff:fe in the middle, the U/L bit as in the MAC: a vdev bound to the port's
  // interface has the modified EUI-64 (U/L flipped, 5054:00ff:fe12:3456), and librdmacm
  // would take one for the other. The rest of the inputs do not matter.
  EXPECT_EQ(GuidText(PdevNodeGuid({0x52, 0x54, 0x00, 0x12, 0x34, 0x56}, "m1", "d", "pdev1")),
            "5254:00ff:fe12:3456");
  EXPECT_EQ(PdevNodeGuid({0x52, 0x54, 0x00, 0x12, 0x34, 0x56}, "m1", "d", "pdev1"),
            PdevNodeGuid({0x52, 0x54, 0x00, 0x12, 0x34, 0x56}, "m2", "e", "pdev2"));
}

TEST(PdevNodeGuid, WithoutAMacUniquePerMachineAndDaemonStablePerHost) {
  const std::array<uint8_t, 6> none{};
  uint64_t a = PdevNodeGuid(none, "0123456789abcdef0123456789abcdef", "/run/dpdk/rte", "pdev1");
  EXPECT_EQ(a, PdevNodeGuid(none, "0123456789abcdef0123456789abcdef", "/run/dpdk/rte", "pdev1"));
  EXPECT_NE(a, PdevNodeGuid(none, "fedcba9876543210fedcba9876543210", "/run/dpdk/rte", "pdev1"));
  EXPECT_NE(a, PdevNodeGuid(none, "0123456789abcdef0123456789abcdef", "/run/dpdk/hB", "pdev1"));
  EXPECT_NE(a, PdevNodeGuid(none, "0123456789abcdef0123456789abcdef", "/run/dpdk/rte", "pdev2"));
  // Not the old name-derived GUID, and EUI-64 shaped from a locally administered unicast MAC
  // (whose U/L bit, flipped, reads 0).
  std::string text = GuidText(a);
  EXPECT_NE(text.substr(0, 10), "0076:72ff:");
  EXPECT_EQ(text.substr(7, 5), "ff:fe") << text;
  uint8_t first;
  std::memcpy(&first, &a, 1);
  EXPECT_EQ(first & 0x03, 0) << text;
  EXPECT_FALSE(MachineId().empty());
}

}  // namespace
}  // namespace vrdma::vdev
