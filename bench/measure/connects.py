"""How long a connection takes to set up, split into its steps (HDR, microseconds).

The one place a connection's setup is measured: the swarm's connections of
every kind (the initial ones, churn replacements, a storm's reconnects,
connect-rate probes; plaintext or TLS) and the ``handshakes`` study's
attempts.  A connection is timed from the ``connect()`` call to the moment
the harness saw its registration confirmed, in steps:

* **tcp**: ``connect()`` until the socket is writable (the handshake done;
  with a full listen backlog this holds the SYN retransmissions: 1 s, 3 s, ...);
* **tls_full** / **tls_resumed**: the TLS handshake, ClientHello to the
  server's Finished (:attr:`bench.net.tls.TlsChannel.handshake_ns`), full
  and resumed handshakes apart; nothing recorded in plaintext.  With NATS
  the handshake starts after the server's plaintext ``INFO``, so the steps
  need not add up to ``total``;
* **registration**: from there (the end of the TLS handshake, or of TCP) to
  the registration confirmed: our welcome line (and each room's confirmation),
  IRC's ``001`` (and each channel's ``366``), MQTT's ``CONNACK`` (and ``SUBACK``),
  Redis's and NATS's first replies, WebSocket's ``101`` then the welcome.

``total`` is ``connect()`` to registered.  :class:`ConnectLatency` keeps one
histogram per step for one kind of connection, and what TLS negotiated;
kinds travel between processes encoded (:class:`EncodedConnects`) and merge
exactly.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from bench.measure.labelled import EncodedHistogram
from bench.measure.stats import LatencyHistogram

#: The steps, in order.
STEPS = ("tcp", "tls_full", "tls_resumed", "registration", "total")


class Handshake(Protocol):
    """What a TLS channel says of its handshake (:class:`bench.net.tls.TlsChannel`)."""

    @property
    def handshake_ns(self) -> int:
        """ClientHello to the server's Finished (0: not established)."""
        ...

    @property
    def session_reused(self) -> bool: ...

    @property
    def version(self) -> str | None: ...

    @property
    def cipher(self) -> str | None: ...


class SetupStamps(Protocol):
    """A connection's setup as its loop stamped it (monotonic ns; 0: not reached)."""

    @property
    def opened_ns(self) -> int:
        """``connect()`` was called."""
        ...

    @property
    def up_ns(self) -> int:
        """TCP is up (the socket became writable)."""
        ...

    @property
    def secured_ns(self) -> int:
        """The TLS handshake is done (0: plaintext)."""
        ...

    @property
    def tls(self) -> Handshake | None: ...


@dataclass(frozen=True, slots=True)
class EncodedConnects:
    """One kind's histograms as they travel between processes."""

    tcp: EncodedHistogram
    tls_full: EncodedHistogram
    tls_resumed: EncodedHistogram
    registration: EncodedHistogram
    total: EncodedHistogram
    negotiated: dict[str, int] = field(default_factory=dict)


class ConnectLatency:
    """The setup latencies of one kind of connection."""

    __slots__ = ("negotiated", "registration", "tcp", "tls_full", "tls_resumed", "total")

    def __init__(self) -> None:
        self.tcp = LatencyHistogram()
        self.tls_full = LatencyHistogram()
        self.tls_resumed = LatencyHistogram()
        self.registration = LatencyHistogram()
        self.total = LatencyHistogram()
        #: what TLS negotiated ("TLSv1.3 TLS_AES_256_GCM_SHA384") -> connections
        self.negotiated: Counter[str] = Counter()

    def record(self, conn: SetupStamps, done_ns: int) -> None:
        """A connection registered at ``done_ns``: every step of its setup."""
        self.record_tcp(conn)
        self.record_tls(conn)
        self.record_registration(conn, done_ns)
        self.total.record((max(done_ns, conn.opened_ns) - conn.opened_ns) // 1000)

    def record_tcp(self, conn: SetupStamps) -> None:
        """The TCP step alone (a loop that times each step when it ends)."""
        self.tcp.record((max(conn.up_ns, conn.opened_ns) - conn.opened_ns) // 1000)

    def record_tls(self, conn: SetupStamps) -> None:
        """The TLS handshake alone, if there was one."""
        tls = conn.tls
        if tls is None or not conn.secured_ns:
            return
        (self.tls_resumed if tls.session_reused else self.tls_full).record(tls.handshake_ns // 1000)
        self.negotiated[f"{tls.version} {tls.cipher}"] += 1

    def record_registration(self, conn: SetupStamps, done_ns: int) -> None:
        """The end of TLS (or of TCP) to registered at ``done_ns``."""
        ready_ns = max(conn.secured_ns, conn.up_ns, conn.opened_ns)
        self.registration.record((max(done_ns, ready_ns) - ready_ns) // 1000)

    def tls(self) -> LatencyHistogram:
        """Every handshake, full and resumed together."""
        both = LatencyHistogram()
        both.merge(self.tls_full)
        both.merge(self.tls_resumed)
        return both

    def merge(self, other: ConnectLatency) -> None:
        for step in STEPS:
            getattr(self, step).merge(getattr(other, step))
        self.negotiated.update(other.negotiated)

    def encoded(self) -> EncodedConnects:
        return EncodedConnects(
            EncodedHistogram.of(self.tcp),
            EncodedHistogram.of(self.tls_full),
            EncodedHistogram.of(self.tls_resumed),
            EncodedHistogram.of(self.registration),
            EncodedHistogram.of(self.total),
            dict(self.negotiated),
        )

    @classmethod
    def decode(cls, encoded: EncodedConnects) -> ConnectLatency:
        out = cls()
        for step in STEPS:
            setattr(out, step, getattr(encoded, step).decode())
        out.negotiated.update(encoded.negotiated)
        return out
