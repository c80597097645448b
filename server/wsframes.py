"""The server's outgoing WebSocket framing, and the socket a WebSocket
session's outbox writes to.

Every fan-out strategy writes chat lines (``b"...\\n"``, several joined in one
block) to a socket.  A WebSocket client gets :class:`WsSocket` instead of the
bare socket: its ``send`` turns each line of a block into one unmasked text
frame (RFC 6455 5.2; server frames are never masked), so the fan-out
strategies, the hub and the TCP clients' hot path do not change at all.

The frames of a block are the same for every WebSocket recipient, so the
last block framed is kept (one entry, compared by identity): a broadcast to
1,000 browsers frames once.  Handshake, incoming frames and control frames
(pong, close) are wsproto's (:mod:`server.websocket`); only this data path is
framed here, because it runs once per line in the flusher thread
(wsproto's ``send(TextMessage)`` costs several times more per line; see
``tests/server/test_websocket_codec.py``).
"""

from __future__ import annotations

import socket
import struct
import threading

from server import protocol

#: First header byte of a final text frame (FIN + opcode 1).
TEXT_FIN = 0x81
#: Payload lengths below this fit in the 7-bit length field (RFC 6455 5.2).
SHORT_PAYLOAD = 126
#: Payload lengths below this fit in the 16-bit extended length field.
MEDIUM_PAYLOAD = 1 << 16
#: ``send`` flag for one non-blocking attempt (see server.fanout.base.DONTWAIT).
DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


#: First header byte of a close frame (FIN + opcode 8).
CLOSE_FIN = 0x88
#: A close frame's reason is at most 123 bytes: control payloads are at most
#: 125 bytes, 2 of them the code (RFC 6455 5.5).
CLOSE_REASON_BYTES = 123

#: Close codes (RFC 6455 7.4.1) for the reasons a session ends; any other
#: reason closes with 1000 (normal).
NORMAL_CLOSURE = 1000
CLOSE_CODES = {
    "server shutting down": 1001,  # going away
    "excess flood": 1008,  # policy violation
    "send queue exceeded": 1008,
    "registration timeout": 1008,
    "idle timeout": 1001,
    "server full": 1013,  # try again later
    "ping timeout": 1001,
}

#: The start of the last line a session gets (``*** Disconnected: REASON``).
DISCONNECT_MARK = protocol.encode_disconnect("").rstrip(b"\n")

#: The answers to a connection that ends before its handshake was accepted.
TIMEOUT_RESPONSE = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
UNAVAILABLE_RESPONSE = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


#: What wsproto reports for a close frame without a code; never sent (RFC 6455 7.4.1).
NO_STATUS_RECEIVED = 1005


def close_frame(code: int, reason: str = "") -> bytes:
    """An unmasked close frame with ``code`` and ``reason`` (cut to fit);
    for :data:`NO_STATUS_RECEIVED` one without a body, as the client sent."""
    if code == NO_STATUS_RECEIVED:
        return bytes((CLOSE_FIN, 0))
    payload = struct.pack("!H", code) + reason.encode()[:CLOSE_REASON_BYTES].decode(errors="ignore").encode()
    return bytes((CLOSE_FIN, len(payload))) + payload


def frame_header(n: int) -> bytes:
    """The header of an unmasked final text frame with an ``n``-byte payload."""
    if n < SHORT_PAYLOAD:
        return bytes((TEXT_FIN, n))
    if n < MEDIUM_PAYLOAD:
        return struct.pack("!BBH", TEXT_FIN, 126, n)
    return struct.pack("!BBQ", TEXT_FIN, 127, n)


def frame_lines(block: bytes, json_only: bool = False) -> bytes:
    """Each ``\\n``-terminated line of ``block`` as one text frame (without
    the newline); a last line without one is framed too.  ``json_only``
    (the shootout protocol): lines that are not JSON objects are dropped."""
    lines = block.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    parts: list[bytes] = []
    for line in lines:
        if json_only and not line.startswith(b"{"):
            continue
        parts.append(frame_header(len(line)))
        parts.append(line)
    return b"".join(parts)


def split_taken(block: bytes, taken: int, json_only: bool = False) -> tuple[int, bytes, int]:
    """After the kernel took ``taken`` bytes of ``frame_lines(block)``: the
    raw bytes of ``block`` whose frames went out whole, the rest of a frame
    that went out in part (b"" if none), and that frame's raw line length
    (newline included), which the next send must start with."""
    pos = 0
    framed = 0
    while pos < len(block):
        nl = block.find(b"\n", pos)
        end = len(block) if nl < 0 else nl + 1
        line = block[pos : end - 1 if nl >= 0 else end]
        frame_size = len(frame_header(len(line))) + len(line)
        if json_only and not line.startswith(b"{"):
            frame_size = 0  # dropped: never on the wire
        if framed + frame_size > taken:
            if taken > framed:
                frame = frame_header(len(line)) + line
                return pos, frame[taken - framed :], end - pos
            return pos, b"", 0
        framed += frame_size
        pos = end
    return pos, b"", 0


class WsSocket:
    """A WebSocket client's socket as its outbox sees it: lines in, text
    frames out.  Thread-safe (the flusher, the reader's control frames and
    the reaper's close may meet here).

    Before the handshake is accepted, lines are held (the name prompt is
    sent before the client's request is read) and go out after the 101
    response.  A frame the kernel took only in part is finished before
    anything else, so control frames never cut into a data frame.
    """

    #: The block framed last (and whether JSON only), and its frames; shared
    #: by every WebSocket client.
    _cache: tuple[bytes, bool, bytes] = (b"", False, b"")

    def __init__(self, sock: socket.socket) -> None:
        self.raw = sock
        self._lock = threading.Lock()
        self.opened = False
        #: Send only the lines that are JSON objects (``/ws-shootout``).
        self.json_only = False
        self._early: list[bytes] = []
        #: Bytes already committed (a partly sent frame, control frames).
        self._tail = b""
        #: Raw line bytes of the next send that ``_tail`` already carries.
        self._tail_raw = 0
        self._control: list[bytes] = []
        #: The close frame sent when the connection ends: set by the session
        #: (a protocol error, the client's own close) or from the reason in
        #: the last line it is sent (``*** Disconnected: REASON``).
        self.close_bytes: bytes | None = None
        #: Why the connection ends, as far as this socket knows.
        self.close_reason = ""
        #: An HTTP answer went out instead of a handshake (page, 4xx).
        self.answered = False
        self._closed_sent = False

    def _note_last_line(self, data: bytes) -> None:
        """Pick the close code and reason from a ``Disconnected`` line."""
        at = data.find(DISCONNECT_MARK)
        if at < 0 or self.close_bytes is not None:
            return
        reason = data[at + len(DISCONNECT_MARK) :].split(b"\n", 1)[0].decode(errors="replace")
        self.close_reason = reason
        self.close_bytes = close_frame(CLOSE_CODES.get(reason, NORMAL_CLOSURE), reason)

    # -- what the reader thread hands over ---------------------------------------

    def open(self, response: bytes) -> None:
        """The handshake was accepted: the 101 response, then the held lines."""
        with self._lock:
            self.opened = True
            early = frame_lines(b"".join(self._early), self.json_only) if self._early else b""
            self._early = []
            self._control.append(response + early)

    def control(self, data: bytes) -> None:
        """Queue bytes that are already framed (a pong, an HTTP answer);
        they go out on the next send, between frames."""
        with self._lock:
            self._control.append(data)
            if not self.opened:
                self.answered = True

    # -- the socket interface the outboxes use ------------------------------------

    def fileno(self) -> int:
        return self.raw.fileno()

    def recv(self, n: int) -> bytes:
        return self.raw.recv(n)

    def getpeername(self) -> object:
        return self.raw.getpeername()

    def send(self, data: bytes, flags: int = 0) -> int:
        """Frame ``data``'s lines and send them with one ``send``; returns the
        bytes of ``data`` whose frames went out whole (see ``split_taken``)."""
        with self._lock:
            if not self.opened:
                if data:
                    self._early.append(data)
                    self._note_last_line(data)
                self._flush_prefix(flags)
                return len(data)
            skip = self._flush_prefix(flags)
            if skip < 0:
                return 0
            if skip >= len(data):
                return len(data)
            rest = data[skip:] if skip else data
            cache = WsSocket._cache
            if cache[0] is rest and cache[1] is self.json_only:
                frames = cache[2]
            else:  # not a broadcast seen before: maybe our own last line
                self._note_last_line(rest)
                frames = frame_lines(rest, self.json_only)
                WsSocket._cache = (rest, self.json_only, frames)
            taken = self.raw.send(frames, flags) if frames else 0
            if taken == len(frames):
                return len(data)
            raw, self._tail, self._tail_raw = split_taken(rest, taken, self.json_only)
            return skip + raw

    def _flush_prefix(self, flags: int) -> int:
        """Send the committed tail and the control frames (caller holds the
        lock): the raw bytes of the next data they cover, or -1 if the kernel
        did not take them all."""
        if self._control:
            self._tail += b"".join(self._control)
            self._control = []
        if not self._tail:
            return 0
        try:
            taken = self.raw.send(self._tail, flags)
        except BlockingIOError:
            taken = 0
        self._tail = self._tail[taken:]
        if self._tail:
            return -1
        skip, self._tail_raw = self._tail_raw, 0
        return skip

    def sendall(self, data: bytes) -> None:
        """Blocking send (the ``direct`` and ``threads`` strategies)."""
        with self._lock:
            self._note_last_line(data)
            if not self.opened:
                self._early.append(data)
                return
            prefix = b"".join(self._control)
            self._control = []
            self.raw.sendall(self._tail + prefix + frame_lines(data[self._tail_raw :], self.json_only))
            self._tail, self._tail_raw = b"", 0

    def _send_closing(self) -> None:
        """One non-blocking try at what ends the connection: the control
        frames still queued and, once open, the close frame -- unless a data
        frame is half sent (a close frame cannot cut into it)."""
        with self._lock:
            if self._closed_sent:
                return
            self._closed_sent = True
            data = self._tail + b"".join(self._control)
            if not self.opened and not self.answered:
                data += TIMEOUT_RESPONSE if "timeout" in self.close_reason else UNAVAILABLE_RESPONSE
            elif self.opened and not self._tail:
                data += self.close_bytes or close_frame(NORMAL_CLOSURE)
            self._tail, self._control = b"", []
        if data:
            try:
                self.raw.send(data, DONTWAIT)
            except OSError:
                pass

    def shutdown(self, how: int) -> None:
        self._send_closing()
        self.raw.shutdown(how)

    def close(self) -> None:
        if self.raw.fileno() != -1:
            self._send_closing()
        self.raw.close()
