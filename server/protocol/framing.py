"""Framing of the chatbench wire protocol, sans-IO: bytes <-> lines.

UTF-8 text lines terminated by ``\\n`` (a ``\\r`` before it is dropped, so
telnet and netcat work).  The limits that bound every buffer live here too.
Nothing in this module touches a socket: callers feed bytes in and get lines
back (the shape h11 made popular).  See ``docs/protocol.md``.
"""

from __future__ import annotations

# --------------------------------------------------------------------------
# Limits.  Each is a default; the server exposes every one as a CLI option.
# --------------------------------------------------------------------------

#: Longest line a client may send, in bytes, not counting the ``\n``.  4 KiB
#: is far above any line a person types and matches common IRC-derivative
#: limits while keeping a per-connection receive buffer small and bounded:
#: a client can never make the server hold more than this for a partial line.
DEFAULT_MAX_LINE_BYTES = 4096

#: Room a server line needs beyond the client's text: a name (32 chars, up to
#: 4 bytes each in UTF-8), the ``[private to ]`` decoration and separators.
#: Receivers size their decoder as ``max_line_bytes + SERVER_LINE_OVERHEAD``.
SERVER_LINE_OVERHEAD = 4 * 32 + 64

NEWLINE = b"\n"


class ProtocolError(Exception):
    """The peer broke the protocol.  The message says how, in plain words."""


class LineTooLong(ProtocolError):
    """A line went past the decoder's byte limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"line too long (limit is {limit} bytes)")
        self.limit = limit


# --------------------------------------------------------------------------
# Framing
# --------------------------------------------------------------------------


class LineDecoder:
    """Turns a byte stream into complete lines, holding at most one bounded
    partial line between calls.

    ``feed(data)`` returns every complete line in ``data`` (without the
    terminator and without a trailing ``\\r``).  A line longer than
    ``max_line_bytes`` raises :class:`LineTooLong` in strict mode.  With
    ``discard_oversized=True`` (what the server uses) the line is dropped
    instead, the decoder skips input up to the next newline, and
    ``oversized`` counts how many lines were dropped, so the caller can
    tell the client.  Either way the buffer never exceeds the limit.
    """

    __slots__ = ("_partial", "_skipping", "discard_oversized", "max_line_bytes", "oversized")

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, *, discard_oversized: bool = False) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be at least 1")
        self.max_line_bytes = max_line_bytes
        self.discard_oversized = discard_oversized
        self.oversized = 0
        self._partial = b""
        self._skipping = False

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete line held right now."""
        return len(self._partial)

    def feed(self, data: bytes) -> list[bytes]:
        if not data:
            return []
        pieces = data.split(NEWLINE)
        tail = pieces.pop()  # bytes after the last newline: an incomplete line
        limit = self.max_line_bytes
        if pieces:
            if self._skipping:
                # The rest of an oversized line ends here; nothing to keep.
                pieces.pop(0)
                self._skipping = False
            elif self._partial:
                pieces[0] = self._partial + pieces[0]
            self._partial = b""
            lines: list[bytes] = []
            for line in pieces:
                if line.endswith(b"\r"):
                    line = line[:-1]
                if len(line) > limit:
                    self._oversized()
                    continue
                lines.append(line)
        else:
            lines = []
        if self._skipping:
            return lines
        partial = self._partial + tail if self._partial else tail
        # A held partial may end in "\r" that belongs to "\r\n": allow one byte.
        if len(partial) > limit + 1:
            self._partial = b""
            self._skipping = True
            self._oversized()
        else:
            self._partial = partial
        return lines

    def _oversized(self) -> None:
        if not self.discard_oversized:
            raise LineTooLong(self.max_line_bytes)
        self.oversized += 1


def encode_line(text: str) -> bytes:
    """One protocol line, ready to send: UTF-8 and the terminator."""
    return text.encode("utf-8") + NEWLINE


def decode_text(line: bytes) -> str:
    """Line bytes to text.  Invalid UTF-8 is replaced, never an exception:
    one bad byte must not end a conversation."""
    return line.decode("utf-8", errors="replace")
