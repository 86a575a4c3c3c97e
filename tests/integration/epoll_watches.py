#!/usr/bin/env python3
"""epoll_watches.py PID: the socket family of every descriptor that process's epoll sets
watch, one "FD FAMILY" line each (FAMILY a number, "-" for what is not a socket).

The descriptors are read from /proc/PID/fdinfo (the "tfd:" lines of each epoll), then
taken with pidfd_getfd(2) so that getsockopt(SO_DOMAIN) can be asked of them. Root only.
"""
import ctypes
import os
import re
import socket
import sys

SYS_PIDFD_GETFD = 438
SO_DOMAIN = 39


def main() -> int:
    pid = int(sys.argv[1])
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    watched = set()
    fdinfo = f"/proc/{pid}/fdinfo"
    for name in os.listdir(fdinfo):
        try:
            with open(os.path.join(fdinfo, name)) as f:
                watched.update(int(m) for m in re.findall(r"^tfd:\s*(\d+)", f.read(), re.M))
        except OSError:
            continue
    for fd in sorted(watched):
        own = libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
        family = "-"
        if own >= 0:
            value = ctypes.c_int(0)
            size = ctypes.c_uint32(ctypes.sizeof(value))
            if libc.getsockopt(own, socket.SOL_SOCKET, SO_DOMAIN, ctypes.byref(value),
                               ctypes.byref(size)) == 0:
                family = str(value.value)
            os.close(own)
        print(fd, family)
    return 0


if __name__ == "__main__":
    sys.exit(main())
