"""How long one broadcast takes to reach N idle clients: a server's own fan-out
time, with no load generator competing for the CPU.

``python -m bench onebroadcast --clients 1000`` starts the target (this
project's server by default, flood control off; any ``--target``:
``redis``, ``nats``, ``mosquitto``, ``embedded-ws``, ``cluster:N``, ...),
registers N receivers and a sender through the protocol's adapter and then,
round after round, sends ONE probe from the sender and reads it at every
receiver *afterwards*, through the harness's one receive path
(:class:`bench.net.rx.ReceivePath`: the adapter's deliveries, the recorder's
checks).  Each receiver's arrival is the kernel's receive stamp
(:mod:`bench.net.stamps`), so reading late costs nothing: what is measured is
when the target's send put the probe into each receiver's socket, from its
intended send time (just before the sender's ``send``).  Reported per round:
the first, median, p99 and last arrival; printed: their medians over the
rounds.  Every receiver must get every round's probe once, intact.

On a target of several nodes (``cluster:N``) there is a sender on every
node, sending in turn, receiver i is on node i mod N, and each delivery is
also measured under its label (``path=same`` or ``path=cross``,
:mod:`bench.workload.labels`): ``python -m bench cluster-paths`` is this study
on ``cluster:N``.

This is the lower bound a swarm run at that client count can show (the swarm
adds queueing behind other messages and CPU contention with the harness).
Loopback only.  ``--tls`` and the logins work as for ``run``: over TLS the
stamp is the ciphertext's arrival (:class:`bench.net.tls.TlsStream` reads
the raw socket, then decrypts), so decryption is not counted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from typing import TypedDict

from bench import cli, wire
from bench.measure import probe
from bench.measure.integrity import IntegrityTracker
from bench.measure.labelled import Labelled
from bench.measure.recorder import DeliveryRecorder
from bench.measure.stats import LatencyHistogram
from bench.net import stamps
from bench.net.rx import ReceivePath, StampedReader
from bench.net.tls import TlsOptions
from bench.report.fmt import ms
from bench.results.schema import Latency
from bench.targets import Security, Target, TargetError, client_tls, make_target, parse_target, target_protocol
from bench.wire.client import ClientError, WireClient, discard_pending
from bench.wire.credentials import CredentialsError, Logins
from bench.workload import Client, Plan, labels, one_room
from server.config import FANOUT_STRATEGIES

#: Seconds given to a round's deliveries before they are read (a cluster's
#: cross-node path crosses two more threads and Redis; far above its latency).
ROUND_SETTLE_S = 0.2
#: Seconds a receiver may wait for its probe before the study fails.
READ_TIMEOUT_S = 10.0


class Arrivals(TypedDict):
    """When one broadcast reached its receivers, in microseconds after its intended send time."""

    first_us: float
    p50_us: float
    p99_us: float
    last_us: float


class OneBroadcastResult(TypedDict):
    """What :func:`measure` returns (``--json`` prints it)."""

    clients: int
    fanout: str
    target: str
    protocol: str
    rounds: list[Arrivals]
    median: Arrivals  #: of each key over the rounds
    #: every measured delivery by label (a target of several nodes: ``path=same``/``path=cross``)
    labels: dict[str, Latency]


@dataclass(frozen=True, slots=True)
class Study:
    """What one study measures."""

    clients: int = 1000  #: receivers in all (on a cluster, receiver i on node i mod N)
    rounds: int = 20
    target: str = "embedded"
    protocol: str | None = None
    fanout: str = "queued"  #: this project's server only
    payload: int = 64
    timeout: float = READ_TIMEOUT_S
    tls: TlsOptions | None = None  #: every connection over TLS
    logins: Logins | None = None  #: client ``cid`` logs in with ``logins.for_client(cid)``

    @property
    def security(self) -> Security:
        return Security(tls=self.tls is not None, logins=self.logins)


@dataclass
class Member:
    """One registered connection of the study."""

    cid: int
    client: WireClient
    tracker: IntegrityTracker


def _arrivals(hist: LatencyHistogram) -> Arrivals:
    return {
        "first_us": float(hist.min),
        "p50_us": float(hist.percentile(50.0)),
        "p99_us": float(hist.percentile(99.0)),
        "last_us": float(hist.max),
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


def _ours(spec: str) -> bool:
    """Whether the target runs this project's server (it takes ``--fanout``;
    its join notices are switched off for the study: ``--announce-limit 0``)."""
    kind = parse_target(spec).kind
    return kind is not None and kind.ours


def _target(study: Study) -> Target:
    args = ["--fanout", study.fanout, "--announce-limit", "0"] if _ours(study.target) else []
    return make_target(study.target, args, None, study.protocol, study.security)


class Broadcasts:
    """The study's connections, its plan and its receive path."""

    def __init__(self, study: Study, addresses: list[tuple[str, int]]) -> None:
        self.study = study
        self.protocol = target_protocol(study.target, study.protocol)
        self.adapter = wire.get(self.protocol)
        self.tls = client_tls(study.tls, study.target)
        nodes = len(addresses)
        sender_only = not self.adapter.senders_receive
        deadline = time.monotonic() + study.timeout
        self.senders: list[Member] = []
        self.receivers: list[Member] = []
        clients: list[Client] = []
        try:
            for node, address in enumerate(addresses):  # one sender per node, cids 0..N-1
                self.senders.append(self._join(node, f"s{node}", address, deadline, sender_only))
                clients.append(Client(node, f"s{node}", receives=False, node=node))
            for i in range(study.clients):
                cid = nodes + i
                self.receivers.append(self._join(cid, f"r{i}", addresses[i % nodes], deadline, False))
                clients.append(Client(cid, f"r{i}", receives=True, node=i % nodes))
        except BaseException:
            self.close()
            raise
        self.plan: Plan = one_room(clients, {s.cid: s.cid for s in self.senders}, nodes=nodes)
        self.keys, self.routes = labels.routes(self.plan, [r.cid for r in self.receivers])
        self.totals = [LatencyHistogram() for _ in self.keys]
        self.reader = StampedReader(kernel=True, buffer_bytes=1 << 16)
        self.seqs = [0] * len(self.senders)

    def _join(self, cid: int, name: str, address: tuple[str, int], deadline: float, sender_only: bool) -> Member:
        client = WireClient.open(address, self.protocol, self.study.timeout, tls=self.tls)
        logins = self.study.logins
        try:
            login = logins.for_client(cid) if logins is not None else None
            client.register(name, deadline, sender_only=sender_only, credentials=login)
        except BaseException:
            client.close()
            raise
        return Member(cid, client, IntegrityTracker())

    def settle(self) -> None:
        """Let the registrations' traffic pass, drop it, and switch stamps on."""
        time.sleep(ROUND_SETTLE_S)
        for member in (*self.senders, *self.receivers):
            member.client.take_lines()
            discard_pending(member.client.sock, self.study.timeout)
        for member in self.receivers:
            if not self.reader.enable(member.client.sock):
                raise RuntimeError("could not enable SO_TIMESTAMPNS")

    def round(self, number: int, measured: bool) -> Arrivals | None:
        """One probe from sender ``number mod N``; every receiver must get it."""
        index = number % len(self.senders)
        sender, seq = self.senders[index], self.seqs[index]
        self.seqs[index] += 1
        labelled = Labelled(self.keys, self.routes)
        recorder = DeliveryRecorder(self.plan.sender_names(), labelled=labelled)
        path = ReceivePath(self.adapter, recorder)
        intended = time.monotonic_ns()
        text = probe.encode_probe(sender.cid, seq, intended, probe.make_payload(self.study.payload, sender.cid, seq))
        sender.client.sock.sendall(self.adapter.encode_message(sender.client.name, text))
        time.sleep(ROUND_SETTLE_S)
        unstamped = self.reader.unstamped_reads
        self.reader.housekeeping()
        for member in self.receivers:
            self._await(member, path, sender.cid, seq)
        if not measured:
            return None
        if self.reader.unstamped_reads != unstamped:
            raise RuntimeError("a read came without a kernel receive stamp")
        arrivals = _arrivals(labelled.merged())  # flushes the labels' histograms too
        for total, hist in zip(self.totals, labelled.hists, strict=True):
            total.merge(hist)
        return arrivals

    def _await(self, member: Member, path: ReceivePath, sid: int, seq: int) -> None:
        sock, tracker = member.client.sock, member.tracker
        while tracker.next_seq(sid) <= seq:
            try:
                read = self.reader.read(sock)
            except TimeoutError:
                raise RuntimeError(f"{member.client.name} did not get probe {seq} of s{sid}") from None
            if not read.data:
                raise RuntimeError(f"{member.client.name} was disconnected")
            incoming = path.take(member.client.decoder, tracker, member.cid, read)
            if incoming.reply:
                sock.sendall(incoming.reply)
            if incoming.ended is not None:
                raise RuntimeError(f"{member.client.name}: {incoming.ended}")
        if tracker.duplicated or tracker.reordered or tracker.corrupted:
            raise RuntimeError(f"{member.client.name} got a damaged, repeated or reordered probe")

    def close(self) -> None:
        for member in (*self.senders, *self.receivers):
            member.client.close()


def measure(study: Study) -> OneBroadcastResult:
    """Run the study; the per-round arrivals (us after each probe's intended
    send time) and their medians."""
    if not stamps.supported():
        raise RuntimeError("kernel receive stamps (SO_TIMESTAMPNS) are needed: Linux only")
    target = _target(study)
    try:
        host, port = target.start()
        addresses = target.node_addresses() or [(host, port)]
        if study.logins is not None:  # ours: the study's names and passwords, in its accounts file
            names = [*(f"s{n}" for n in range(len(addresses))), *(f"r{i}" for i in range(study.clients))]
            target.enroll([(name, study.logins.for_client(cid).password) for cid, name in enumerate(names)])
        group = Broadcasts(study, addresses)
        try:
            group.settle()
            for member in group.receivers:
                member.client.sock.settimeout(study.timeout)
            # Round 0 is not measured: when no socket on the machine had stamps
            # on, Linux switches stamping on from a work queue, so the first
            # segments after enabling can go unstamped.
            per_round = [a for n in range(study.rounds + 1) if (a := group.round(n, measured=n > 0)) is not None]
        finally:
            group.close()
    finally:
        target.stop()
    by_label = {key: h.summary() for key, h in zip(group.keys, group.totals, strict=True) if key}
    return {
        "clients": study.clients,
        "fanout": study.fanout,
        "target": study.target,
        "protocol": group.protocol,
        "rounds": per_round,
        "median": _medians(per_round),
        "labels": by_label,
    }


def configure(parser: argparse.ArgumentParser) -> None:
    """Add this study's options to ``parser`` (``python -m bench onebroadcast``)."""
    parser.description = __doc__.split("\n\n")[0] if __doc__ else None
    parser.epilog = (
        "Arrival = the kernel's receive stamp at each client minus the probe's intended send time "
        "(just before the sender's send). Any --target: e.g. redis, nats, mosquitto, embedded-ws, cluster:2."
    )
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("--clients", type=int, default=1000, help="receiving clients (one more connection sends)")
    parser.add_argument("--rounds", type=int, default=20, help="broadcasts measured, one at a time")
    parser.add_argument("--target", default="embedded", help="what to measure (as for `run`; loopback only)")
    parser.add_argument("--protocol", help="the protocol of a HOST:PORT or ws:// target (as for `run`)")
    parser.add_argument("--fanout", choices=FANOUT_STRATEGIES, default="queued", help="our server's strategy")
    parser.add_argument("--payload", type=int, default=64, help="characters of the probe's payload")
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    cli.add_parents(parser, cli.security_options())


def run(args: argparse.Namespace) -> int:
    """Measure and print; 1 if the measurement failed, 2 for nonsense options."""
    if args.clients < 1 or args.rounds < 1:
        print("bench onebroadcast: error: --clients and --rounds must be at least 1", file=sys.stderr)
        return 2
    tls, logins = cli.client_security(args)
    if tls is not None and tls.resume:
        print("bench onebroadcast: error: --tls-resume applies to the swarm (one session per worker)", file=sys.stderr)
        return 2
    study = Study(
        args.clients, args.rounds, args.target, args.protocol, args.fanout, args.payload, tls=tls, logins=logins
    )
    if logins is not None:
        protocol = target_protocol(study.target, study.protocol)
        try:
            logins.check(protocol, wire.get(protocol).login, 1)
        except CredentialsError as exc:
            print(f"bench onebroadcast: error: {exc}", file=sys.stderr)
            return 2
    try:
        result = measure(study)
    except (RuntimeError, OSError, ClientError, TargetError) as exc:
        print(f"bench onebroadcast: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    m = result["median"]
    what = f"fanout={args.fanout}" if args.target == "embedded" else f"{args.target}, {result['protocol']}"
    print(
        f"one broadcast to {args.clients} idle clients ({what}, median of {args.rounds} rounds): "
        f"first {m['first_us'] / 1000:.2f} ms, median {m['p50_us'] / 1000:.2f} ms, "
        f"p99 {m['p99_us'] / 1000:.2f} ms, last {m['last_us'] / 1000:.2f} ms"
    )
    for key, lat in result["labels"].items():
        print(f"  {key}: {lat['count']} deliveries, p50 {ms(lat['p50_us'])} ms, p99 {ms(lat['p99_us'])} ms")
    return 0
