"""A connection's setup split into its steps (bench.measure.connects): what
each step holds in plaintext and over TLS, and that kinds merge exactly
across processes."""

from __future__ import annotations

import pickle
from dataclasses import dataclass

import pytest

from bench.measure.connects import ConnectLatency


@dataclass
class Handshake:
    handshake_ns: int
    session_reused: bool
    version: str | None = "TLSv1.3"
    cipher: str | None = "TLS_AES_256_GCM_SHA384"


@dataclass
class Stamps:
    opened_ns: int
    up_ns: int
    secured_ns: int = 0
    tls: Handshake | None = None


MS = 1_000_000


def approx(us: int) -> object:
    """An HDR histogram's value: within 0.1% (3 significant digits)."""
    return pytest.approx(us, rel=1e-3)


def test_plaintext_has_no_tls_step_and_the_steps_add_up() -> None:
    setup = ConnectLatency()
    setup.record(Stamps(opened_ns=10 * MS, up_ns=11 * MS), done_ns=14 * MS)
    assert (setup.tcp.count, setup.registration.count, setup.total.count) == (1, 1, 1)
    assert setup.tls().count == 0 and not setup.negotiated
    assert setup.tcp.summary()["max_us"] == approx(1000)
    assert setup.registration.summary()["max_us"] == approx(3000)
    assert setup.total.summary()["max_us"] == approx(4000)


def test_over_tls_the_handshake_is_its_own_step_full_and_resumed_apart() -> None:
    setup = ConnectLatency()
    full = Stamps(0, 1 * MS, 6 * MS, Handshake(handshake_ns=5 * MS, session_reused=False))
    resumed = Stamps(0, 1 * MS, 3 * MS, Handshake(handshake_ns=2 * MS, session_reused=True))
    setup.record(full, done_ns=8 * MS)
    setup.record(resumed, done_ns=4 * MS)
    assert (setup.tls_full.count, setup.tls_resumed.count, setup.tls().count) == (1, 1, 2)
    assert setup.tls_full.summary()["max_us"] == approx(5000) and setup.tls_resumed.summary()["max_us"] == approx(2000)
    # registration counts from the end of the handshake, not of TCP
    registration = setup.registration.summary()
    assert registration["min_us"] == approx(1000) and registration["max_us"] == approx(2000)
    assert dict(setup.negotiated) == {"TLSv1.3 TLS_AES_256_GCM_SHA384": 2}
    # a channel whose handshake never finished (no secured stamp) adds no TLS step
    setup.record(Stamps(0, 1 * MS, 0, Handshake(0, False)), done_ns=2 * MS)
    assert setup.tls().count == 2 and setup.total.count == 3


def test_kinds_travel_encoded_and_merge_exactly() -> None:
    a, b = ConnectLatency(), ConnectLatency()
    a.record(Stamps(0, 1 * MS, 2 * MS, Handshake(1 * MS, False)), done_ns=3 * MS)
    b.record(Stamps(0, 2 * MS), done_ns=9 * MS)
    merged = ConnectLatency()
    for part in (a, b):
        merged.merge(ConnectLatency.decode(pickle.loads(pickle.dumps(part.encoded()))))
    assert merged.total.count == 2 and merged.tcp.count == 2 and merged.tls_full.count == 1
    assert merged.total.summary()["max_us"] == approx(9000)
    assert dict(merged.negotiated) == {"TLSv1.3 TLS_AES_256_GCM_SHA384": 1}
