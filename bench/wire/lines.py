"""Line framing for whole receive buffers: the harness's side of our line protocol.

The server reads line by line (:class:`server.protocol.LineDecoder`); a harness
receiver reads a whole ``recv`` buffer and wants its complete lines as ONE
block, so the recorder can parse it at once (:mod:`bench.measure.recorder`).
:class:`BlockLineDecoder` adds :meth:`~BlockLineDecoder.feed_block` to the
protocol's decoder, with the same limits; :func:`split_block` cuts a block
into the lines :meth:`~server.protocol.LineDecoder.feed` would have given.
The server never needs either, so they live here.
"""

from __future__ import annotations

from server.protocol import NEWLINE, LineDecoder, LineTooLong


class BlockLineDecoder(LineDecoder):
    """A :class:`~server.protocol.LineDecoder` that also hands out whole blocks."""

    __slots__ = ()

    def feed_block(self, data: bytes) -> bytes:
        """Like :meth:`feed`, but the complete lines come back as one block:
        the bytes up to and including the last newline, with any held partial
        line in front, each line still ending in ``\n`` (and a ``\r`` before
        it kept).  ``split_block(feed_block(data)) == feed(data)`` for every
        input, limits included, so a caller can work on a whole ``recv``
        buffer at once (the harness parses such blocks with numpy) and fall back to the
        line list only when it needs it."""
        if not data:
            return b""
        if self.discard_oversized or self._skipping:
            return b"".join([line + NEWLINE for line in self.feed(data)])
        cut = data.rfind(NEWLINE)
        limit = self.max_line_bytes
        if cut < 0:
            partial = self._partial + data if self._partial else data
            if len(partial) > limit + 1:
                self._partial = b""
                self._skipping = True
                raise LineTooLong(limit)
            self._partial = partial
            return b""
        if cut == len(data) - 1:
            block = self._partial + data if self._partial else data
            tail = b""
        else:
            if not self._partial:
                block = data[: cut + 1]
            elif cut < 8192:
                block = self._partial + data[: cut + 1]
            else:  # one copy of a big buffer: bytes + memoryview concatenates without slicing first
                block = self._partial + memoryview(data)[: cut + 1]
            tail = data[cut + 1 :]
        self._partial = b""
        # Only a block longer than the limit can hold a line over it.
        if len(block) > limit + 1 and _may_hold_a_line_over(block, limit):
            raise LineTooLong(limit)
        if len(tail) > limit + 1:
            self._skipping = True
            raise LineTooLong(limit)
        self._partial = tail
        return block


def _may_hold_a_line_over(block: bytes, limit: int) -> bool:
    """Whether a line of ``block`` (complete lines, as :meth:`LineDecoder.feed_block`
    returns them) is longer than ``limit`` bytes as :func:`split_block` cuts it.

    A cheap sufficient test first: such a line holds at least ``limit + 1``
    bytes without a newline, so it covers a whole aligned window of
    ``(limit + 2) // 2`` bytes.  When every window has a newline (a few
    ``bytes.find`` calls, no object per line) no line is too long;
    otherwise the exact check."""
    step = (limit + 2) // 2
    find = block.find
    for lo in range(0, len(block) - step + 1, step):
        if find(NEWLINE, lo, lo + step) < 0:
            return max(map(len, split_block(block))) > limit
    return False


def split_block(block: bytes) -> list[bytes]:
    """The lines of a block from :meth:`LineDecoder.feed_block` (complete
    lines, each ending in ``\n``), as :meth:`LineDecoder.feed` returns them:
    without the terminator and without a ``\r`` before it."""
    lines = block.split(NEWLINE)
    lines.pop()  # after the last newline: nothing
    if 13 in block:  # b"\r" (an int is found with memchr, several times faster)
        lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    return lines
