"""The hashrocket websocket-shootout protocol (``--protocol shootout``), so
the harness can measure any of that project's servers (``--target
ws://127.0.0.1:PORT/ws``) and this project's own (``/ws-shootout``).

The protocol has no names and no registration: a client sends
``{"type": "broadcast", "payload": P}``, every client (the sender too)
receives ``{"type": "broadcast", "payload": P}``, and the sender also gets
``{"type": "broadcastResult", ...}``.  Here ``P`` is the probe text, and a
received broadcast is the delivery pair ``(None, P)``: the protocol carries
no names, so the recorder checks everything but the name (the probe's own
checksum still covers its sender field), and the integrity checks and
latency are exactly a chat run's; a sender's own broadcast counts as an
echo, never a delivery.

The reference servers serve it on ``/ws``; so does this project's with
``--ws-shootout`` (``--target embedded --protocol shootout`` starts it so).
Registration: the upgrade, then one ``echo`` round trip (the server has
taken the connection in once it answers).
"""

from __future__ import annotations

import json

from bench.wire.base import Decoder, Incoming, Pair, Registration, Step
from bench.wire.chat import RECEIVER_LINE_LIMIT
from bench.wire.credentials import LOGIN_NONE, Credentials
from bench.wire.lines import split_block
from bench.wire.ws_adapter import WsAdapter, WsDecoder, mask_text, upgrade_request
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
    no_rooms = "the websocket-shootout protocol has no rooms (every client hears every broadcast)"
    login = LOGIN_NONE

    def __init__(self, receive_limit: int = RECEIVER_LINE_LIMIT, path: str = SHOOTOUT_PATH) -> None:
        super().__init__(receive_limit, path)

    def decoder(self) -> Decoder:
        return WsDecoder(self.receive_limit, opened_line=OPENED)

    def registration(
        self, name: str, credentials: Credentials | None = None, rooms: tuple[str, ...] = ("",)
    ) -> Registration:
        return ShootoutRegistration(name, self.path)

    def encode_chat(self, text: str) -> bytes:
        return mask_text(json.dumps({"type": "broadcast", "payload": text}).encode())

    def encode_message(self, sender: str, text: str, room: str = "") -> bytes:
        return self.encode_chat(text)

    def deliveries(self, block: bytes) -> Incoming:
        """Broadcasts as nameless pairs, a masked pong for every ping;
        broadcastResult and anything else dropped."""
        got = super().deliveries(block)
        return Incoming(pairs=_broadcasts(got.lines), reply=got.reply)


def _broadcasts(block: bytes) -> list[Pair]:
    """The payloads of the broadcasts in ``block`` (one JSON text per line)."""
    out: list[Pair] = []
    for line in split_block(block):
        if not line.startswith(BROADCAST_PREFIXES):
            continue
        try:
            payload = json.loads(line).get("payload")
        except (ValueError, AttributeError):
            continue
        if isinstance(payload, str):
            out.append((None, payload.encode("utf-8")))
    return out
