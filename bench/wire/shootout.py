"""The hashrocket websocket-shootout protocol (``--protocol shootout``), so
the harness can measure any of that project's servers (``--target
ws://127.0.0.1:PORT/ws``) and this project's own (``/ws-shootout``).

The protocol has no names and no registration: a client sends
``{"type": "broadcast", "payload": P}``, every client (the sender too)
receives ``{"type": "broadcast", "payload": P}``, and the sender also gets
``{"type": "broadcastResult", ...}``.  Here ``P`` is the probe text, and a
received broadcast becomes the chat line ``NAME: P`` the recorder reads, NAME
being the name of the sender the probe names (:meth:`bind_senders`), so the
integrity checks and latency are exactly a chat run's; a sender's own
broadcast counts as an echo, never a delivery.

The reference servers serve it on ``/ws``; so does this project's with
``--ws-shootout`` (``--target embedded --protocol shootout`` starts it so).
Registration: the upgrade, then one ``echo`` round trip (the server has
taken the connection in once it answers).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from bench.wire.base import Decoder, Incoming, Registration, Step
from bench.wire.chat import RECEIVER_LINE_LIMIT
from bench.wire.ws_adapter import PING_MARK, WsAdapter, WsDecoder, mask_text, upgrade_request
from server import protocol

#: The path the shootout's servers serve it on (this project's server: with
#: ``--ws-shootout``; without, on ``/ws-shootout``).
SHOOTOUT_PATH = "/ws"
#: What the decoder gives when the handshake succeeded (not a frame: a NUL
#: cannot start a JSON text).
OPENED = b"\x00opened"
#: How a broadcast starts, as the reference servers and ours write it.
BROADCAST_PREFIXES = (b'{"type":"broadcast"', b'{"type": "broadcast"')


class ShootoutRegistration:
    """The upgrade, then an ``echo`` round trip."""

    __slots__ = ("echo", "path")

    def __init__(self, name: str, path: str) -> None:
        self.path = path
        self.echo = f"register {name}"

    def connected(self) -> bytes:
        return upgrade_request(self.path)

    def line(self, line: bytes) -> Step:
        if line == OPENED:
            return Step(send=mask_text(json.dumps({"type": "echo", "payload": self.echo}).encode()))
        if line.startswith(b"{"):
            try:
                msg = json.loads(line)
            except ValueError:
                return Step()
            if isinstance(msg, dict) and msg.get("type") == "echo" and msg.get("payload") == self.echo:
                return Step(done=True)
            return Step()
        try:
            event = protocol.parse_server_line(protocol.decode_text(line))
        except protocol.ProtocolError:
            return Step()
        if isinstance(event, protocol.Disconnected):
            return Step(error=f"disconnected: {event.reason[:60]}")
        return Step()


class ShootoutAdapter(WsAdapter):
    """websocket-shootout: probes travel as broadcast payloads."""

    name = "shootout"

    def __init__(self, receive_limit: int = RECEIVER_LINE_LIMIT, path: str = SHOOTOUT_PATH) -> None:
        super().__init__(receive_limit, path)
        self.name_of: Callable[[str], str | None] = lambda text: None

    def bind_senders(self, name_of: Callable[[str], str | None]) -> None:
        self.name_of = name_of

    def decoder(self) -> Decoder:
        return WsDecoder(self.receive_limit, opened_line=OPENED)

    def registration(self, name: str) -> Registration:
        return ShootoutRegistration(name, self.path)

    def encode_chat(self, text: str) -> bytes:
        return mask_text(json.dumps({"type": "broadcast", "payload": text}).encode())

    def translate_block(self, block: bytes) -> bytes | None:
        """Broadcasts as ``NAME: PROBE`` chat lines; broadcastResult and
        anything else dropped; None when a ping is in the block."""
        if PING_MARK in block:
            return None
        return self._broadcasts(block)

    def incoming(self, lines: list[bytes]) -> Incoming:
        """Pongs for pings, and the broadcasts as chat lines."""
        got = super().incoming(lines)
        chat = self._broadcasts(b"\n".join(got.lines))
        return Incoming(protocol.split_block(chat) if chat else [], reply=got.reply)

    def _broadcasts(self, block: bytes) -> bytes:
        out: list[str] = []
        name_of = self.name_of
        for line in block.split(b"\n"):
            if not line.startswith(BROADCAST_PREFIXES):
                continue
            try:
                payload = json.loads(line).get("payload")
            except (ValueError, AttributeError):
                continue
            if isinstance(payload, str):
                out.append(f"{name_of(payload) or '?'}: {payload}\n")
        return "".join(out).encode()
