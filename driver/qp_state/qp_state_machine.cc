#include "driver/qp_state/qp_state_machine.h"

#include "absl/strings/str_cat.h"

namespace vrdma::driver {
namespace {

enum TypeIndex {
  kUd = 0,
  kUc = 1,
  kRc = 2,
  kGsi = 3,
  kXrcSend = 4,
  kXrcRecv = 5,
  kRaw = 6,
  kNumTypes = 7
};
constexpr int kNumStates = IBV_QPS_ERR + 1;

struct Rule {
  bool valid;
  int required[kNumTypes];
  int optional[kNumTypes];
};

int TypeIndexOf(int qp_type) {
  switch (qp_type) {
    case IBV_QPT_UD:
      return kUd;
    case IBV_QPT_UC:
      return kUc;
    case IBV_QPT_RC:
      return kRc;
    case kQpTypeGsi:
      return kGsi;
    case IBV_QPT_XRC_SEND:
      return kXrcSend;
    case IBV_QPT_XRC_RECV:
      return kXrcRecv;
    case IBV_QPT_RAW_PACKET:
      return kRaw;
    default:
      return -1;
  }
}

// Required and optional attributes per transition and service type (IBTA 11.2.4.2
// table 94-99, as Linux's ib_modify_qp_is_ok() encodes them). Order: UD, UC, RC, GSI,
// XRC send (the requester half, Linux's XRC_INI), XRC receive (the responder, XRC_TGT),
// raw packet (a port only; no SQD, no SQE: Linux's IB_QPT_RAW_PACKET entries).
struct Table {
  Rule r[kNumStates][kNumStates] = {};
  constexpr Table() {
    constexpr int P = IBV_QP_PKEY_INDEX, PORT = IBV_QP_PORT, Q = IBV_QP_QKEY,
                  ACC = IBV_QP_ACCESS_FLAGS, AV = IBV_QP_AV, MTU = IBV_QP_PATH_MTU,
                  DQPN = IBV_QP_DEST_QPN, RQPSN = IBV_QP_RQ_PSN, MDRA = IBV_QP_MAX_DEST_RD_ATOMIC,
                  MRNR = IBV_QP_MIN_RNR_TIMER, ALT = IBV_QP_ALT_PATH, TO = IBV_QP_TIMEOUT,
                  RETRY = IBV_QP_RETRY_CNT, RNR = IBV_QP_RNR_RETRY, SQPSN = IBV_QP_SQ_PSN,
                  MRA = IBV_QP_MAX_QP_RD_ATOMIC, CUR = IBV_QP_CUR_STATE,
                  MIG = IBV_QP_PATH_MIG_STATE, SQDN = IBV_QP_EN_SQD_ASYNC_NOTIFY;
    // Every state may go to RESET or ERR with no attributes (IBTA 10.3.1).
    for (int s = 0; s < kNumStates; ++s) {
      r[s][IBV_QPS_RESET] = Rule{true, {}, {}};
      r[s][IBV_QPS_ERR] = Rule{true, {}, {}};
    }
    constexpr int kRcRtr = AV | MTU | DQPN | RQPSN | MDRA | MRNR;
    constexpr int kRcRts = TO | RETRY | RNR | SQPSN | MRA;
    r[IBV_QPS_RESET][IBV_QPS_INIT] = Rule{
        true,
        {P | PORT | Q, P | PORT | ACC, P | PORT | ACC, P | Q, P | PORT | ACC, P | PORT | ACC, PORT},
        {}};
    r[IBV_QPS_INIT][IBV_QPS_INIT] = Rule{true,
                                         {},
                                         {P | PORT | Q, P | PORT | ACC, P | PORT | ACC, P | Q,
                                          P | PORT | ACC, P | PORT | ACC, PORT}};
    r[IBV_QPS_INIT][IBV_QPS_RTR] =
        Rule{true,
             {0, AV | MTU | DQPN | RQPSN, kRcRtr, 0, AV | MTU | DQPN | RQPSN, kRcRtr, 0},
             {P | Q, ALT | ACC | P, ALT | ACC | P, P | Q, ALT | ACC | P, ALT | ACC | P, 0}};
    r[IBV_QPS_RTR][IBV_QPS_RTS] =
        Rule{true,
             {SQPSN, SQPSN, kRcRts, SQPSN, kRcRts, TO | SQPSN, 0},
             {CUR | Q, CUR | ALT | ACC | MIG, CUR | ALT | ACC | MRNR | MIG, CUR | Q,
              CUR | ALT | ACC | MIG, CUR | ALT | ACC | MRNR | MIG, 0}};
    r[IBV_QPS_RTS][IBV_QPS_RTS] =
        Rule{true,
             {},
             {CUR | Q, CUR | ACC | ALT | MIG, CUR | ACC | ALT | MIG | MRNR, CUR | Q,
              CUR | ACC | ALT | MIG, CUR | ACC | ALT | MIG | MRNR, 0}};
    r[IBV_QPS_RTS][IBV_QPS_SQD] = Rule{true, {}, {SQDN, SQDN, SQDN, SQDN, SQDN, SQDN, -1}};
    r[IBV_QPS_SQD][IBV_QPS_RTS] =
        Rule{true,
             {},
             {CUR | Q, CUR | ALT | ACC | MIG, CUR | ALT | ACC | MRNR | MIG, CUR | Q,
              CUR | ALT | ACC | MIG, CUR | ALT | ACC | MRNR | MIG, -1}};
    r[IBV_QPS_SQD][IBV_QPS_SQD] =
        Rule{true,
             {},
             {P | Q, AV | ALT | ACC | P | MIG,
              PORT | AV | TO | RETRY | RNR | MRA | MDRA | ALT | ACC | P | MRNR | MIG, P | Q,
              PORT | AV | TO | RETRY | RNR | MRA | ALT | ACC | P | MIG,
              PORT | AV | TO | MDRA | ALT | ACC | P | MRNR | MIG, -1}};
    // SQE exists only for unreliable service (IBTA 10.3.1: send queue error).
    r[IBV_QPS_SQE][IBV_QPS_RTS] = Rule{true, {}, {CUR | Q, CUR | ACC, -1, CUR | Q, -1, -1, -1}};
  }
};

constexpr Table kTable;

}  // namespace

QpTransitionRule GetQpTransitionRule(int qp_type, ibv_qp_state cur, ibv_qp_state next) {
  int t = TypeIndexOf(qp_type);
  if (t < 0 || cur < 0 || cur >= kNumStates || next < 0 || next >= kNumStates) return {};
  const Rule& rule = kTable.r[cur][next];
  // -1 marks a transition that does not exist for one type (SQE->RTS on RC).
  if (!rule.valid || rule.optional[t] == -1) return {};
  return QpTransitionRule{true, rule.required[t], rule.optional[t]};
}

absl::Status CheckModifyQp(int qp_type, ibv_qp_state cur, ibv_qp_state next, int attr_mask) {
  if (!(attr_mask & IBV_QP_STATE)) next = cur;
  QpTransitionRule rule = GetQpTransitionRule(qp_type, cur, next);
  if (!rule.valid) {
    return absl::InvalidArgumentError(absl::StrCat("QP state transition ", QpStateName(cur), " -> ",
                                                   QpStateName(next),
                                                   " is not allowed for this QP type"));
  }
  int missing = rule.required & ~attr_mask;
  if (missing) {
    return absl::InvalidArgumentError(
        absl::StrCat(QpStateName(cur), " -> ", QpStateName(next), " requires attribute mask 0x",
                     absl::Hex(rule.required), "; missing 0x", absl::Hex(missing)));
  }
  int extra = attr_mask & ~(rule.required | rule.optional | IBV_QP_STATE);
  if (extra) {
    return absl::InvalidArgumentError(absl::StrCat(QpStateName(cur), " -> ", QpStateName(next),
                                                   " does not take attribute mask 0x",
                                                   absl::Hex(extra)));
  }
  return absl::OkStatus();
}

const char* QpStateName(ibv_qp_state state) {
  switch (state) {
    case IBV_QPS_RESET:
      return "RESET";
    case IBV_QPS_INIT:
      return "INIT";
    case IBV_QPS_RTR:
      return "RTR";
    case IBV_QPS_RTS:
      return "RTS";
    case IBV_QPS_SQD:
      return "SQD";
    case IBV_QPS_SQE:
      return "SQE";
    case IBV_QPS_ERR:
      return "ERR";
    default:
      return "UNKNOWN";
  }
}

}  // namespace vrdma::driver
