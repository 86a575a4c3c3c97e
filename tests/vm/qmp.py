#!/usr/bin/env python3
"""qmp.py SOCKET COMMAND...: runs each human-monitor COMMAND (e.g. "info network") on
the QEMU whose QMP socket is SOCKET (vm_start's WORK/qmp.sock) and prints its output
under a "## COMMAND" line. Used to record the state of a guest's NIC when it stalls
(harness.sh, vm_watch_nic)."""
import json
import socket
import sys


def main():
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(5)
    sock.connect(sys.argv[1])
    stream = sock.makefile("rw")

    def reply():
        # Skips asynchronous events; returns the next answer.
        while True:
            line = stream.readline()
            if not line:
                raise EOFError("QEMU closed its QMP socket")
            msg = json.loads(line)
            if "return" in msg or "error" in msg:
                return msg

    def execute(name, **arguments):
        stream.write(json.dumps({"execute": name, "arguments": arguments}) + "\n")
        stream.flush()
        return reply()

    stream.readline()  # the greeting
    execute("qmp_capabilities")
    for command in sys.argv[2:]:
        msg = execute("human-monitor-command", **{"command-line": command})
        print(f"## {command}")
        print(msg.get("return", msg.get("error")))


if __name__ == "__main__":
    main()
