"""``python -m bench cluster-paths``: latency of the two paths a line takes in a cluster.

Starts ``cluster:N`` with every node on a port of its own, puts R receivers on
each node (receiver i on node i mod N) and, round after round, sends ONE chat
line from a sender on node (round mod N).  Every receiver reads the line
afterwards and its arrival is the kernel's receive stamp minus the moment the
sender called ``send`` (:mod:`bench.measure.rxstamp`), so reading late costs
nothing.  Each delivery is recorded by its path in an HDR histogram:

``same``    sender and receiver on one node: the node's own fan-out;
``across``  on different nodes: publisher thread, Redis, the other node's
            subscriber thread, then its fan-out.

Every receiver must get exactly the round's line, once (else the study fails).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from typing import TypedDict

from bench.measure.stats import LatencyHistogram
from bench.net import stamps as rxstamp
from bench.targets import ClusterTarget, TargetError
from bench.wire.client import ClientError, WireClient, discard_pending
from server import protocol

#: Seconds given to a round's deliveries before they are read (the across
#: path crosses two more threads and Redis; 0.2 s is far above its latency).
ROUND_SETTLE_S = 0.2
#: Seconds a receiver may wait for its line before the study fails.
READ_TIMEOUT_S = 10.0


class PathSummary(TypedDict):
    count: int
    p50_us: int
    p99_us: int
    max_us: int


class PathsResult(TypedDict):
    kind: str
    nodes: int
    receivers_per_node: int
    rounds: int
    same: PathSummary
    across: PathSummary


def summarize(h: LatencyHistogram) -> PathSummary:
    return {"count": h.count, "p50_us": h.percentile(50), "p99_us": h.percentile(99), "max_us": h.max}


def measure(nodes: int, receivers_per_node: int, rounds: int, payload: int = 64) -> PathsResult:
    if not rxstamp.supported():
        raise RuntimeError("kernel receive stamps (SO_TIMESTAMPNS) are needed: Linux only")
    with_paths = {"same": LatencyHistogram(), "across": LatencyHistogram()}
    target = ClusterTarget(nodes, ["--announce-limit", "0"], share_port=False)
    target.start()
    opened: list[socket.socket] = []
    try:
        senders = [WireClient.connect(address, f"s{i}").sock for i, address in enumerate(target.addresses)]
        receivers = [
            (i % nodes, WireClient.connect(target.addresses[i % nodes], f"r{i}").sock)
            for i in range(nodes * receivers_per_node)
        ]
        opened = senders + [sock for _, sock in receivers]
        time.sleep(ROUND_SETTLE_S)
        for sock in opened:
            discard_pending(sock, READ_TIMEOUT_S)
        for _, sock in receivers:
            if not rxstamp.enable(sock):
                raise RuntimeError("could not enable SO_TIMESTAMPNS")
        # Round 0 is not measured: the first segments after enabling stamps can go unstamped.
        for round_no in range(rounds + 1):
            origin = round_no % nodes
            text = f"round {round_no} " + "x" * payload
            one_round(senders[origin], receivers, origin, text, with_paths if round_no else None)
        for sock in senders:
            discard_pending(sock, READ_TIMEOUT_S)
    finally:
        for sock in opened:
            sock.close()
        target.stop()
    return {
        "kind": "chatbench-cluster-paths",
        "nodes": nodes,
        "receivers_per_node": receivers_per_node,
        "rounds": rounds,
        "same": summarize(with_paths["same"]),
        "across": summarize(with_paths["across"]),
    }


def one_round(
    sender: socket.socket,
    receivers: list[tuple[int, socket.socket]],
    origin: int,
    text: str,
    paths: dict[str, LatencyHistogram] | None,
) -> None:
    """Send one line from node ``origin``; every receiver must get exactly it."""
    expected = protocol.encode_message(f"s{origin}", text)
    buffer = memoryview(bytearray(1 << 16))
    offset = rxstamp.realtime_offset_ns()
    sent_ns = time.monotonic_ns()
    sender.sendall(protocol.encode_say(text))
    time.sleep(ROUND_SETTLE_S)
    for node, sock in receivers:
        n, stamp = rxstamp.recv_stamped(sock, [buffer], offset)
        if bytes(buffer[:n]) != expected:
            raise RuntimeError(f"a receiver on node {node} got {bytes(buffer[:n])!r}, not the one line sent")
        if paths is not None:
            if not stamp:
                raise RuntimeError("a read came without a kernel receive stamp")
            paths["same" if node == origin else "across"].record((stamp - sent_ns) // 1000)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n")[0] if __doc__ else None
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("--nodes", type=int, default=2, help="server nodes (each on its own port)")
    parser.add_argument("--receivers", type=int, default=50, help="receivers on each node")
    parser.add_argument("--rounds", type=int, default=20, help="lines sent, one at a time, from node round mod N")
    parser.add_argument("--payload", type=int, default=64, help="characters of the chat line")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    if args.nodes < 2 or args.receivers < 1 or args.rounds < 1:
        print("bench cluster-paths: error: needs --nodes >= 2, --receivers >= 1, --rounds >= 1", file=sys.stderr)
        return 2
    try:
        result = measure(args.nodes, args.receivers, args.rounds, args.payload)
    except (RuntimeError, OSError, ClientError, TargetError) as exc:
        print(f"bench cluster-paths: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"one line at a time, {args.nodes} nodes x {args.receivers} receivers, {args.rounds} rounds:")
    for path, s in (("same", result["same"]), ("across", result["across"])):
        print(
            f"  {path:6} node: {s['count']:6} deliveries  p50 {s['p50_us'] / 1000:.2f} ms  "
            f"p99 {s['p99_us'] / 1000:.2f} ms  max {s['max_us'] / 1000:.2f} ms"
        )
    return 0
