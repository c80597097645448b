"""The measured message: what a harness sender says, and how a receiver reads it.

A probe is an ordinary chat line, so any server speaking the protocol relays
it untouched.  Its text is::

    ~cb1 SENDER SEQ INTENDED_NS PAYLOAD CRC

* ``SENDER``       integer id of the sending harness client
* ``SEQ``          per-sender sequence number, starting at 0
* ``INTENDED_NS``  ``time.monotonic_ns()`` at which the message was *scheduled*
                   to be sent (not when it was actually sent), so a stalled
                   sender or server shows up as latency instead of hiding
                   (no coordinated omission).  ``monotonic_ns`` is one
                   system-wide clock on Linux, so it is comparable across the
                   harness's processes on one machine.
* ``PAYLOAD``      printable ASCII filler of the requested size
* ``CRC``          CRC-32 (8 hex digits) of everything between the tag and it,
                   so a corrupted line is told apart from a lost one.

The chat framing (``NAME: TEXT``) is the protocol module's business; this
module only handles the text inside.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

TAG = "~cb1"
_TAG_PREFIX = TAG + " "
_PAYLOAD_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


class CorruptProbe(ValueError):
    """A line that claims to be a probe but does not check out."""


@dataclass(frozen=True, slots=True)
class Probe:
    sender: int
    seq: int
    intended_ns: int
    payload: str


def make_payload(size: int, sender: int = 0, seq: int = 0) -> str:
    """Deterministic filler of exactly ``size`` characters (no spaces)."""
    if size <= 0:
        return ""
    start = (sender * 7 + seq) % len(_PAYLOAD_ALPHABET)
    rotated = _PAYLOAD_ALPHABET[start:] + _PAYLOAD_ALPHABET[:start]
    reps = size // len(rotated) + 1
    return (rotated * reps)[:size]


def encode_probe(sender: int, seq: int, intended_ns: int, payload: str) -> str:
    """The chat text for one probe (without framing or newline)."""
    body = f"{sender} {seq} {intended_ns} {payload}"
    return f"{_TAG_PREFIX}{body} {zlib.crc32(body.encode('ascii')):08x}"


def is_probe(text: str) -> bool:
    return text.startswith(_TAG_PREFIX)


def parse_probe(text: str) -> Probe:
    """Parse a probe's chat text.  Raises :class:`CorruptProbe` if the text
    is not a well-formed probe or its checksum does not match."""
    if not text.startswith(_TAG_PREFIX):
        raise CorruptProbe("not a probe")
    body, sep, crc = text[len(_TAG_PREFIX) :].rpartition(" ")
    if not sep:
        raise CorruptProbe("no checksum")
    try:
        expected = int(crc, 16)
        actual = zlib.crc32(body.encode("utf-8"))
    except ValueError as exc:
        raise CorruptProbe(f"bad checksum field {crc!r}") from exc
    if expected != actual or len(crc) != 8:
        raise CorruptProbe("checksum mismatch")
    parts = body.split(" ", 3)
    if len(parts) != 4:
        raise CorruptProbe("wrong number of fields")
    try:
        return Probe(int(parts[0]), int(parts[1]), int(parts[2]), parts[3])
    except ValueError as exc:
        raise CorruptProbe(f"bad numeric field: {exc}") from exc


#: Spaces in a probe's text whose payload has none (the swarm's filler):
#: after the tag, SENDER, SEQ and INTENDED_NS, and before the CRC.
PROBE_SPACES = 5
_TAG_BYTES = TAG.encode("ascii")
#: Decimal digits a field may have on the vectorised path (int64-safe).
_MAX_DIGITS = 18


@dataclass(frozen=True, slots=True)
class ProbeBlock:
    """The fields of many probes, as int64 numpy arrays (one entry per probe)."""

    sender: Any
    seq: Any
    intended_ns: Any


def _hex_table() -> bytes:
    table = bytearray(b"\xff" * 256)
    for i, ch in enumerate("0123456789abcdef"):
        table[ord(ch)] = i
        table[ord(ch.upper())] = i
    return bytes(table)


_HEX = _hex_table()


_DECIMAL_LAYOUTS: dict[tuple[int, ...], tuple[Any, ...]] = {}


def _decimal_layout(np: Any, widths: tuple[int, ...]) -> tuple[Any, ...]:
    """Columns for fields of these widths, each right-aligned in its own
    columns: (field of each column, offset from the field's end, minimum
    field length for the column to be inside the field, the block-diagonal
    columns x fields matrix of powers of 10).  Cached: widths rarely change."""
    cached = _DECIMAL_LAYOUTS.get(widths)
    if cached is None:
        field_of: list[int] = []
        offsets: list[int] = []
        need: list[int] = []
        weights = np.zeros((sum(widths), len(widths)), dtype=np.int64)
        col = 0
        for f, w in enumerate(widths):
            field_of += [f] * w
            offsets += range(-w, 0)
            need += range(w, 0, -1)
            weights[col : col + w, f] = 10 ** np.arange(w - 1, -1, -1, dtype=np.int64)
            col += w
        cached = (np.array(field_of), np.array(offsets), np.array(need), weights)
        if len(_DECIMAL_LAYOUTS) < 4096:
            _DECIMAL_LAYOUTS[widths] = cached
    return cached


def _decimals(np: Any, a: Any, firsts: Any, stops: Any) -> Any:
    """Vectorised ``int()`` of several all-digit fields per line at once:
    field ``f`` of line ``i`` is ``a[firsts[i, f]:stops[i, f]]``.  Returns an
    ``(n, fields)`` int64 array, or None unless every field is 1 to 18 ASCII
    digits.  One gather and one matrix product for all fields."""
    lens = stops - firsts
    widths = tuple(lens.max(axis=0).tolist())
    if int(lens.min()) < 1 or max(widths) > _MAX_DIGITS:
        return None
    field_of, offsets, need, weights = _decimal_layout(np, widths)
    digits = a[np.maximum(stops[:, field_of] + offsets, 0)].astype(np.int64) - 48
    digits[lens[:, field_of] < need] = 0  # left of a field: not part of it
    if int(digits.min()) < 0 or int(digits.max()) > 9:
        return None
    return digits @ weights


def parse_probe_block(block: bytes, text_starts: Any, spaces: Any, ends: Any) -> ProbeBlock | None:
    """Vectorised :func:`parse_probe` of many probe texts in one buffer (the
    receive path's fast path; numpy arrays in, numpy arrays out).

    Text ``i`` is ``block[text_starts[i]:ends[i]]`` and ``spaces[i]`` holds
    the offsets of its :data:`PROBE_SPACES` spaces, in order (as
    :func:`server.protocol.chat_block_layout` finds them).  Returns the
    fields of every text when *all* of them are probes that
    :func:`parse_probe` accepts, checksums verified one by one; ``None``
    when any one is not -- or is one this path does not handle (a field
    that is not plain digits or over 18 digits, a byte >= 0x80 anywhere in
    the block) -- so the caller can take the per-line path, which then
    tells corrupted from foreign lines exactly.
    """
    import numpy as np

    a = np.frombuffer(block, dtype=np.uint8)
    if len(spaces) == 0 or spaces.shape[1] != PROBE_SPACES or int(a.max()) >= 0x80:
        return None
    s_tag, s_crc = spaces[:, 0], spaces[:, 4]
    # "~cb1 " starts the text; " " + 8 hex digits end it.
    if not ((s_tag == text_starts + len(_TAG_BYTES)) & (s_crc == ends - 9)).all():
        return None
    # The tag's 4 bytes and the checksum's 8, in one gather.
    fixed = a[np.concatenate([text_starts[:, None] + _TAG_COLS, ends[:, None] + _CRC_COLS], axis=1)]
    nibbles = _HEX_ARRAY[fixed[:, len(_TAG_BYTES) :]]
    if not ((fixed[:, : len(_TAG_BYTES)] == _TAG_ARRAY).all() and int(nibbles.max()) <= 15):
        return None
    claimed = nibbles.astype(np.int64) @ _NIBBLE_WEIGHTS
    fields = _decimals(np, a, spaces[:, :3] + 1, spaces[:, 1:4])
    if fields is None:
        return None
    # The checksum of every body ("SENDER SEQ INTENDED_NS PAYLOAD"): one
    # zlib call per probe, driven by map() so no Python bytecode runs per line.
    bodies = map(block.__getitem__, map(slice, (s_tag + 1).tolist(), s_crc.tolist()))
    actual = np.fromiter(map(zlib.crc32, bodies), dtype=np.int64, count=len(claimed))
    if not (actual == claimed).all():
        return None
    return ProbeBlock(sender=fields[:, 0], seq=fields[:, 1], intended_ns=fields[:, 2])


def _np_constants() -> tuple[Any, ...]:
    import numpy as np

    return (
        np.arange(len(_TAG_BYTES)),
        np.arange(-8, 0),
        np.frombuffer(_TAG_BYTES, dtype=np.uint8),
        np.frombuffer(_HEX, dtype=np.uint8),
        np.int64(1) << np.arange(28, -1, -4, dtype=np.int64),
    )


try:
    _TAG_COLS, _CRC_COLS, _TAG_ARRAY, _HEX_ARRAY, _NIBBLE_WEIGHTS = _np_constants()
except ImportError:  # numpy is only needed by the vectorised path
    pass
