"""This project's chat protocol over WebSocket (``--protocol ws``): the
server's ``/ws`` path, one text frame per chat line each way.

Registration is the chat protocol's (:class:`~bench.wire.chat.ChatRegistration`)
after an HTTP upgrade: :meth:`WsRegistration.connected` sends wsproto's
handshake request, and the lines it answers with go out as masked text frames
(RFC 6455 5.3: every client frame is masked; wsproto masks them).

Received frames are decoded by :class:`WsDecoder` into the same ``\\n``-ended
lines the TCP protocol delivers (each text frame is one line), so the
recorder's block fast path, the integrity checks and the kernel receive
stamps are exactly the chat protocol's.  The decoder reads server frames by hand: it runs once per
delivered message in the swarm's workers, and wsproto's event API costs
~5.5 us per frame against ~0.12 us here (50 frames of 108 bytes, measured
on this 2-core machine), which at 100,000 deliveries/s is half a core.
"""

from __future__ import annotations

from wsproto import ConnectionType, WSConnection
from wsproto.events import Request
from wsproto.frame_protocol import FrameProtocol

from bench.wire.address import parse_address
from bench.wire.base import Adapter, Decoder, Incoming, Registration, Step
from bench.wire.chat import RECEIVER_LINE_LIMIT, ChatAdapter, ChatRegistration
from bench.wire.credentials import LOGIN_NAME, Credentials
from bench.wire.lines import split_block
from server import protocol

#: The server's WebSocket chat path (``server.websocket.CHAT_PATH``).
WS_PATH = "/ws"
#: Host header of the handshake: the harness only speaks to loopback.
WS_HOST = "127.0.0.1"

#: Longest HTTP response head accepted before the frames start; a server's
#: 101 is a few hundred bytes.
MAX_RESPONSE_HEAD_BYTES = 16384

#: Frame opcodes (RFC 6455 5.2).
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING = 0x0, 0x1, 0x2, 0x8, 0x9
#: How the decoder hands a server ping to the adapter: a line no text frame
#: of a chat or shootout server starts with (a NUL), then the ping's payload.
PING_MARK = b"\x00ping "
FIN = 0x80
MASKED = 0x80


#: Port of a ``ws://HOST`` URL without one (the HTTP default).
DEFAULT_WS_PORT = 80
#: What a ``ws://HOST:PORT`` URL may end with: the chat's WebSocket path, or nothing.
WS_PATHS = ("", WS_PATH)


def parse_ws_url(url: str) -> tuple[str, int]:
    """``ws://HOST:PORT/ws`` (or ``HOST:PORT``) -> (host, port); ``ValueError``
    saying what is wrong otherwise (another scheme or path, no host, a bad port)."""
    address = parse_address(url, schemes=("ws",), default_scheme="ws", default_port=DEFAULT_WS_PORT, paths=WS_PATHS)
    return address.host, address.port


class WsProtocolError(protocol.LineTooLong):
    """The server broke the WebSocket framing (a masked frame, a frame past
    the receive limit).  A ``LineTooLong``, so every driver that already ends
    a connection on a line past its limit ends this one too."""

    def __init__(self, why: str, limit: int = RECEIVER_LINE_LIMIT) -> None:
        super().__init__(limit)
        self.args = (why,)


def mask_text(line: bytes) -> bytes:
    """One chat line (its newline dropped) as a masked client text frame."""
    text = line[:-1] if line.endswith(b"\n") else line
    return bytes(FrameProtocol(client=True, extensions=[]).send_data(text.decode(), fin=True))


class WsDecoder:
    """Server bytes -> chat lines: the HTTP response head, then frames.

    A refused handshake (any status but 101) becomes the chat protocol's
    ``*** Disconnected: ...`` line, and so does a close frame, so
    registrations and the receiver see the reason the way they see a TCP
    server's.  A ping becomes a ``PING_MARK`` line, which the adapter answers
    (:meth:`WsAdapter.incoming`)."""

    __slots__ = ("_buf", "_fragments", "_open", "limit", "opened_line")

    def __init__(self, limit: int = RECEIVER_LINE_LIMIT, opened_line: bytes | None = None) -> None:
        self.limit = limit
        #: A line to give when the handshake succeeds (for protocols where
        #: the server says nothing first: the shootout's registration).
        self.opened_line = opened_line
        self._buf = b""
        self._open = False
        self._fragments: list[bytes] = []

    def feed(self, data: bytes) -> list[bytes]:
        block = self.feed_block(data)
        return split_block(block) if block else []

    def feed_block(self, data: bytes) -> bytes:
        buf = self._buf + data if self._buf else data
        lines: list[bytes] = []
        if not self._open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_RESPONSE_HEAD_BYTES:
                    raise WsProtocolError("websocket handshake response too long")
                self._buf = buf
                return b""
            buf = self._handshake(buf, end, lines)
        pos = self._frames(buf, lines)
        self._buf = buf[pos:]
        return b"\n".join(lines) + b"\n" if lines else b""

    def _handshake(self, buf: bytes, end: int, lines: list[bytes]) -> bytes:
        """The response head ends at ``end``: open (the bytes after it) or
        refused (a ``Disconnected`` line, nothing after it)."""
        status_line = buf[: buf.find(b"\r\n")].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or parts[1] != "101":
            reason = f"websocket handshake refused: {status_line[:80]}"
            lines.append(protocol.encode_disconnect(reason).rstrip(b"\n"))
            return b""
        self._open = True
        if self.opened_line is not None:
            lines.append(self.opened_line)
        return buf[end + 4 :]

    def _frames(self, buf: bytes, lines: list[bytes]) -> int:
        """Decode the whole frames in ``buf`` into ``lines``; where the first
        incomplete frame starts."""
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            b0 = buf[pos]
            length = buf[pos + 1]
            if length & MASKED:
                raise WsProtocolError("the server sent a masked frame")
            head = 2
            if length == 126:
                head = 4
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
            elif length == 127:
                head = 10
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
            if length > self.limit:
                raise WsProtocolError(f"a {length}-byte frame is past the {self.limit}-byte limit")
            if n - pos < head + length:
                break
            payload = buf[pos + head : pos + head + length]
            pos += head + length
            if b0 == FIN | OP_TEXT:  # the common case: one whole text message
                lines.append(payload)
            else:
                self._other(b0, payload, lines)
        return pos

    def _other(self, b0: int, payload: bytes, lines: list[bytes]) -> None:
        """Fragments, close frames and control frames."""
        opcode = b0 & 0x0F
        if opcode in (OP_TEXT, OP_CONTINUATION, OP_BINARY):
            self._fragments.append(payload)
            if b0 & FIN:
                lines.append(b"".join(self._fragments))
                self._fragments = []
        elif opcode == OP_PING:
            lines.append(PING_MARK + payload)
        elif opcode == OP_CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            reason = payload[2:].decode(errors="replace")
            lines.append(protocol.encode_disconnect(f"websocket close {code} {reason}".strip()).rstrip(b"\n"))


def upgrade_request(path: str) -> bytes:
    """wsproto's opening handshake for ``path`` (a fresh random key)."""
    return bytes(WSConnection(ConnectionType.CLIENT).send(Request(host=WS_HOST, target=path)))


class WsRegistration:
    """The chat registration behind an HTTP upgrade, its lines framed."""

    __slots__ = ("chat", "path")

    def __init__(
        self, name: str, path: str = WS_PATH, rooms: tuple[str, ...] = ("",), *, password: str | None = None
    ) -> None:
        self.chat = ChatRegistration(name, rooms, password=password)
        self.path = path

    def connected(self) -> bytes:
        return upgrade_request(self.path)

    def line(self, line: bytes) -> Step:
        step = self.chat.line(line)
        if step.send:  # one frame per line (the room joins are several)
            frames = b"".join(mask_text(text) for text in split_block(step.send))
            return Step(send=frames, done=step.done, error=step.error)
        return step


class WsAdapter(Adapter):
    """The chat protocol in WebSocket frames: lines received are already
    chat lines once the decoder unframed them (what is not framing is the
    chat adapter's, which this one holds)."""

    name = "ws"
    #: Server pings (the server pings clients silent for 30 s) are answered.
    replies_needed = True
    line_errors = ChatAdapter.line_errors
    login = LOGIN_NAME

    def __init__(self, receive_limit: int = RECEIVER_LINE_LIMIT, path: str = WS_PATH) -> None:
        self.chat = ChatAdapter(receive_limit)
        self.receive_limit = receive_limit
        self.path = path

    def check_text(self, text: str, room: str = "") -> str | None:
        return self.chat.check_text(text, room)

    def control(self, text: str) -> str | None:
        return self.chat.control(text)

    notices = ChatAdapter.notices

    def encode_quit(self) -> bytes:
        return mask_text(self.chat.encode_quit())

    def split_notices(self, block: bytes) -> tuple[bytes, list[bytes], list[bytes]]:
        return self.chat.split_notices(block)

    def strip_notices(self, block: bytes) -> bytes:
        return self.chat.strip_notices(block)

    def decoder(self) -> Decoder:
        return WsDecoder(self.receive_limit)

    def registration(
        self, name: str, credentials: Credentials | None = None, rooms: tuple[str, ...] = ("",)
    ) -> Registration:
        return WsRegistration(
            name, self.path, rooms, password=credentials.password if credentials is not None else None
        )

    def encode_chat(self, text: str) -> bytes:
        return mask_text(protocol.encode_say(text))

    def encode_message(self, sender: str, text: str, room: str = "") -> bytes:
        return mask_text(self.chat.encode_message(sender, text, room))

    def deliveries(self, block: bytes) -> Incoming:
        """The lines as they are, unless a ping is among them: then a masked
        pong for each, and the other lines."""
        if PING_MARK not in block:
            return Incoming(lines=block)
        lines = split_block(block)
        client = FrameProtocol(client=True, extensions=[])
        reply = b"".join(bytes(client.pong(line[len(PING_MARK) :])) for line in lines if line.startswith(PING_MARK))
        rest = [line + b"\n" for line in lines if not line.startswith(PING_MARK)]
        return Incoming(lines=b"".join(rest), reply=reply)
