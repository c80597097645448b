"""What TLS costs the server per delivery: server CPU µs per delivered line,
over TLS and in plaintext, in one interleaved run.

Starts ``python -m server`` with a plaintext and a TLS port (trustme test
certificates, flood control off), then for each round connects ``--clients``
clients over one transport, has ``--senders`` of them send ``--rate``
lines/s in all for ``--seconds``, waits until every client has every line,
and divides the server's CPU time (user + system, psutil) in that window by
the lines delivered.  Rounds alternate plain, tls, plain, tls... so a drift
of the machine hits both alike.  Prints one JSON object.  Bounded and
loopback only; the load generator is this one process (selectors)::

    python tools/tlscost.py --clients 100 --rate 300 --seconds 5 --repeat 3
    python tools/tlscost.py --clients 1000 --rate 30 --seconds 5 --repeat 3

Until the harness speaks TLS (issue 25's harness part), this is the measure.
"""

from __future__ import annotations

import argparse
import json
import re
import selectors
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import trustme

LISTENING = re.compile(r"(listening|tls) on (\S+):(\d+)")
#: Seconds to wait for the last lines after the senders stopped.
DRAIN_TIMEOUT = 30.0
PAYLOAD = "x" * 64


def start_server(cert: str) -> tuple[subprocess.Popen[str], dict[str, tuple[str, int]]]:
    args = ["--port", "0", "--tls-port", "0", "--tls-cert", cert, "--tls-key", cert, "--rate-limit", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", *args, "--log-level", "WARNING", "--announce-limit", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    ports: dict[str, tuple[str, int]] = {}
    while len(ports) < 2:
        match = LISTENING.search(proc.stderr.readline())
        if match is None:
            proc.kill()
            raise SystemExit("the server did not start")
        ports["plain" if match[1] == "listening" else "tls"] = (match[2], int(match[3]))
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    return proc, ports


def connect(address: tuple[str, int], name: str, tls: ssl.SSLContext | None) -> socket.socket:
    sock = socket.create_connection(address, timeout=30)
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname=address[0])
    sock.sendall(f"{name}\n".encode())
    seen = b""
    while b"*** Welcome" not in seen:
        seen += sock.recv(65536)
    sock.setblocking(False)
    return sock


def one_round(
    address: tuple[str, int], tls: ssl.SSLContext | None, args: argparse.Namespace, proc: psutil.Process
) -> dict[str, float]:
    socks = [connect(address, f"c{i}", tls) for i in range(args.clients)]
    sel = selectors.DefaultSelector()
    counts = dict.fromkeys(range(len(socks)), 0)
    for i, s in enumerate(socks):
        sel.register(s, selectors.EVENT_READ, i)
    time.sleep(0.5)
    _pump(sel, counts, 0.2)
    counts = dict.fromkeys(counts, 0)
    line = f"{PAYLOAD}\n".encode()
    total = int(args.rate * args.seconds)
    before = proc.cpu_times()
    started = time.monotonic()
    for m in range(total):
        due = started + m / args.rate
        while (now := time.monotonic()) < due:
            _pump(sel, counts, due - now)
        sender = socks[m % args.senders]
        while True:
            try:
                sender.send(line)
                break
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                _pump(sel, counts, 0.001)
    expected = total * (args.clients - 1)
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while sum(counts.values()) < expected and time.monotonic() < deadline:
        _pump(sel, counts, 0.05)
    after = proc.cpu_times()
    delivered = sum(counts.values())
    for s in socks:
        s.close()
    time.sleep(1.0)
    cpu = (after.user + after.system) - (before.user + before.system)
    return {
        "cpu_s": round(cpu, 3),
        "deliveries": delivered,
        "expected": expected,
        "us_per_delivery": round(cpu / delivered * 1e6, 3),
    }


def _pump(sel: selectors.BaseSelector, counts: dict[int, int], timeout: float) -> None:
    for key, _ in sel.select(max(0.0, timeout)):
        sock = key.fileobj
        assert isinstance(sock, socket.socket)
        while True:
            try:
                data = sock.recv(262144)
            except (BlockingIOError, ssl.SSLWantReadError):
                break
            if not data:
                sel.unregister(sock)
                break
            counts[key.data] += data.count(b"\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rate", type=float, default=300.0, help="lines/s from all senders together")
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3, help="rounds per transport, interleaved")
    args = parser.parse_args()
    where = Path(tempfile.mkdtemp(prefix="tlscost-"))
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(where / "server.pem"))
    client = ssl.create_default_context()
    ca.configure_trust(client)
    server, ports = start_server(str(where / "server.pem"))
    try:
        proc = psutil.Process(server.pid)
        rounds: dict[str, list[dict[str, float]]] = {"plain": [], "tls": []}
        for _ in range(args.repeat):
            rounds["plain"].append(one_round(ports["plain"], None, args, proc))
            rounds["tls"].append(one_round(ports["tls"], client, args, proc))
        median = {t: statistics.median(r["us_per_delivery"] for r in rs) for t, rs in rounds.items()}
        ratios = [
            t["us_per_delivery"] / p["us_per_delivery"] for p, t in zip(rounds["plain"], rounds["tls"], strict=True)
        ]
        print(
            json.dumps(
                {
                    "clients": args.clients,
                    "rate": args.rate,
                    "senders": args.senders,
                    "seconds": args.seconds,
                    "rounds": rounds,
                    "median_us_per_delivery": median,
                    "tls_over_plain": round(median["tls"] / median["plain"], 2),
                    "tls_over_plain_per_pair": [round(r, 2) for r in ratios],
                },
                indent=1,
            )
        )
    finally:
        server.terminate()
        server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
