"""Bytes-level fast path for whole blocks of chat lines, used only by the harness.

:func:`chat_block_layout` agrees with :func:`server.protocol.split_message` on
every line of a block it accepts; the server never needs it, so it lives
with the harness's wire layer rather than in the sans-IO protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.protocol import NEWLINE, RESERVED_FIRST


@dataclass(frozen=True, slots=True)
class ChatBlockLayout:
    """Where the lines and spaces of a block of chat messages are: see
    :func:`chat_block_layout`.  Offsets index the block's bytes."""

    #: offset of each line's first byte
    starts: Any
    #: offset of each line's ``\n``
    ends: Any
    #: ``(lines, text_spaces + 1)``: per line, the offset of the space of the
    #: ``": "`` separator, then of every space in the text, in order
    spaces: Any


def chat_block_layout(block: bytes, text_spaces: int) -> ChatBlockLayout | None:
    """Bytes-level fast path of :func:`split_message` for a whole block of
    complete lines (:meth:`LineDecoder.feed_block`), vectorised with numpy.

    Returns the layout when *every* line of ``block`` is a chat message
    (``split_message`` of its text is not ``None``) whose text holds exactly
    ``text_spaces`` spaces and which is ASCII without control characters
    (no byte below 0x20 but the ``\n``, none above 0x7F); then, for line ``i`` from ``starts[i]``
    to ``ends[i]``, ``split_message`` gives the sender
    ``block[starts[i]:spaces[i, 0] - 1]`` and the text
    ``block[spaces[i, 0] + 1:ends[i]]``.  Returns ``None`` otherwise -- also
    for blocks that do qualify but hold other bytes (a ``\r`` before a
    newline, a tab, UTF-8), so ``None`` means "use the per-line path", never
    "not chat".

    One pass finds every byte that is a space, a newline, a control
    character or not ASCII (the bytes <= 0x20 as signed 8-bit numbers); in
    an accepted block they are exactly ``text_spaces + 1`` spaces and a
    newline per line, in that order.

    Why it agrees with :func:`split_message`: with exactly
    ``text_spaces + 1`` spaces on every line, the first space of a line is
    the one after the first ``": "`` (checked), so the name before it has
    no space and its first ``": "`` is that one; the name must be non-empty
    and not start with a reserved character (checked).
    """
    import numpy as np

    if not block or block[-1:] != NEWLINE:
        return None
    a = np.frombuffer(block, dtype=np.int8)  # bytes >= 0x80 are negative
    flat = np.flatnonzero(a <= 32)
    width = text_spaces + 2
    if len(flat) % width:
        return None
    marks = flat.reshape(-1, width)
    pattern = _LAYOUT_PATTERNS.get(width)
    if pattern is None:
        pattern = _LAYOUT_PATTERNS.setdefault(width, np.array([32] * (width - 1) + [10], dtype=np.int8))
    if not (a[marks] == pattern).all():
        return None
    ends = marks[:, -1]
    spaces = marks[:, :-1]
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    # The first space comes right after a colon that ends a non-empty name
    # whose first character is not reserved: the colon, and the first byte
    # neither reserved nor a colon (so the name is not empty; a line that
    # starts with its space has the previous line's newline before it).
    if not (a[spaces[:, 0] - 1] == 58).all():
        return None
    if np.frombuffer(_NOT_FIRST_BYTES, dtype=np.uint8)[a[starts]].any():
        return None
    return ChatBlockLayout(starts=starts, ends=ends, spaces=spaces)


#: chat_block_layout's expected byte values at its marks, per line width.
_LAYOUT_PATTERNS: dict[int, Any] = {}
#: byte value -> 1 for the bytes chat_block_layout refuses at a line's start:
#: the reserved first characters, and ":" (also taken by lines with an empty
#: name; a name that starts with ":" only takes the per-line path).
_NOT_FIRST_BYTES = bytes(1 if chr(b) in RESERVED_FIRST or b == 58 else 0 for b in range(256))
