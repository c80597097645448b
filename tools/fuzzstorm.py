"""A fuzz storm against a chat server process, and its RSS before and after.

Starts ``python -m server`` on a free loopback port (extra server options
after ``--``), samples its RSS idle, connects ``--clients`` clients that send
random garbage lines (random bytes, invalid UTF-8, long and empty lines,
names and chat) for ``--seconds``, closes them, waits ``--settle`` seconds and
samples RSS again.  Prints one JSON object (MiB).  Bounded and loopback only::

    python tools/fuzzstorm.py                      # 200 clients x 10 s
    python tools/fuzzstorm.py --clients 50 --seconds 3 -- --fanout threads
    MALLOC_ARENA_MAX=2 python tools/fuzzstorm.py   # the environment reaches the server
"""

from __future__ import annotations

import argparse
import json
import random
import re
import selectors
import socket
import subprocess
import sys
import threading
import time

import psutil

LISTENING = re.compile(r"listening on (\S+):(\d+)")
MIB = 1 << 20
#: Longest garbage line sent (past the server's 4096-byte line limit on purpose).
MAX_GARBAGE_BYTES = 8192
#: Bytes each client has in flight at most before it waits for the socket.
CHUNK_BYTES = 16384


def garbage(rng: random.Random) -> bytes:
    """One line of fuzz: random bytes, mostly short, sometimes past the limit."""
    kind = rng.random()
    if kind < 0.3:
        n = rng.randint(0, 40)
    elif kind < 0.9:
        n = rng.randint(40, 600)
    else:
        n = rng.randint(600, MAX_GARBAGE_BYTES)
    return rng.randbytes(n).replace(b"\n", b" ") + b"\n"


def start_server(extra: list[str]) -> tuple[subprocess.Popen[str], tuple[str, int]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "--port", "0", "--log-level", "ERROR", *extra],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    match = LISTENING.search(proc.stderr.readline())
    if match is None:
        proc.kill()
        raise SystemExit("the server did not start")
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    return proc, (match[1], int(match[2]))


def storm(address: tuple[str, int], clients: int, seconds: float, seed: int) -> int:
    """Every client sends garbage as fast as the server reads it, and reads
    (and drops) what comes back; the bytes sent in all."""
    rng = random.Random(seed)
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(clients):
        s = socket.create_connection(address, timeout=10)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, bytearray())
        socks.append(s)
    sent = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for key, events in sel.select(0.1):
            conn = key.fileobj
            if not isinstance(conn, socket.socket):
                continue
            if events & selectors.EVENT_READ:
                try:
                    conn.recv(65536)
                except OSError:
                    pass
            if events & selectors.EVENT_WRITE:
                buf: bytearray = key.data
                while len(buf) < CHUNK_BYTES:
                    buf += garbage(rng)
                try:
                    n = conn.send(buf)
                except BlockingIOError:
                    n = 0
                except OSError:
                    sel.unregister(conn)
                    continue
                del buf[:n]
                sent += n
    for s in socks:
        s.close()
    return sent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds idle after the storm before sampling")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("server_args", nargs="*", help="options for the server (after --)")
    args = parser.parse_args()
    proc, address = start_server(args.server_args)
    try:
        ps = psutil.Process(proc.pid)
        time.sleep(1.0)
        idle = ps.memory_info().rss
        peak = [idle]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.2):
                peak[0] = max(peak[0], ps.memory_info().rss)

        threading.Thread(target=sample, daemon=True).start()
        sent = storm(address, args.clients, args.seconds, args.seed)
        time.sleep(args.settle)
        stop.set()
        after = ps.memory_info().rss
        print(
            json.dumps(
                {
                    "clients": args.clients,
                    "seconds": args.seconds,
                    "sent_mib": round(sent / MIB, 1),
                    "idle_rss_mib": round(idle / MIB, 1),
                    "peak_rss_mib": round(peak[0] / MIB, 1),
                    "after_rss_mib": round(after / MIB, 1),
                    "after_over_idle": round(after / idle, 2),
                    "threads_after": ps.num_threads(),
                }
            )
        )
    finally:
        proc.terminate()
        proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
