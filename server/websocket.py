"""WebSocket clients (RFC 6455) on ``--ws-port``: the same chat, from a browser.

A WebSocket client is a :class:`~server.session.Session` like any other: the
same reader thread, hub, fan-out strategy and limits.  What differs is only
how bytes become lines and back:

* in: :meth:`WebSocketSession.recv_lines` reads the socket and hands the
  bytes to wsproto (sans-IO): first the HTTP request (``GET /ws`` upgrades,
  ``GET /`` gets the chat page, anything else an HTTP error), then frames;
  every text message is one chat line (one per ``\n`` in it, as over TCP).
* out: the outbox writes to a :class:`~server.wsframes.WsSocket`, which frames
  each line as one text frame, so TCP clients' hot path is untouched.

Bad input ends only that connection, with an HTTP status before the
handshake or a close code after it, and a log line:

=====================================  ====================================
a plain HTTP request                   ``/``: 200 and the page; ``/ws``: 426;
                                       other paths 404; not GET: 405
a bad handshake (no key, version...)   400
a request header past 8 KiB            431
no request within the registration     408
timeout
a message past --max-line-bytes, or    close 1009
too many fragments
a binary message                       close 1003
invalid UTF-8 in a text message        close 1007
a broken frame (unmasked, bad opcode)  close 1002
=====================================  ====================================
"""

from __future__ import annotations

import http
import itertools
import json
import logging
import socket
import time
from pathlib import Path
from typing import cast

import h11
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Ping, Request, TextMessage
from wsproto.utilities import RemoteProtocolError

from server import protocol
from server.handlers import EndSession
from server.hub import Hub
from server.session import RECV_BYTES, Session, SessionContext
from server.wsframes import WsSocket, close_frame

log = logging.getLogger(__name__)

#: The path that speaks the chat protocol over WebSocket.
CHAT_PATH = "/ws"
#: The path that speaks the hashrocket websocket-shootout protocol (JSON
#: ``{"type": "echo"|"broadcast", "payload": ...}``), in a room of its own.
SHOOTOUT_PATH = "/ws-shootout"
#: The path of the chat page.
PAGE_PATH = "/"
#: The chat page: one HTML file with inline JS, read once.
PAGE = (Path(__file__).parent / "chat.html").read_bytes()

#: Longest HTTP request head accepted (a browser's is ~1 KiB with cookies);
#: past it the answer is 431 and the connection ends.
MAX_REQUEST_HEAD_BYTES = 8192

#: Fragments one message may have.  A client that never finishes a message
#: with empty fragments would otherwise be read forever without ever passing
#: the size limit.
MAX_FRAGMENTS = 64

#: Seconds of silence from a client before the server pings it: browsers
#: and proxies drop idle WebSockets after about a minute.
PING_IDLE_SECONDS = 30.0
#: Seconds an unanswered ping waits before the client counts as gone.
PING_TIMEOUT_SECONDS = 30.0
#: An unmasked ping frame without payload (FIN + opcode 9, length 0).
PING_FRAME = b"\x89\x00"

#: Close codes (RFC 6455 7.4.1) for what the reader refuses.
CLOSE_TOO_BIG = 1009
CLOSE_UNSUPPORTED = 1003


def http_response(status: int, body: bytes = b"", content_type: str = "text/plain; charset=utf-8") -> bytes:
    """A complete HTTP/1.1 response that closes the connection."""
    conn = h11.Connection(h11.SERVER)
    # h11 only sends a response to a request it saw; this one answers any.
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.next_event()
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
        ("Cache-Control", "no-store"),
    ]
    response = h11.Response(status_code=status, headers=headers, reason=http.HTTPStatus(status).phrase)
    parts = [conn.send(response), conn.send(h11.Data(data=body)) if body else b"", conn.send(h11.EndOfMessage())]
    return b"".join(part or b"" for part in parts)


class HttpAnswer(Exception):
    """The request gets an HTTP response instead of a WebSocket."""

    def __init__(self, status: int, why: str, body: bytes = b"", content_type: str = "text/plain; charset=utf-8"):
        super().__init__(why)
        self.status = status
        self.why = why
        self.response = http_response(status, body or f"{status} {why}\n".encode(), content_type)


def route(head: bytes) -> tuple[WSConnection, str]:
    """What a complete request head asks for: a WebSocket connection (its
    handshake accepted) and its path, or an :class:`HttpAnswer`."""
    parser = h11.Connection(h11.SERVER)
    parser.receive_data(head)
    try:
        event = parser.next_event()
    except h11.RemoteProtocolError as exc:
        raise HttpAnswer(400, f"bad request: {exc}") from None
    if not isinstance(event, h11.Request):
        raise HttpAnswer(400, "bad request")
    method = event.method.decode("ascii", "replace")
    path = event.target.decode("ascii", "replace").split("?", 1)[0]
    upgrade = any(k == b"upgrade" and v.lower() == b"websocket" for k, v in event.headers)
    if method != "GET":
        raise HttpAnswer(405, f"method {method} not allowed")
    if path == PAGE_PATH and not upgrade:
        raise HttpAnswer(200, "chat page", PAGE, "text/html; charset=utf-8")
    if path not in (CHAT_PATH, SHOOTOUT_PATH):
        raise HttpAnswer(404, f"no such path {path[:60]}")
    if not upgrade:
        raise HttpAnswer(426, f"{path} speaks WebSocket only")
    ws = WSConnection(ConnectionType.SERVER)
    try:
        ws.receive_data(head)
        events = list(ws.events())
    except RemoteProtocolError as exc:
        raise HttpAnswer(400, f"bad handshake: {exc}") from None
    if not events or not isinstance(events[0], Request):
        raise HttpAnswer(400, "bad handshake")
    return ws, path


class WebSocketSession(Session):
    """A chat session whose client speaks WebSocket (see the module docstring)."""

    def __init__(
        self, context: SessionContext, sock: socket.socket, peer: str, shootout_hub: Hub | None = None
    ) -> None:
        self.wsock = WsSocket(sock)
        #: The shootout protocol's room (``/ws-shootout``); None: not offered.
        self.shootout_hub = shootout_hub
        self.shootout = False
        #: ``--ws-shootout``: /ws speaks the shootout protocol too.
        self.shootout_on_chat_path = context.config.ws_shootout
        # The outbox and the session see the WsSocket as their socket: it has
        # the methods they use (send, sendall, shutdown, close, fileno, recv).
        super().__init__(context, cast(socket.socket, self.wsock), peer)
        self.ws: WSConnection | None = None
        self._head = b""
        self._message: list[str] = []
        self._message_bytes = 0
        #: When the last keepalive ping went out (monotonic; 0: none pending).
        self._pinged_at = 0.0

    def keepalive(self, now: float) -> None:
        """Ping a client silent for PING_IDLE_SECONDS; disconnect it if it
        stays silent PING_TIMEOUT_SECONDS more (any bytes count as an answer)."""
        if self.ws is None:
            return
        if self._pinged_at and self.last_activity < self._pinged_at:
            if now - self._pinged_at > PING_TIMEOUT_SECONDS:
                log.info("%s (%s): no answer to a ping, disconnecting", self.name or "?", self.peer)
                self.disconnect("ping timeout")
            return
        if now - self.last_activity > PING_IDLE_SECONDS:
            self._pinged_at = now
            self.wsock.control(PING_FRAME)
            self.outbox.send(b"")

    def recv_lines(self) -> list[bytes] | None:
        """The chat lines (text messages) the next bytes complete; None at the
        end.  Before the handshake: the request, answered."""
        data = self.wsock.raw.recv(RECV_BYTES)
        if not data:
            return None
        self.last_activity = time.monotonic()
        if self.ws is None:
            return self._handshake(data)
        self.ws.receive_data(data)
        return self._messages()

    def _handshake(self, data: bytes) -> list[bytes] | None:
        if not self._head and data.startswith(b"\x16") and type(self.wsock.raw) is socket.socket:
            log.warning("%s: a TLS handshake on the plaintext WebSocket port, closing", self.peer)
            return None  # an HTTP answer would be unreadable to it
        self._head += data
        if b"\r\n\r\n" not in self._head:
            if len(self._head) > MAX_REQUEST_HEAD_BYTES:
                return self._answer(HttpAnswer(431, "request header too large"))
            return []
        try:
            ws, path = route(self._head)
            if path == CHAT_PATH and self.shootout_on_chat_path:
                path = SHOOTOUT_PATH
            if path == SHOOTOUT_PATH and self.shootout_hub is None:
                raise HttpAnswer(404, f"no such path {path}")
        except HttpAnswer as answer:
            return self._answer(answer)
        self.ws = ws
        if path == SHOOTOUT_PATH and self.shootout_hub is not None:
            self.shootout = True
            self.hub = self.shootout_hub
            self.wsock.json_only = True  # the prompt and welcome are not for it
        self.wsock.open(ws.send(AcceptConnection()))
        self.outbox.send(b"")  # the 101 and the held prompt go out now
        log.debug("%s: websocket open on %s", self.peer, path)
        if self.shootout:  # no names in that protocol: one is made up
            rest = self._messages()
            return None if rest is None else [f"~shootout-{next(SHOOTOUT_IDS)}".encode(), *rest]
        return self._messages()

    def _answer(self, answer: HttpAnswer) -> list[bytes] | None:
        """Send ``answer`` instead of a handshake; the session ends (None)."""
        if answer.status == 200:
            log.info("%s: GET %s (the chat page)", self.peer, PAGE_PATH)
        else:
            log.warning("%s: HTTP %d: %s", self.peer, answer.status, answer.why)
        self.wsock.control(answer.response)
        self.outbox.send(b"")
        return None

    def _messages(self) -> list[bytes] | None:
        """The complete text messages wsproto has, as lines."""
        assert self.ws is not None
        lines: list[bytes] = []
        for event in self.ws.events():
            if isinstance(event, TextMessage):
                self._take_text(event)
                if event.message_finished:
                    text = "".join(self._message)
                    self._message.clear()
                    self._message_bytes = 0
                    if self.shootout:
                        shootout_reply(self, text)
                    else:
                        lines += message_lines(text)
            elif isinstance(event, Ping):
                self.wsock.control(self.ws.send(event.response()))
                self.outbox.send(b"")
            elif isinstance(event, CloseConnection):
                return self._closed(event, lines)
            elif isinstance(event, BytesMessage):
                self._refuse(CLOSE_UNSUPPORTED, "binary messages are not supported")
        return lines

    def _take_text(self, event: TextMessage) -> None:
        self._message.append(event.data)
        self._message_bytes += len(event.data.encode())
        limit = self.decoder.max_line_bytes
        if self._message_bytes > limit:
            self._refuse(CLOSE_TOO_BIG, f"message too long (limit {limit} bytes)")
        if len(self._message) > MAX_FRAGMENTS:
            self._refuse(CLOSE_TOO_BIG, f"message in more than {MAX_FRAGMENTS} fragments")

    def _closed(self, event: CloseConnection, lines: list[bytes]) -> list[bytes] | None:
        """The client closed (echo its code), or wsproto found a broken frame
        (close with the code it names).  Lines before it are still handled."""
        assert self.ws is not None
        if self.ws.state is ConnectionState.REMOTE_CLOSING:
            # Echo the client's code and reason; its reason is the leave notice's too.
            reason = event.reason or ""
            self.wsock.close_bytes = close_frame(event.code, reason)
            log.debug("%s: websocket closed by the client (%d %s)", self.peer, event.code, reason)
            if reason and self._end_reason is None:
                self._end_reason = f"connection closed: {protocol.sanitize_text(reason)}"
            return lines or None
        self._refuse(int(event.code), event.reason or "protocol error")
        return None

    def _refuse(self, code: int, why: str) -> None:
        log.warning("%s (%s): websocket close %d: %s", self.name or "?", self.peer, code, why)
        self.wsock.close_bytes = close_frame(code, why)
        raise EndSession(f"websocket: {why}", farewell=why, linger=False)


def message_lines(text: str) -> list[bytes]:
    """A chat text message as lines: one, or, when it holds ``\n``, one per
    part (a ``\r`` before the ``\n`` dropped), as the same bytes would be
    over TCP: a pasted paragraph is several lines, never one with U+FFFD.
    (Empty parts are blank lines, which the session ignores.)"""
    if "\n" not in text:
        return [text.encode()]
    return [part.removesuffix("\r").encode() for part in text.split("\n")]


#: Numbers for the made-up names of shootout clients.
SHOOTOUT_IDS = itertools.count(1)


def shootout_reply(session: WebSocketSession, text: str) -> None:
    """One websocket-shootout message: ``echo`` goes back to the sender,
    ``broadcast`` to everyone in the shootout room (the sender too), then the
    sender gets ``broadcastResult`` with the listener count.  Anything else
    is logged and ignored, as the reference servers do."""
    try:
        msg = json.loads(text)
        kind = msg["type"]
    except (ValueError, KeyError, TypeError):
        log.debug("%s: not a shootout message: %.60r", session.peer, text)
        return
    if kind == "echo":
        session.send(json.dumps(msg).encode() + b"\n")
    elif kind == "broadcast":
        payload = msg.get("payload")
        session.hub.broadcast(json.dumps({"type": "broadcast", "payload": payload}).encode() + b"\n")
        result = {"type": "broadcastResult", "payload": payload, "listenCount": len(session.hub)}
        session.send(json.dumps(result).encode() + b"\n")
    else:
        log.debug("%s: unknown shootout message type %.30r", session.peer, kind)
