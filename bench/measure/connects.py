"""How long a connection takes to set up, split into its steps (HDR, microseconds).

A connection's setup is timed from the ``connect()`` call to the moment the
harness saw its registration confirmed, in three steps:

* **tcp**: ``connect()`` until the socket is writable (the handshake done;
  with a full listen backlog this holds the SYN retransmissions: 1 s, 3 s, ...);
* **tls**: the TLS handshake, for a TLS target; absent (nothing recorded)
  in plaintext -- the transport that adds a handshake stamps its end
  (``tls_ns``) and this module records it;
* **registration**: from there (the end of the TLS handshake, or of TCP) to
  the registration confirmed: our welcome line (and each room's confirmation),
  IRC's ``001`` (and each channel's ``366``), MQTT's ``CONNACK`` (and ``SUBACK``),
  Redis's and NATS's first replies, WebSocket's ``101`` then the welcome.

``total`` is the sum.  :class:`ConnectLatency` keeps one histogram per step
for one kind of connection (the initial ones, churn replacements, a storm's
reconnects, connect-rate probes); kinds travel between processes encoded
(:class:`EncodedConnects`) and merge exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.measure.labelled import EncodedHistogram
from bench.measure.stats import LatencyHistogram

#: The steps, in order (``total`` is their sum).
STEPS = ("tcp", "tls", "registration", "total")


@dataclass(frozen=True, slots=True)
class EncodedConnects:
    """One kind's histograms as they travel between processes."""

    tcp: EncodedHistogram
    tls: EncodedHistogram
    registration: EncodedHistogram
    total: EncodedHistogram


class ConnectLatency:
    """The setup latencies of one kind of connection."""

    __slots__ = ("registration", "tcp", "tls", "total")

    def __init__(self) -> None:
        self.tcp = LatencyHistogram()
        self.tls = LatencyHistogram()
        self.registration = LatencyHistogram()
        self.total = LatencyHistogram()

    def record(self, started_ns: int, tcp_ns: int, tls_ns: int, done_ns: int) -> None:
        """One connection: ``connect()`` at ``started_ns``, TCP up at
        ``tcp_ns``, the TLS handshake done at ``tls_ns`` (0: plaintext), its
        registration confirmed at ``done_ns`` (monotonic ns)."""
        tcp_ns = max(tcp_ns, started_ns)
        self.tcp.record((tcp_ns - started_ns) // 1000)
        ready_ns = tcp_ns
        if tls_ns:
            ready_ns = max(tls_ns, tcp_ns)
            self.tls.record((ready_ns - tcp_ns) // 1000)
        self.registration.record((max(done_ns, ready_ns) - ready_ns) // 1000)
        self.total.record((max(done_ns, started_ns) - started_ns) // 1000)

    def merge(self, other: ConnectLatency) -> None:
        self.tcp.merge(other.tcp)
        self.tls.merge(other.tls)
        self.registration.merge(other.registration)
        self.total.merge(other.total)

    def encoded(self) -> EncodedConnects:
        return EncodedConnects(
            EncodedHistogram.of(self.tcp),
            EncodedHistogram.of(self.tls),
            EncodedHistogram.of(self.registration),
            EncodedHistogram.of(self.total),
        )

    @classmethod
    def decode(cls, encoded: EncodedConnects) -> ConnectLatency:
        out = cls()
        out.tcp = encoded.tcp.decode()
        out.tls = encoded.tls.decode()
        out.registration = encoded.registration.decode()
        out.total = encoded.total.decode()
        return out
