#!/usr/bin/python3
"""RDMA-CM multicast through Debian's unmodified librdmacm (pyverbs' binding of it): UD
QPs join a group with rdma_join_multicast and datagrams sent to it arrive whole, the
bytes compared; the join's event and the refusals are checked (rdma_cm.sh).

  cm_mcast.py recv SRC GROUP N       joins GROUP from SRC; N datagrams, each compared
                                     ("ready K" printed once receive K is posted)
  cm_mcast.py send SRC GROUP N FILE  joins GROUP (send-only) from SRC; sends datagram K
                                     once FILE says "ready K"
  cm_mcast.py refusals SRC GROUP     what rdma_join_multicast refuses, with its errno
  cm_mcast.py leave_others FIRST LAST
                                     an attack: LEAVE_MCAST, written on its own RDMA-CM
                                     file, of every join number in FIRST..LAST; none of
                                     them is this process's, so each must fail (another
                                     file's EINVAL, none ENOENT), and does nothing
Every line "ok ..." is a check that held; a failed one prints "FAIL ..." and exits 1.
"""
import errno
import ipaddress
import sys
import time

import pyverbs.cm_enums as ce
import pyverbs.enums as e
from pyverbs.addr import AH
from pyverbs.cmid import AddrInfo, CMEvent, CMEventChannel, CMID, JoinMCAttrEx, UDParam
from pyverbs.pyverbs_error import PyverbsRDMAError
from pyverbs.qp import QPCap, QPInitAttr

GRH = 40             # a UD receive buffer starts with the GRH (IBTA 11.4.1.2)
SIZE = 1000
MULTICAST_QPN = 0xFFFFFF
RDMA_UDP_QKEY = 0x01234567


def fail(what):
    print(f'FAIL {what}', flush=True)
    sys.exit(1)


def check(cond, what):
    if not cond:
        fail(what)
    print(f'ok {what}', flush=True)


def payload(k):
    return bytes((k * 7 + i) % 251 for i in range(SIZE))


def expect(channel, want):
    ev = CMEvent(channel)
    got = ev.event_type
    ud = UDParam(ev) if got == ce.RDMA_CM_EVENT_MULTICAST_JOIN else None
    name = ev.event_str()
    ev.ack_cm_event()
    if got != want:
        fail(f'event {name}')
    return ud


def group_gid(group):
    a = ipaddress.ip_address(group)
    if a.version == 4:
        return ipaddress.IPv6Address('::ffff:' + group)
    return a


def joined(src, group, n, send_only=False):
    """A UD ID bound to SRC, resolved to GROUP, with a QP, joined: (channel, id, ud)."""
    channel = CMEventChannel()
    cmid = CMID(creator=channel, port_space=ce.RDMA_PS_UDP)
    cmid.bind_addr(AddrInfo(src=src))
    cmid.resolve_addr(AddrInfo(src=src, dst=group))
    expect(channel, ce.RDMA_CM_EVENT_ADDR_RESOLVED)
    cmid.create_qp(QPInitAttr(qp_type=e.IBV_QPT_UD,
                              cap=QPCap(max_recv_wr=n, max_send_wr=n)))
    flags = (ce.RDMA_MC_JOIN_FLAG_SENDONLY_FULLMEMBER if send_only
             else ce.RDMA_MC_JOIN_FLAG_FULLMEMBER)
    # (JoinMCAttrEx points into the AddrInfo, which must outlive it.)
    mc = AddrInfo(src=group)
    cmid.join_multicast(mc_attr=JoinMCAttrEx(
        addr=mc,
        comp_mask=ce.RDMA_CM_JOIN_MC_ATTR_ADDRESS | ce.RDMA_CM_JOIN_MC_ATTR_JOIN_FLAGS,
        join_flags=flags))
    ud = expect(channel, ce.RDMA_CM_EVENT_MULTICAST_JOIN)
    # The join's event: the group's QPN and RDMA-CM's Q_Key, an AH to the group's GID.
    check(ud.qp_num == MULTICAST_QPN, f'join event QPN {ud.qp_num:#x}')
    check(ud.qkey == RDMA_UDP_QKEY, f'join event Q_Key {ud.qkey:#x}')
    dgid = ipaddress.IPv6Address(ud.ah_attr.dgid)
    check(ud.ah_attr.is_global and dgid == group_gid(group), f'join event DGID {dgid}')
    return channel, cmid, ud


def recv(src, group, n):
    channel, cmid, _ = joined(src, group, n)
    mr = cmid.reg_msgs(SIZE + GRH)
    for k in range(n):
        cmid.post_recv(mr)
        print(f'ready {k}', flush=True)
        wc = cmid.get_recv_comp()
        if wc.status != e.IBV_WC_SUCCESS or wc.byte_len != SIZE + GRH:
            fail(f'datagram {k}: status {wc.status} length {wc.byte_len}')
        if mr.read(SIZE, GRH) != payload(k):
            fail(f'datagram {k}: bytes differ')
    check(True, f'{n} datagrams of {SIZE} bytes, each as sent')
    cmid.leave_multicast(AddrInfo(src=group))
    check(True, 'left the group')
    cmid.close()
    channel.close()


def send(src, group, n, ready_file):
    channel, cmid, ud = joined(src, group, n, send_only=True)
    mr = cmid.reg_msgs(SIZE + GRH)
    ah = AH(cmid.pd, attr=ud.ah_attr)
    for k in range(n):
        deadline = time.monotonic() + 60
        while True:
            with open(ready_file) as f:
                if f'ready {k}\n' in f.read():
                    break
            if time.monotonic() > deadline:
                fail(f'receiver not ready for {k}')
            time.sleep(0.01)
        mr.write(payload(k), SIZE)
        cmid.post_ud_send(mr, ah, rqpn=MULTICAST_QPN, length=SIZE)
        wc = cmid.get_send_comp()
        if wc.status != e.IBV_WC_SUCCESS:
            fail(f'send {k}: status {wc.status}')
    check(True, f'{n} datagrams sent')
    cmid.leave_multicast(AddrInfo(src=group))
    cmid.close()
    channel.close()


def refused(want, what, join):
    try:
        join()
    except PyverbsRDMAError as ex:
        check(ex.error_code == want, f'{what}: {errno.errorcode.get(ex.error_code)}')
        return
    fail(f'{what}: joined')


def refusals(src, group):
    channel = CMEventChannel()
    mc = AddrInfo(src=group)
    # rdma_join_multicast needs an ID with a device, bound or resolved...
    unbound = CMID(creator=channel, port_space=ce.RDMA_PS_UDP)
    refused(errno.EINVAL, 'join by an unbound ID', lambda: unbound.join_multicast(addr=mc))
    # ...of a UD port space...
    tcp = CMID(creator=channel, port_space=ce.RDMA_PS_TCP)
    tcp.bind_addr(AddrInfo(src=src))
    refused(errno.EINVAL, 'join by an RC (TCP port space) ID', lambda: tcp.join_multicast(addr=mc))
    # ...to a group address.
    ud = CMID(creator=channel, port_space=ce.RDMA_PS_UDP)
    ud.bind_addr(AddrInfo(src=src))
    refused(errno.EINVAL, 'join of a unicast address', lambda: ud.join_multicast(addr=AddrInfo(src=src)))
    # A join without a QP is fine (librdmacm attaches none); leaving it, too.
    ud.join_multicast(addr=mc)
    expect(channel, ce.RDMA_CM_EVENT_MULTICAST_JOIN)
    ud.leave_multicast(mc)
    check(True, 'join and leave by an ID without a QP')
    # An ID destroyed while joined takes its join with it.
    ud.join_multicast(addr=mc)
    expect(channel, ce.RDMA_CM_EVENT_MULTICAST_JOIN)
    ud.close()
    check(True, 'ID destroyed while joined')
    for i in (unbound, tcp):
        i.close()
    channel.close()


def leave_others(first, last):
    import ctypes
    import os
    import struct
    # The RDMA-CM uAPI (rdma_user_cm.h): a header (cmd, in, out), then
    # rdma_ucm_destroy_id {response, id, reserved}; LEAVE_MCAST is command 17.
    fd = os.open('/dev/infiniband/rdma_cm', os.O_RDWR)
    resp = ctypes.create_string_buffer(4)
    others = 0
    for handle in range(first, last + 1):
        cmd = struct.pack('=IHH', 17, 16, 4) + struct.pack('=QII', ctypes.addressof(resp), handle, 0)
        try:
            os.write(fd, cmd)
        except OSError as ex:
            if ex.errno == errno.EINVAL:
                others += 1
            elif ex.errno != errno.ENOENT:
                fail(f'leave of join {handle}: {errno.errorcode.get(ex.errno)}')
            continue
        fail(f'left join {handle}, which is not ours')
    os.close(fd)
    check(others > 0, f'{others} joins of another file refused (EINVAL), the rest ENOENT')


def main():
    role, args = sys.argv[1], sys.argv[2:]
    if role == 'recv':
        recv(args[0], args[1], int(args[2]))
    elif role == 'send':
        send(args[0], args[1], int(args[2]), args[3])
    elif role == 'refusals':
        refusals(args[0], args[1])
    elif role == 'leave_others':
        leave_others(int(args[0]), int(args[1]))
    else:
        fail(f'role {role}')


if __name__ == '__main__':
    main()
