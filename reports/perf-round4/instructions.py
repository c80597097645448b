"""Instructions the server executes per delivery, counted by valgrind (callgrind).

A load that does not depend on what else the machine runs: callgrind counts
the server's user-space instructions (Python and C; the kernel's share of a
send is not in it), the same for the same code and input whether the other
core is busy or not.  The server runs under valgrind; this script connects N
receivers and a sender, sends M chat lines one at a time (each waits until
every receiver has it, so nothing batches), and quits.  Two runs, with M and
with 0 lines, give the instructions per delivery:

    (Ir(M) - Ir(0)) / (M * N)

Usage: python reports/perf-round4/instructions.py [N] [M]   (defaults 50, 200)
"""

from __future__ import annotations

import glob
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 50
M = int(sys.argv[2]) if len(sys.argv) > 2 else 200


def line(sock: socket.socket, deadline: float) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        chunk = sock.recv(1)
        if not chunk:
            raise RuntimeError("closed")
        data += chunk
    return data


def register(port: int, name: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    deadline = time.monotonic() + 120
    line(sock, deadline)  # the prompt
    sock.sendall(name.encode() + b"\n")
    while not line(sock, deadline).startswith(b"*** Welcome"):
        pass
    return sock


def drain(sock: socket.socket, want: int, deadline: float) -> None:
    got = 0
    while got < want:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        got += len(sock.recv(65536))


def measure(messages: int) -> int:
    out = tempfile.mkdtemp()
    cmd = [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.%p",
        sys.executable, "-m", "server", "--port", "0", "--rate-limit", "0", "--announce-limit", "0",
        "--log-level", "WARNING",
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    port = 0
    while not port:
        text = proc.stderr.readline()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", text)
        if m:
            port = int(m[1])
        elif not text and proc.poll() is not None:
            raise RuntimeError("the server did not start")
    receivers = [register(port, f"r{i}") for i in range(N)]
    sender = register(port, "s")
    time.sleep(1)
    for sock in (*receivers, sender):
        sock.setblocking(False)
        try:
            while sock.recv(65536):
                pass
        except BlockingIOError:
            pass
        sock.setblocking(True)
    text = b"x" * 64
    expected = len(b"s: " + text + b"\n")
    for _ in range(messages):
        sender.sendall(text + b"\n")
        deadline = time.monotonic() + 60
        for sock in receivers:
            drain(sock, expected, deadline)
    sender.sendall(b"/quit\n")
    for sock in (*receivers, sender):
        sock.close()
    time.sleep(1)
    proc.terminate()
    proc.wait(300)
    total = 0
    for path in glob.glob(f"{out}/cg.*"):
        with open(path) as f:
            for row in f:
                if row.startswith("summary:") or row.startswith("totals:"):
                    total = max(total, int(row.split()[1]))
        if os.environ.get("KEEP"):
            print("kept", path)
        else:
            os.unlink(path)
    return total


if __name__ == "__main__":
    base = measure(0)
    loaded = measure(M)
    per = (loaded - base) / (M * N)
    print(f"{N} receivers x {M} lines: {loaded - base:,} instructions, {per:,.0f} per delivery")
