"""This project's server with its WebSocket port on (``--target embedded
--protocol ws``): the swarm connects to ``--ws-port``, not the TCP port."""

from __future__ import annotations

import time

from bench.targets.base import POLL_INTERVAL_S, TargetError, can_connect, free_port
from bench.targets.embedded import EmbeddedTarget

#: Seconds the WebSocket port gets to accept once the TCP port does (the
#: server opens both before it logs that it listens).
WS_PORT_WAIT_S = 5.0


class EmbeddedWsTarget(EmbeddedTarget):
    """The embedded server, measured through its WebSocket port."""

    protocol = "ws"
    label = "embedded server (websocket)"

    ws_port = 0
    #: More server options this variant needs.
    ws_args: tuple[str, ...] = ()

    def prepare(self, port: int) -> None:
        self.ws_port = free_port(self.host)

    def command(self, port: int) -> list[str]:
        ws = "--wss-port" if self.certificate is not None else "--ws-port"
        return [*super().command(port), ws, str(self.ws_port), *self.ws_args]

    def listen_args(self, port: int) -> list[str]:
        """The plaintext TCP port (where start-up is watched) and, with TLS,
        the WebSocket port over TLS (``--wss-port``) is the clients'."""
        return ["--port", str(port)]

    def start(self) -> tuple[str, int]:
        host, _ = super().start()
        deadline = time.monotonic() + WS_PORT_WAIT_S
        while not can_connect(host, self.ws_port):
            if time.monotonic() > deadline:
                self.stop()
                raise TargetError(f"{self.label}: websocket port {self.ws_port} did not accept")
            time.sleep(POLL_INTERVAL_S)
        self.address = (host, self.ws_port)
        return self.address


class EmbeddedShootoutTarget(EmbeddedWsTarget):
    """The embedded server speaking the websocket-shootout protocol on ``/ws``."""

    protocol = "shootout"
    label = "embedded server (websocket-shootout)"
    ws_args = ("--ws-shootout",)
