"""The probe line: how a delivered probe carries the name of its sender.

A target that relays chat messages hands each receiver ``NAME: TEXT`` --
the name the sender registered with, ``": "``, and the text it sent; this
project's server writes exactly that, the WebSocket path carries the same
lines in frames, and the pub/sub brokers, which have no names, carry it as
the payload the harness's senders publish (:mod:`bench.wire.broker`).  So a
**probe line** is ``NAME: PROBE`` (:mod:`bench.measure.probe`'s text), and a
block of them is what the recorder reads fastest
(:meth:`bench.measure.recorder.DeliveryRecorder.record_lines`).  Protocols
that frame a delivery otherwise (IRC's ``PRIVMSG``, the websocket-shootout's
JSON) hand the recorder ``(name, text)`` pairs straight from their framing
instead (:meth:`~bench.measure.recorder.DeliveryRecorder.record_pairs`).

The definitions, for one line (bytes, without its line ending):

* :func:`split_line`: the name is everything before the first ``": "``;
  the line carries a probe when the rest starts with the probe tag.  Any
  other line (a notice, someone's chat, a server's error) is not a delivery
  and goes back to the adapter, which decides whether it matters
  (:meth:`bench.wire.Adapter.control`).
* the fast paths below agree with it on every line they accept, and decline
  (returning ``None``) everything else.

:func:`line_layout` finds the lines and spaces of a whole block with numpy
(the block path); :func:`name_table` and :func:`names_match` compare every
line's name with the name of the sender its probe names, 8 bytes at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.measure import probe

#: Between a probe line's name and its text.
SEPARATOR = b": "
NEWLINE = b"\n"
_TAG = (probe.TAG + " ").encode("ascii")

#: Sender ids above this are not put in the block path's name table (they
#: still take the per-line path).
MAX_TABLE_IDS = 1 << 20


def split_line(line: bytes) -> tuple[bytes, bytes] | None:
    """``(name, text)`` of a line that carries a probe, else ``None``."""
    name, sep, text = line.partition(SEPARATOR)
    if not sep or not text.startswith(_TAG):
        return None
    return name, text


@dataclass(frozen=True, slots=True)
class LineLayout:
    """Where the lines and spaces of a block of probe lines are (see
    :func:`line_layout`).  Offsets index the block's bytes."""

    #: offset of each line's first byte
    starts: Any
    #: offset of each line's ``\n``
    ends: Any
    #: ``(lines, text_spaces + 1)``: per line, the offset of the space of the
    #: ``": "`` separator, then of every space in the text, in order
    spaces: Any


def line_layout(block: bytes, text_spaces: int, name_spaces: int = 0) -> LineLayout | None:
    """The layout of a whole block of complete lines (each ending in
    ``\\n``), vectorised with numpy, when *every* line is ``NAME: TEXT``
    with a non-empty name of exactly ``name_spaces`` spaces (0; 1 for a
    room's line ``#ROOM NAME: TEXT``, whose name is ``#ROOM NAME``), a text of exactly ``text_spaces``
    spaces, and only ASCII without control characters (no byte below 0x20
    but the ``\\n``, none of 0x80 and above); then, for line ``i`` from ``starts[i]`` to ``ends[i]``,
    the name is ``block[starts[i]:spaces[i, 0] - 1]`` and the text
    ``block[spaces[i, 0] + 1:ends[i]]``.  ``None`` otherwise -- also for
    blocks that would qualify but hold other bytes (a ``\\r`` before a
    newline, a tab, UTF-8), so ``None`` means "use the per-line path".

    One pass finds every byte that is a space, a newline, a control
    character or not ASCII (the bytes <= 0x20 as signed 8-bit numbers); in
    an accepted block they are exactly ``name_spaces + text_spaces + 1``
    spaces and a newline per line, in that order, and the name's last space
    is followed by more name, then a colon and the separator's space: with
    names that hold no ``": "`` (the harness's), the first ``": "``, as
    :func:`split_line` reads it.  ``spaces`` leaves the name's spaces out.
    """
    import numpy as np

    if not block or block[-1:] != NEWLINE:
        return None
    a = np.frombuffer(block, dtype=np.int8)  # bytes >= 0x80 are negative
    flat = np.flatnonzero(a <= 32)
    width = name_spaces + text_spaces + 2
    if len(flat) % width:
        return None
    marks = flat.reshape(-1, width)
    pattern = _LAYOUT_PATTERNS.get(width)
    if pattern is None:
        pattern = _LAYOUT_PATTERNS.setdefault(width, np.array([32] * (width - 1) + [10], dtype=np.int8))
    if not (a[marks] == pattern).all():
        return None
    ends = marks[:, -1]
    spaces = marks[:, name_spaces:-1]
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    # The first space comes right after a colon, and the name before it is
    # not empty (a line that starts with ":" may be "": ..." : the per-line path).
    if not (a[spaces[:, 0] - 1] == 58).all() or (a[starts] == 58).any():
        return None
    return LineLayout(starts=starts, ends=ends, spaces=spaces)


#: line_layout's expected byte values at its marks, per line width.
_LAYOUT_PATTERNS: dict[int, Any] = {}


def name_table(np: Any, names: dict[int, bytes]) -> tuple[Any, Any]:
    """The block path's name table: per sender id, ``NAME: `` as
    little-endian 8-byte words (zero-padded) and the masks of its bytes,
    shape (ids, 2, words); and the byte offsets of the words."""
    ids = [sid for sid in names if 0 <= sid < MAX_TABLE_IDS]
    size = max(ids, default=-1) + 1
    width = max((len(names[sid]) + 2 for sid in ids), default=8)
    words = (width + 7) // 8
    table = np.zeros((size, 2, 8 * words), dtype=np.uint8)
    table[:, :, 0] = 0xFF  # not a sender: a byte 0xFF, which no accepted block holds
    for sid in ids:
        prefix = names[sid] + SEPARATOR
        table[sid, 0, : len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
        table[sid, 1, : len(prefix)] = 0xFF
    return table.view("<u8"), np.arange(0, 8 * words, 8)


def names_match(np: Any, block: bytes, starts: Any, sender: Any, table: tuple[Any, Any]) -> bool:
    """Every line's name is the name of the sender its probe names (``table``
    from :func:`name_table`).  Compares each line's first bytes with
    ``NAME: `` of its sender, as 8-byte words: the space ends the name
    there, since a line's first space is its ``": "``'s."""
    words, cols = table
    if int(sender.max()) >= len(words) or int(sender.min()) < 0:
        return False
    w = probe.words_view(np, block)
    pos = starts[:, None] + cols
    if int(starts[-1]) + int(cols[-1]) >= len(w):
        pos = np.minimum(pos, len(w) - 1)  # words past the block's end: masked off
    got = w[pos]
    want = words[sender]
    return bool(((got & want[:, 1]) == want[:, 0]).all())
