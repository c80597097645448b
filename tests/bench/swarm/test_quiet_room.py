"""The swarm measures in a quiet room: traffic starts only once the clients
have stopped receiving registration traffic (join notices and the like).

The target is a small chat relay written here that keeps talking to every
client for a while after it registers (``*** noise`` lines), as our server
does with join notices while a thousand clients arrive.  A swarm that
started its traffic at once would measure its probes behind that noise.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from bench.swarm import SwarmConfig, run_swarm
from bench.swarm.run import QUIET_S, SETTLE_TIMEOUT_S
from server import protocol

#: How long the relay keeps sending noise after the last client registered.
NOISE_S = 1.2
#: Gap between two noise lines to one client.
NOISE_EVERY_S = 0.05


class NoisyRelay(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), NoisyHandler)
        self.lock = threading.Lock()
        self.clients: dict[str, socket.socket] = {}
        self.noise_until = 0.0
        #: the monotonic times of the last noise line sent and of the first chat line relayed
        self.last_noise = 0.0
        self.first_chat = 0.0

    def relay(self, sender: str, text: str) -> None:
        line = protocol.encode_message(sender, text)
        with self.lock:
            self.first_chat = self.first_chat or time.monotonic()
            for name, sock in self.clients.items():
                if name != sender:
                    sock.sendall(line)


class NoisyHandler(socketserver.StreamRequestHandler):
    server: NoisyRelay

    def handle(self) -> None:
        self.request.settimeout(30)
        self.wfile.write(protocol.encode_prompt())
        raw = self.rfile.readline()
        if not raw:
            return  # the harness's "is anybody there" probe
        name = raw.decode().strip()
        relay = self.server
        with relay.lock:
            relay.clients[name] = self.request
            relay.noise_until = time.monotonic() + NOISE_S
            self.request.sendall(protocol.encode_welcome(name, sorted(relay.clients)))
        threading.Thread(target=self._noise, daemon=True).start()
        for raw in self.rfile:
            relay.relay(name, raw.decode().rstrip("\n"))

    def _noise(self) -> None:
        relay = self.server
        while time.monotonic() < relay.noise_until:
            with relay.lock:
                self.request.sendall(protocol.encode_line("*** noise"))
                relay.last_noise = time.monotonic()
            time.sleep(NOISE_EVERY_S)


@pytest.fixture
def noisy_relay() -> Iterator[NoisyRelay]:
    relay = NoisyRelay()
    thread = threading.Thread(target=relay.serve_forever, daemon=True)
    thread.start()
    try:
        yield relay
    finally:
        relay.shutdown()
        relay.server_close()


def test_traffic_starts_only_once_registration_traffic_has_stopped(noisy_relay: NoisyRelay) -> None:
    port = noisy_relay.server_address[1]
    doc = run_swarm(
        SwarmConfig(clients=6, rate=50, messages=20, warmup_s=0, workers=2, target=f"127.0.0.1:{port}", progress=False)
    )
    # The first probe reached the relay after its last noise line, a quiet spell later...
    assert noisy_relay.first_chat - noisy_relay.last_noise >= QUIET_S - NOISE_EVERY_S
    # ...and the run says how long it waited for that.
    assert doc["timing"]["settle_s"] >= NOISE_S - 0.5, doc["timing"]
    assert doc["deliveries"]["delivered"] == doc["deliveries"]["expected"] == 20 * 5
    assert doc["integrity"]["faults"] == 0


def test_a_quiet_target_is_not_held_to_the_timeout() -> None:
    doc = run_swarm(SwarmConfig(clients=4, rate=0, messages=8, workers=1, progress=False, sample_interval_s=0.2))
    # The quiet spell may have begun before the wait did (the last join notice
    # arrived during registration), so the wait can be shorter than QUIET_S.
    assert 0 < doc["timing"]["settle_s"] < SETTLE_TIMEOUT_S / 2, doc["timing"]
    assert doc["deliveries"]["delivered"] == doc["deliveries"]["expected"]
