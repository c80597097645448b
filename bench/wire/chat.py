"""This project's chat protocol as the harness speaks it, parsed only through
:mod:`server.protocol`: wait for the name prompt, send the name (and, on a
server with accounts, answer the password prompt), wait for the welcome;
chat lines are ``/say``-safe lines and arrive as ``NAME: TEXT``:
probe lines as they are (:mod:`bench.measure.probeline`), so a received
block goes to the recorder untouched.
"""

from __future__ import annotations

from bench.wire.base import Adapter, Decoder, Registration, Step
from bench.wire.credentials import LOGIN_NAME, Credentials
from bench.wire.lines import BlockLineDecoder
from server import protocol

#: Longest line a harness client accepts.  Chat lines stay under the
#: server's client-line limit plus the decoration a server line adds, but the
#: welcome line lists everyone online: with 10,000 clients that is ~10,000
#: names of up to 32 characters (4 bytes each in UTF-8) plus separators, far
#: past 4 KiB.  4 MiB covers that worst case; the decoder only holds a partial
#: line this long while such a line is actually arriving.
RECEIVER_LINE_LIMIT = 4 << 20


class ChatRegistration:
    """Wait for the name prompt, send the name, answer the password prompt
    if the server asks one (``password``; an empty line, a guest's answer,
    without one), wait for the welcome.  A failed login is the server's
    ``! Login failed: ...`` line, as the error."""

    __slots__ = ("name", "password", "sent_name", "sent_password")

    def __init__(self, name: str, password: str | None = None) -> None:
        self.name = name
        self.password = password
        self.sent_name = False
        self.sent_password = False

    def connected(self) -> bytes:
        return b""

    def line(self, line: bytes) -> Step:
        try:
            event = protocol.parse_server_line(protocol.decode_text(line))
        except protocol.ProtocolError:
            return Step()
        if isinstance(event, protocol.Prompt):
            if event.text == protocol.PASSWORD_PROMPT and self.sent_name and not self.sent_password:
                self.sent_password = True
                return Step(send=protocol.encode_line(self.password or ""))
            if self.sent_name:  # a second prompt: the name was refused (the error line said why)
                return Step(error="name refused")
            self.sent_name = True
            return Step(send=protocol.encode_line(self.name))
        if self.sent_name and isinstance(event, protocol.Welcome):
            return Step(done=True)
        if self.sent_name and isinstance(event, protocol.Error):
            return Step(error=f"refused: {event.message[:60]}")
        if isinstance(event, protocol.Disconnected):
            return Step(error=f"disconnected: {event.reason[:60]}")
        return Step()


class ChatAdapter(Adapter):
    """Our protocol: received lines are probe lines as they are."""

    name = "chat"
    replies_needed = False
    line_errors = (protocol.LineTooLong,)
    login = LOGIN_NAME

    def __init__(self, receive_limit: int = RECEIVER_LINE_LIMIT) -> None:
        self.receive_limit = receive_limit

    def decoder(self) -> Decoder:
        return BlockLineDecoder(self.receive_limit)

    def registration(self, name: str, credentials: Credentials | None = None) -> Registration:
        return ChatRegistration(name, credentials.password if credentials is not None else None)

    def encode_chat(self, text: str) -> bytes:
        return protocol.encode_say(text)

    def check_text(self, text: str) -> str | None:
        size = len(protocol.encode_say(text)) - len(protocol.NEWLINE)
        if size > protocol.DEFAULT_MAX_LINE_BYTES:
            return (
                f"a {size}-byte chat line is longer than the server's {protocol.DEFAULT_MAX_LINE_BYTES}-byte line limit"
            )
        return None

    def control(self, text: str) -> str | None:
        try:
            event = protocol.parse_server_line(text)
        except protocol.ProtocolError:
            return None
        if isinstance(event, protocol.Disconnected):
            return f"disconnected: {event.reason[:60]}"
        return None
