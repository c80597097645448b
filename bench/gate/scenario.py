"""The gate's fixed scenario: what one measurement runs, and its limits.

Changing a default here invalidates the committed baseline (the comparison
refuses a baseline recorded with a different scenario: :data:`SCENARIO_KEYS`
in :mod:`bench.gate.baseline`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Literal

from bench.targets.base import Security
from bench.wire.client import PLAIN, Access

#: Receivers per burst: enough that per-recipient cost dominates the round.
DEFAULT_CLIENTS = 50
#: Lines per burst.  100 lines of ~120 bytes are ~12 KB per receiver, ~600 KB
#: per burst: about a millisecond of work on the 2-core dev VM, short enough
#: to often run between two preemptions, long enough to dwarf clock jitter.
DEFAULT_LINES = 100
#: Probe payload characters per line.
DEFAULT_PAYLOAD = 64
#: Measured rounds per target (each round is one burst).  Statistics use
#: the faster half of them (see :func:`bench.gate.run.fast_half_mean`).
DEFAULT_ROUNDS = 25
#: Rounds per target run first and thrown away (connection warm-up, writer
#: threads started, caches warm).
DEFAULT_WARMUP = 3
#: A burst not delivered completely within this many seconds means the
#: target is stalled; with a few milliseconds per burst this is very generous.
DEFAULT_BURST_TIMEOUT = 2.0
#: Seconds for one client's connection and handshake (and for the join
#: notices of a whole group).
HANDSHAKE_TIMEOUT = 10.0
#: Receive buffer of the "stalled" client: small, so the server cannot hide
#: a non-reading client behind big kernel buffers for long.
STALLED_RCVBUF = 4096
#: A client that stopped reading long ago has full buffers: the server's
#: send buffer towards it autotunes up to 4 MiB on Linux, i.e. ~250 of the
#: gate's bursts.  Rather than waiting for that, a "filler" client sends the
#: stalled one private messages until the server stops reading the filler
#: (``direct``: its thread is stuck in a send) or this many bytes went out
#: (``queued``: the server cut the stalled client off at its send queue limit).
PREFILL_LIMIT_BYTES = 32 << 20
#: Characters of one filler message: a long line, well below the server's
#: default line limit.
PREFILL_TEXT_CHARS = 3800
#: The server has stopped reading the filler when a send blocks this long.
PREFILL_BLOCKED_SECONDS = 1.0
#: Probe sender id used by the gate (bench.measure.probe's SENDER field).
SENDER_ID = 1

SENDER_NAME = "gate-sender"
FILLER_NAME = "gate-filler"
STALLED_PREFIX = "gate-stalled"
RECEIVER_PREFIX = "gate-r"


class GateError(Exception):
    """The measurement itself failed (a target did not start, a line was
    lost or corrupted, the baseline is unusable): not a verdict."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """What one gate run measures: the burst, the rounds, the server under test."""

    clients: int = DEFAULT_CLIENTS
    lines: int = DEFAULT_LINES
    payload: int = DEFAULT_PAYLOAD
    rounds: int = DEFAULT_ROUNDS
    warmup: int = DEFAULT_WARMUP
    burst_timeout: float = DEFAULT_BURST_TIMEOUT
    #: ``--fanout`` of the server under test.
    fanout: Literal["queued", "direct"] = "queued"
    #: Registered clients on the server that never read (joined first).
    stalled: int = 0
    #: Command that starts the server under test; ``None``: ``python -m
    #: server`` with ``fanout``.  It must log ``listening on HOST:PORT``.
    server_command: tuple[str, ...] | None = None
    #: Another target to measure instead (a ``--target`` value: ``redis``,
    #: ``nats``, ``embedded-ws``, ...), in its own protocol; None: our server
    #: (``server_command``).  No baseline applies to it: the ratio is measured only.
    target: str | None = None
    protocol: str | None = None  #: the protocol of a HOST:PORT or ws:// ``target``
    #: ``--tls`` and logins, for ``target`` only (the baseline is our plaintext server's)
    access: Access = PLAIN

    def __post_init__(self) -> None:
        if self.clients < 1 or self.lines < 1 or self.rounds < 1:
            raise ValueError("clients, lines and rounds must be at least 1")
        if self.payload < 0 or self.warmup < 0 or self.stalled < 0:
            raise ValueError("payload, warmup and stalled must not be negative")
        if self.burst_timeout <= 0:
            raise ValueError("burst timeout must be positive")
        if self.target is not None and self.server_command is not None:
            raise ValueError("--target and --server-command name two servers: give one")
        if self.access != PLAIN and self.target is None:
            raise ValueError("--tls and logins apply with --target (the baseline is our server's, in plaintext)")

    def server_argv(self) -> list[str]:
        if self.server_command is not None:
            return list(self.server_command)
        return [
            sys.executable,
            "-m",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--log-level",
            "INFO",
            "--rate-limit",  # flood control off: a burst is the measurement, not a flood
            "0",
            "--fanout",
            self.fanout,
        ]

    def describe(self) -> str:
        server = f"target={self.target}" if self.target is not None else f"fanout={self.fanout}"
        text = f"{self.clients} receivers x {self.lines} lines ({self.payload}-char payload), {server}"
        if self.stalled:
            text += f", {self.stalled} non-reading client(s)"
        if self.access.tls is not None:
            text += ", over TLS"
        return text

    @property
    def security(self) -> Security:
        """What the target is started with."""
        return Security(tls=self.access.tls is not None, logins=self.access.logins)

    def key(self) -> dict[str, int]:
        return {"clients": self.clients, "lines": self.lines, "payload": self.payload}
