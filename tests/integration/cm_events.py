#!/usr/bin/python3
"""RDMA-CM events one by one, through Debian's unmodified librdmacm (pyverbs' asynchronous
binding of it), for the events rdmacm-utils do not show: each role prints every event it
gets, in order, and rdma_cm.sh checks the sequences (issue 13).

  cm_events.py server ADDR PORT        listen; a connection with a QP: CONNECT_REQUEST,
                                       ESTABLISHED, DISCONNECTED, TIMEWAIT_EXIT
  cm_events.py client SRC DST PORT     ADDR_RESOLVED, ROUTE_RESOLVED, ESTABLISHED; then it
                                       disconnects: DISCONNECTED, TIMEWAIT_EXIT
  cm_events.py addr_error SRC DST      an on-link address nobody answers: ADDR_ERROR
  cm_events.py sidr_unreachable SRC DST PORT
                                       UD (SIDR) to a port no one listens on: UNREACHABLE
"""
import sys

import pyverbs.cm_enums as ce
import pyverbs.enums as e
from pyverbs.cmid import AddrInfo, CMEvent, CMEventChannel, CMID, ConnParam
from pyverbs.qp import QPCap, QPInitAttr


def next_event(channel):
    """The next event's name (and its status when not 0); the event is acknowledged."""
    ev = CMEvent(channel)
    name = ev.event_str()
    ev.close()
    print(name, flush=True)
    return name


def expect(channel, want):
    got = next_event(channel)
    if got != want:
        print(f'expected {want}', flush=True)
        sys.exit(1)


def qp_attr():
    return QPInitAttr(qp_type=e.IBV_QPT_RC, cap=QPCap(max_send_wr=4, max_recv_wr=4))


def resolve(ch, cid, src, dst, port, port_space):
    cid.resolve_addr(AddrInfo(src=src, dst=dst, dst_service=port, port_space=port_space), 2000)
    expect(ch, 'RDMA_CM_EVENT_ADDR_RESOLVED')
    cid.resolve_route(2000)
    expect(ch, 'RDMA_CM_EVENT_ROUTE_RESOLVED')


def server(addr, port):
    ch = CMEventChannel()
    listener = CMID(ch)
    listener.bind_addr(AddrInfo(src=addr, src_service=port, port_space=ce.RDMA_PS_TCP,
                                flags=ce.RAI_PASSIVE))
    listener.listen()
    print('listening', flush=True)
    ev = CMEvent(ch)
    name = ev.event_str()
    print(name, flush=True)
    if name != 'RDMA_CM_EVENT_CONNECT_REQUEST':
        sys.exit(1)
    conn = CMID(ev, listen_id=listener)
    ev.close()
    conn.create_qp(qp_attr())
    conn.accept(ConnParam())
    expect(ch, 'RDMA_CM_EVENT_ESTABLISHED')
    expect(ch, 'RDMA_CM_EVENT_DISCONNECTED')
    conn.disconnect()  # already disconnected by the peer: nothing more to send
    expect(ch, 'RDMA_CM_EVENT_TIMEWAIT_EXIT')
    conn.close()
    listener.close()


def client(src, dst, port):
    ch = CMEventChannel()
    cid = CMID(ch)
    # Bound first: the binding gives the ID its device context and PD, which pyverbs'
    # create_qp passes to rdma_create_qp.
    cid.bind_addr(AddrInfo(src=src, port_space=ce.RDMA_PS_TCP, flags=ce.RAI_PASSIVE))
    resolve(ch, cid, src, dst, port, ce.RDMA_PS_TCP)
    cid.create_qp(qp_attr())
    cid.connect(ConnParam())
    expect(ch, 'RDMA_CM_EVENT_ESTABLISHED')
    cid.disconnect()
    expect(ch, 'RDMA_CM_EVENT_DISCONNECTED')
    expect(ch, 'RDMA_CM_EVENT_TIMEWAIT_EXIT')
    cid.close()


def addr_error(src, dst):
    ch = CMEventChannel()
    cid = CMID(ch)
    cid.resolve_addr(AddrInfo(src=src, dst=dst, port_space=ce.RDMA_PS_TCP), 2000)
    expect(ch, 'RDMA_CM_EVENT_ADDR_ERROR')
    cid.close()


def sidr_unreachable(src, dst, port):
    ch = CMEventChannel()
    cid = CMID(ch, port_space=ce.RDMA_PS_UDP)
    resolve(ch, cid, src, dst, port, ce.RDMA_PS_UDP)
    cid.connect(ConnParam())
    expect(ch, 'RDMA_CM_EVENT_UNREACHABLE')
    cid.close()


if __name__ == '__main__':
    roles = {'server': server, 'client': client, 'addr_error': addr_error,
             'sidr_unreachable': sidr_unreachable}
    if len(sys.argv) < 2 or sys.argv[1] not in roles:
        sys.exit(__doc__)
    roles[sys.argv[1]](*sys.argv[2:])
    print('done', flush=True)
