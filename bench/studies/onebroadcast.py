"""How long one broadcast takes to reach N idle clients: the server's own
fan-out time, with no load generator competing for the CPU.

``python -m bench onebroadcast --clients 1000`` starts the embedded server
(``python -m server``, flood control off), registers N + 1 raw clients with
blocking sockets, and then, round after round, sends ONE chat line from the
first client and reads it at every other client *afterwards*.  Each
receiver's arrival time is the kernel's receive stamp (:mod:`bench.measure.rxstamp`),
so reading late costs nothing: what is measured is when the server's send
put the line into each receiver's socket, from the moment the sender
called ``send``.  Reported per round: the first, median, p99 and last
arrival; printed: their medians over the rounds.

This is the lower bound a swarm run at that client count can show (the swarm
adds queueing behind other messages and CPU contention with the harness).
Loopback only.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import time
from typing import TypedDict

from bench.net import stamps as rxstamp
from bench.targets import EmbeddedTarget, TargetError
from bench.wire.client import ClientError, WireClient, discard_pending
from server import protocol
from server.config import FANOUT_STRATEGIES

#: Seconds given to a round's deliveries before they are read.
ROUND_SETTLE_S = 0.2


class Arrivals(TypedDict):
    """When one broadcast reached its receivers, in microseconds after the send call."""

    first_us: float
    p50_us: float
    p99_us: float
    last_us: float


class OneBroadcastResult(TypedDict):
    """What :func:`measure` returns (``--json`` prints it)."""

    clients: int
    fanout: str
    rounds: list[Arrivals]
    median: Arrivals  #: of each key over the rounds


def _arrivals(arrivals: list[float]) -> Arrivals:
    """One round's arrival times, summarised."""
    arrivals = sorted(arrivals)
    return {
        "first_us": arrivals[0],
        "p50_us": arrivals[len(arrivals) // 2],
        "p99_us": arrivals[min(len(arrivals) - 1, int(len(arrivals) * 0.99))],
        "last_us": arrivals[-1],
    }


def _medians(rounds: list[Arrivals]) -> Arrivals:
    def median(values: list[float]) -> float:
        return round(statistics.median(values), 1)

    return {
        "first_us": median([r["first_us"] for r in rounds]),
        "p50_us": median([r["p50_us"] for r in rounds]),
        "p99_us": median([r["p99_us"] for r in rounds]),
        "last_us": median([r["last_us"] for r in rounds]),
    }


def measure(clients: int, rounds: int, fanout: str, payload: int = 64, timeout: float = 30.0) -> OneBroadcastResult:
    """Run the measurement; returns the per-round arrivals (us after the
    sender called send) and their medians."""
    if not rxstamp.supported():
        raise RuntimeError("kernel receive stamps (SO_TIMESTAMPNS) are needed: Linux only")
    line = protocol.encode_say("x" * payload)
    with EmbeddedTarget(["--fanout", fanout, "--announce-limit", "0"]) as target:
        address = (target.host, target.port)
        sockets: list[socket.socket] = []
        try:
            for i in range(clients + 1):
                sockets.append(WireClient.connect(address, f"c{i}").sock)
            sender, receivers = sockets[0], sockets[1:]
            time.sleep(ROUND_SETTLE_S)
            for sock in receivers:
                discard_pending(sock)
                if not rxstamp.enable(sock):
                    raise RuntimeError("could not enable SO_TIMESTAMPNS")
                sock.settimeout(timeout)
            buffer = memoryview(bytearray(1 << 16))
            per_round: list[Arrivals] = []
            # Round 0 is not measured: when no socket on the machine had stamps
            # on, Linux switches stamping on from a work queue, so the first
            # segments after enabling can go unstamped.
            for round_no in range(rounds + 1):
                offset = rxstamp.realtime_offset_ns()
                sent_ns = time.monotonic_ns()
                sender.sendall(line)
                time.sleep(ROUND_SETTLE_S)
                arrivals: list[float] = []
                for sock in receivers:
                    n, stamp = rxstamp.recv_stamped(sock, [buffer], offset)
                    if n == 0:
                        raise RuntimeError("a receiver was disconnected")
                    if bytes(buffer[: n - 1]).count(b"\n"):
                        raise RuntimeError("a receiver got more than the one line")
                    if not stamp and round_no:
                        raise RuntimeError("a read came without a kernel receive stamp")
                    arrivals.append((stamp - sent_ns) / 1000)
                if not round_no:
                    continue
                per_round.append(_arrivals(arrivals))
        finally:
            for sock in sockets:
                sock.close()
    return {"clients": clients, "fanout": fanout, "rounds": per_round, "median": _medians(per_round)}


def configure(parser: argparse.ArgumentParser) -> None:
    """Add this study's options to ``parser`` (``python -m bench onebroadcast``)."""
    parser.description = __doc__.split("\n\n")[0] if __doc__ else None
    parser.epilog = "Arrival = the kernel's receive stamp at each client minus the time the sender called send."
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("--clients", type=int, default=1000, help="receiving clients (one more connection sends)")
    parser.add_argument("--rounds", type=int, default=20, help="broadcasts measured, one at a time")
    parser.add_argument("--fanout", choices=FANOUT_STRATEGIES, default="queued", help="server strategy")
    parser.add_argument("--payload", type=int, default=64, help="characters of the chat line")
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")


def run(args: argparse.Namespace) -> int:
    """Measure and print; 1 if the measurement failed, 2 for nonsense options."""
    if args.clients < 1 or args.rounds < 1:
        print("bench onebroadcast: error: --clients and --rounds must be at least 1", file=sys.stderr)
        return 2
    try:
        result = measure(args.clients, args.rounds, args.fanout, args.payload)
    except (RuntimeError, OSError, ClientError, TargetError) as exc:
        print(f"bench onebroadcast: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        m = result["median"]
        print(
            f"one broadcast to {args.clients} idle clients (fanout={args.fanout}, median of {args.rounds} rounds): "
            f"first {m['first_us'] / 1000:.2f} ms, median {m['p50_us'] / 1000:.2f} ms, "
            f"p99 {m['p99_us'] / 1000:.2f} ms, last {m['last_us'] / 1000:.2f} ms"
        )
    return 0
