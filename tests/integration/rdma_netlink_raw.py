#!/usr/bin/env python3
"""Raw RDMA netlink requests, well-formed and not, on a NETLINK_RDMA socket under
vrdma-run (rdma_netlink.sh): each answer is checked against what the kernel's
netlink_rcv_skb and nldev.c answer. Prints "ok NAME" or "FAIL NAME: why" per case."""
import errno
import socket
import struct

NETLINK_RDMA = 20
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP = 1, 2, 4, 0x300
NLM_F_CAPPED = 0x100
SOL_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK = 270, 10, 11
RDMA_NL_NLDEV, RDMA_NL_LS = 5, 4
CMD_GET, CMD_PORT_GET, CMD_RES_QP_GET = 1, 5, 10
ATTR_DEV_INDEX, ATTR_DEV_NAME, ATTR_PORT_INDEX = 1, 2, 3


def typ(op, client=RDMA_NL_NLDEV):
    return (client << 10) + op


def attr(t, value):
    a = struct.pack("=HH", 4 + len(value), t) + value
    return a + b"\0" * (-len(a) % 4)


def msg(t, flags, seq, payload=b""):
    return struct.pack("=IHHII", 16 + len(payload), t, flags, seq, 0) + payload


def replies(s):
    """Every message queued on the socket now."""
    out = []
    while True:
        try:
            data = s.recv(65536, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return out
        while len(data) >= 16:
            ln, t, fl, seq, pid = struct.unpack_from("=IHHII", data)
            out.append((t, fl, seq, pid, data[16:ln]))
            data = data[(ln + 3) & ~3:]


def error_of(m):
    return -struct.unpack_from("=i", m[4])[0]


results = []


def check(name, cond, why=""):
    results.append(f"ok {name}" if cond else f"FAIL {name}: {why}")


s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_RDMA)
s.bind((0, 0))
portid = s.getsockname()[0]
check("bound to a port", portid != 0, str(s.getsockname()))

# A dump: messages for each device, then NLMSG_DONE; every one to our port, our sequence.
s.send(msg(typ(CMD_GET), NLM_F_REQUEST | NLM_F_DUMP, 7))
r = replies(s)
check("dump of devices", len(r) >= 3 and r[-1][0] == NLMSG_DONE and
      all(m[2] == 7 and m[3] == portid for m in r) and
      all(m[1] & NLM_F_MULTI for m in r), repr([(m[0], m[1], m[2], m[3]) for m in r]))
index = struct.unpack_from("=I", r[0][4], 4)[0]

# Errors, acknowledged as netlink_ack does (the request echoed without NETLINK_CAP_ACK).
cases = [
    ("attribute past the message", msg(typ(CMD_GET), NLM_F_REQUEST, 1,
                                       struct.pack("=HH", 200, ATTR_DEV_INDEX) + b"\0" * 4), errno.EINVAL),
    ("u32 attribute of two bytes", msg(typ(CMD_GET), NLM_F_REQUEST, 2,
                                       attr(ATTR_DEV_INDEX, b"\1\0")), errno.ERANGE),
    ("string without its NUL", msg(typ(CMD_GET), NLM_F_REQUEST, 3,
                                   attr(ATTR_DEV_INDEX, struct.pack("=I", index)) +
                                   attr(ATTR_DEV_NAME, b"vdev")), errno.EINVAL),
    ("another RDMA netlink client (LS)", msg(typ(1, RDMA_NL_LS), NLM_F_REQUEST, 4), errno.EINVAL),
    ("an operation beyond the last", msg(typ(99), NLM_F_REQUEST, 5), errno.EINVAL),
    ("a device index that is not there", msg(typ(CMD_GET), NLM_F_REQUEST, 6,
                                             attr(ATTR_DEV_INDEX, struct.pack("=I", 999999))), errno.EINVAL),
    ("port 7 of a one-port device", msg(typ(CMD_PORT_GET), NLM_F_REQUEST, 8,
                                        attr(ATTR_DEV_INDEX, struct.pack("=I", index)) +
                                        attr(ATTR_PORT_INDEX, struct.pack("=I", 7))), errno.EINVAL),
]
for name, m, want in cases:
    s.send(m)
    r = replies(s)
    ok = len(r) == 1 and r[0][0] == NLMSG_ERROR and error_of(r[0]) == want
    check(name, ok and len(r[0][4]) == 4 + len(m) and not r[0][1] & NLM_F_CAPPED,
          repr(r))

# A dump's error comes in NLMSG_DONE.
s.send(msg(typ(CMD_RES_QP_GET), NLM_F_REQUEST | NLM_F_DUMP, 9))
r = replies(s)
check("QP dump without a device: DONE with EINVAL",
      len(r) == 1 and r[0][0] == NLMSG_DONE and struct.unpack_from("=i", r[0][4])[0] == -errno.EINVAL,
      repr(r))

# With NETLINK_CAP_ACK the error carries the request's header only.
s.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
s.send(msg(typ(99), NLM_F_REQUEST, 10, attr(ATTR_DEV_INDEX, b"\0" * 4)))
r = replies(s)
check("NETLINK_CAP_ACK: capped", len(r) == 1 and len(r[0][4]) == 20 and r[0][1] & NLM_F_CAPPED, repr(r))

# Two requests in one datagram: two answers; an acknowledgement when asked.
both = msg(typ(CMD_GET), NLM_F_REQUEST | NLM_F_ACK, 11, attr(ATTR_DEV_INDEX, struct.pack("=I", index)))
s.send(both + both)
r = replies(s)
check("two requests in a datagram, each answered and acknowledged",
      [m[0] for m in r] == [typ(CMD_GET), NLMSG_ERROR, typ(CMD_GET), NLMSG_ERROR] and
      error_of(r[1]) == 0, repr([m[0] for m in r]))

# A message longer than its datagram ends the walk, unanswered; not a request: ignored.
s.send(struct.pack("=IHHII", 4000, typ(CMD_GET), NLM_F_REQUEST, 12, 0))
s.send(msg(typ(CMD_GET), 0, 13))
check("a message past its datagram; a message that is not a request", replies(s) == [], "")

# Garbage of every size: answered or dropped, never a crash.
for n in (1, 15, 16, 17, 100, 4096, 16384):
    s.send(bytes((i * 37 + n) & 0xff for i in range(n)))
    replies(s)
s.send(msg(typ(CMD_GET), NLM_F_REQUEST, 14, attr(ATTR_DEV_INDEX, struct.pack("=I", index))))
r = replies(s)
check("after garbage, the device is still answered", len(r) == 1 and r[0][0] == typ(CMD_GET), repr(r))

# Another program's port: nobody else speaks RDMA netlink here.
try:
    s.sendto(msg(typ(CMD_GET), NLM_F_REQUEST, 15), (4242, 0))
    check("sendto another port refused", False, "sent")
except ConnectionRefusedError:
    check("sendto another port refused", True)

# A second socket gets a port of its own.
s2 = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_RDMA)
s2.bind((0, 0))
check("a second socket, another port", s2.getsockname()[0] not in (0, portid), str(s2.getsockname()))
try:
    s3 = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_RDMA)
    s3.bind((portid, 0))
    check("a port taken", False, "bound")
except OSError as e:
    check("a port taken", e.errno == errno.EADDRINUSE, str(e))

print("\n".join(results))
