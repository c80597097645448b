"""The measured message: what a harness sender says, and how a receiver reads it.

A probe is an ordinary chat line, so any server speaking the protocol relays
it untouched.  Its text is::

    ~cb2 SENDER SEQ INTENDED_NS PAYLOAD CHECK

* ``SENDER``       integer id of the sending harness client
* ``SEQ``          per-sender sequence number, starting at 0
* ``INTENDED_NS``  ``time.monotonic_ns()`` at which the message was *scheduled*
                   to be sent (not when it was actually sent), so a stalled
                   sender or server shows up as latency instead of hiding
                   (no coordinated omission).  ``monotonic_ns`` is one
                   system-wide clock on Linux, so it is comparable across the
                   harness's processes on one machine.
* ``PAYLOAD``      printable ASCII filler of the requested size
* ``CHECK``        8 "forcing" characters (from ``@ABC...W``), chosen by the
                   sender so that the *raw* CRC-32 of the whole text plus its
                   line feed -- ``TEXT + "\\n"`` as UTF-8 -- is 0, so a
                   corrupted line is told apart from a lost one.

"Raw" CRC-32 is the zlib/IEEE CRC-32 without its initial and final
inversion (register starting at 0, no final xor):
``zlib.crc32(data, 0xFFFFFFFF) ^ 0xFFFFFFFF``.  It is linear over GF(2)
(the raw CRC of ``a XOR b`` is ``raw(a) XOR raw(b)``) and leading zero
bytes do not change it, which gives two things:

* The sender finds the 8 characters without search.  Each carries 4 free
  bits (32 in all); the raw CRC of the text with the base characters
  ``@@@@@@@@`` is computed once and four 256-entry tables (the inverse of
  the 32x32 bit matrix from the free bits to the CRC) give the bits to set
  (:func:`encode_probe`).
* A receiver can check a whole buffer of probe lines with one CRC call:
  in ``NAME: TEXT\\n NAME: TEXT\\n ...`` every ``TEXT\\n`` has raw CRC 0,
  so once the ``NAME: `` prefixes are zeroed the raw CRC of the buffer is
  0 (:func:`check_probe_texts`).  One damaged line always makes it non-zero
  (its non-zero residue, multiplied by a power of x, cannot vanish modulo
  the CRC polynomial); damage on several lines can cancel out only with the
  chance of a CRC collision, 2**-32 -- the same odds by which a damaged line
  passes its own check.

The chat framing (``NAME: TEXT``) is the protocol module's business; this
module only handles the text inside.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

TAG = "~cb2"
_TAG_PREFIX = TAG + " "
_PAYLOAD_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

#: Length of the CHECK field (characters, all ASCII).
CHECK_CHARS = 8


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


# -- the raw CRC-32 and the forcing characters -------------------------------------


def raw_crc(data: bytes, register: int = 0) -> int:
    """Raw CRC-32 of ``data`` (no initial or final inversion), continuing
    from ``register``."""
    return zlib.crc32(data, register ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


def _solve(columns: list[int], masks: list[int]) -> list[int]:
    """GF(2): for each bit ``k`` of a 32-bit word, the XOR of ``masks[i]``
    over a set of ``i`` whose ``columns[i]`` XOR to ``1 << k``.  Raises if
    the columns do not span all 32 bits."""
    rows: dict[int, tuple[int, int]] = {}  # pivot (highest bit) -> (column, mask)
    for col, mask in zip(columns, masks, strict=True):
        for k in range(31, -1, -1):
            if col >> k & 1 and k in rows:
                col, mask = col ^ rows[k][0], mask ^ rows[k][1]
        if col:
            rows[col.bit_length() - 1] = (col, mask)
    if len(rows) != 32:
        raise ValueError("the forcing bits do not determine the CRC")
    # Back-substitute, lowest pivot first, so each bit gets a mask of its own.
    solved: dict[int, int] = {}
    for top in range(32):
        col, mask = rows[top]
        for k in range(top):
            if col >> k & 1:
                mask ^= solved[k]
        solved[top] = mask
    return [solved[k] for k in range(32)]


#: The free bits of each CHECK character (character 0 first).  Each
#: character is ``"@"`` (0x40) with some of these bits set: 4 bits each,
#: a choice for which the 32x32 system is invertible (with the low 4 bits
#: of all 8 characters it is not: rank 30).
_CHECK_BITS = (
    (0, 1, 2, 3),
    (0, 1, 2, 3),
    (0, 1, 2, 3),
    (0, 1, 2, 4),
    (0, 1, 2, 4),
    (0, 1, 2, 3),
    (0, 1, 2, 3),
    (0, 1, 2, 3),
)
_CHECK_BASE = b"@" * CHECK_CHARS
_CHECK_BASE_INT = int.from_bytes(_CHECK_BASE, "big")


def _forcing_tables() -> tuple[list[list[int]], int, int]:
    """The sender's tables: for a text head ``H`` (everything before CHECK),
    the CHECK bytes are ``(BASE ^ mask).to_bytes(8, "big")`` with ``mask``
    the XOR of ``tables[i][byte i of raw_crc(H)]`` and ``constant``.
    Also returns the receiver's constant, :data:`TEXT_CRC`."""
    columns, masks = [], []
    for j, bits in enumerate(_CHECK_BITS):
        for b in bits:
            delta = bytearray(CHECK_CHARS + 1)  # the CHECK characters, then "\n"
            delta[j] = 1 << b
            columns.append(raw_crc(bytes(delta)))
            masks.append(1 << (8 * (CHECK_CHARS - 1 - j) + b))
    unit = _solve(columns, masks)  # unit[k]: the mask that flips CRC bit k alone

    def mask_for(crc: int) -> int:
        m = 0
        for k in range(32):
            if crc >> k & 1:
                m ^= unit[k]
        return m

    # raw_crc(H + BASE + "\n") = shift(raw_crc(H)) ^ raw_crc(BASE + "\n"), both
    # parts linear in what they depend on: tables for the first, a constant for the second.
    tail = _CHECK_BASE + b"\n"
    tables = [[mask_for(raw_crc(tail, v << (8 * i)) ^ raw_crc(tail)) for v in range(256)] for i in range(4)]
    constant = mask_for(raw_crc(tail))
    # The register value r with raw_crc(b"\n", r) == 0: the raw CRC of every
    # valid text; zlib.crc32(text, 0xFFFFFFFF) reports it inverted.
    r = 0
    unit1 = _solve([raw_crc(b"\0", 1 << k) for k in range(32)], [1 << k for k in range(32)])
    for k in range(32):
        if raw_crc(b"\n") >> k & 1:
            r ^= unit1[k]
    assert raw_crc(b"\n", r) == 0
    return tables, constant, r ^ 0xFFFFFFFF


(_T0, _T1, _T2, _T3), _CONSTANT, _TEXT_CRC = _forcing_tables()
_BASE_XOR_CONSTANT = _CHECK_BASE_INT ^ _CONSTANT
#: ``zlib.crc32(text, 0xFFFFFFFF)`` of every intact probe text (UTF-8,
#: without the line feed): one call checks a probe.
TEXT_CRC: int = _TEXT_CRC


def encode_probe(sender: int, seq: int, intended_ns: int, payload: str) -> str:
    """The chat text for one probe (without framing or newline)."""
    return seal(f"{_TAG_PREFIX}{sender} {seq} {intended_ns} {payload} ")


def seal(head: str) -> str:
    """``head`` -- a probe text up to and including the space before CHECK
    -- with its CHECK characters appended (see the module docstring)."""
    r = zlib.crc32(head.encode("utf-8"), 0xFFFFFFFF) ^ 0xFFFFFFFF
    mask = _BASE_XOR_CONSTANT ^ _T0[r & 255] ^ _T1[(r >> 8) & 255] ^ _T2[(r >> 16) & 255] ^ _T3[r >> 24]
    return head + mask.to_bytes(CHECK_CHARS, "big").decode("ascii")


def is_probe(text: str) -> bool:
    return text.startswith(_TAG_PREFIX)


def parse_probe(text: str) -> Probe:
    """Parse a probe's chat text.  Raises :class:`CorruptProbe` if the text
    is not a well-formed probe or its check fails."""
    body, sep, check = _after_tag(text).rpartition(" ")
    if not sep:
        raise CorruptProbe("no check field")
    if len(check) != CHECK_CHARS:
        raise CorruptProbe(f"bad check field {check!r}")
    if zlib.crc32(text.encode("utf-8"), 0xFFFFFFFF) != TEXT_CRC:
        raise CorruptProbe("checksum mismatch")
    parts = body.split(" ", 3)
    if len(parts) != 4:
        raise CorruptProbe("wrong number of fields")
    try:
        return Probe(int(parts[0]), int(parts[1]), int(parts[2]), parts[3])
    except ValueError as exc:
        raise CorruptProbe(f"bad numeric field: {exc}") from exc


def probe_header(text: str) -> tuple[int, int] | None:
    """Best-effort ``(sender, seq)`` of a probe that failed to parse, so a
    damaged message can be told apart from a lost one.  Reads only the two
    leading fields; ``None`` when even those are unreadable."""
    try:
        fields = _after_tag(text).split(" ", 2)
    except CorruptProbe:
        return None
    if len(fields) < 2:
        return None
    try:
        sender, seq = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    if sender < 0 or seq < 0:
        return None
    return sender, seq


def _after_tag(text: str) -> str:
    """The fields of a probe's text, after its tag; :class:`CorruptProbe`
    when the text does not start with the tag."""
    if not text.startswith(_TAG_PREFIX):
        raise CorruptProbe("not a probe")
    return text[len(_TAG_PREFIX) :]


#: Spaces in a probe's text whose payload has none (the swarm's filler):
#: after the tag, SENDER, SEQ and INTENDED_NS, and before CHECK.
PROBE_SPACES = 5
#: Decimal digits a field may have on the vectorised path (int64-safe).
_MAX_DIGITS = 18
#: _BYTE_MASKS[i] masks the high min(max(i - _MASK_OFFSET, 0), 8) bytes of a word.
_MASK_OFFSET = 24


@dataclass(frozen=True, slots=True)
class ProbeBlock:
    """The fields of many probes, as int64 numpy arrays (one entry per probe)."""

    sender: Any
    seq: Any
    intended_ns: Any


def words_view(np: Any, buf: Any) -> Any:
    """``w[i]`` is the little-endian 64-bit word of bytes ``buf[i:i + 8]``:
    an unaligned, overlapping numpy view (no copy), so one gather reads 8
    bytes at any offsets."""
    return np.ndarray((max(len(buf) - 7, 0),), dtype="<u8", buffer=buf, strides=(1,))


_WORD_LAYOUTS: dict[tuple[int, ...], tuple[Any, ...]] = {}


def _word_layout(np: Any, words: tuple[int, ...]) -> tuple[Any, ...]:
    """Rows for decimal fields of ``words[f]`` 8-digit words each, read from
    each field's end: (field of each row, 8 x (word index from the end + 1)
    as a column, the mask-table offset of each row as a column, the row of
    each field's last word, and ``(row, field, 10**(8 * word index))`` for
    every other word).  Cached: the widths rarely change."""
    cached = _WORD_LAYOUTS.get(words)
    if cached is None:
        field_of = [f for f, k in enumerate(words) for _ in range(k)]
        back = [8 * j for k in words for j in range(k)]
        lasts = [row for row, b in enumerate(back) if b == 0]
        higher = tuple((row, f, 10**b) for row, (f, b) in enumerate(zip(field_of, back, strict=True)) if b)
        back_a = np.array(back, dtype=np.int64)[:, None]
        # gap (field length + 1) - back - 1 + _MASK_OFFSET indexes _BYTE_MASKS
        cached = (np.array(field_of), back_a + 8, back_a + 1 - _MASK_OFFSET, np.array(lasts), higher)
        if len(_WORD_LAYOUTS) < 4096:
            _WORD_LAYOUTS[words] = cached
    return cached


def _decimal_words(np: Any, w: Any, starts_t: Any, stops_t: Any) -> Any:
    """Vectorised ``int()`` of several all-digit fields per line at once,
    field by field (rows) for all lines (columns): field ``f`` of line
    ``i`` is bytes ``starts_t[f, i] + 1:stops_t[f, i]`` (between two
    spaces) of the ASCII buffer ``w`` views (:func:`words_view`), every
    field at least 8 bytes into it.  Returns a ``(fields, n)`` uint64
    array, or None unless every field is 1 to 18 digits.  Each field is read
    as 8-byte words from its end (one gather for all of them), the bytes in
    front of the field masked off, and the digits of each word combined
    with three multiply-shift-mask steps (SWAR)."""
    gaps = stops_t - starts_t  # field lengths + 1
    longest = gaps.max(axis=1).tolist()
    if int(gaps.min()) < 2 or max(longest) > _MAX_DIGITS + 1:
        return None
    field_of, back8, mask_back, lasts, higher = _word_layout(np, tuple((k + 6) // 8 for k in longest))
    # A word only partly in its field starts at or after the buffer's start
    # (fields start 8 bytes in); one wholly outside it (a shorter field than
    # the row's longest) may have a small negative index: numpy reads it
    # from the end, and the mask drops it.
    raw = w[stops_t[field_of] - back8]
    mask = _BYTE_MASKS[gaps[field_of] - mask_back]  # the field's bytes: the word's high ones
    # Every field byte is 0x30..0x39: high nibble 3, also after adding 6
    # (ASCII bytes: no carry out of a byte).
    if (((((raw + _SIXES) | raw) & _HIGH_NIBBLES) ^ _ASCII_ZEROS) & mask).any():
        return None
    v = raw & mask & _LOW_NIBBLES  # the digits, first one in the low byte; masked bytes are leading zeros
    v = ((v * _MUL_10) >> _U8) & _PAIRS
    v = ((v * _MUL_100) >> _U16) & _QUADS
    v = (v * _MUL_10000) >> _U32
    if not higher:  # one word per field
        return v
    fields = v[lasts]
    for row, f, weight in higher:
        fields[f] += v[row] * np.uint64(weight)
    return fields


def parse_probe_block(block: bytes, layout: Any) -> ProbeBlock | None:
    """Vectorised :func:`parse_probe` of every line of a block of chat lines
    (the receive path's fast path; numpy arrays out).

    ``layout`` is :func:`bench.wire.chatblock.chat_block_layout` of ``block`` for
    :data:`PROBE_SPACES` text spaces (so every byte is ASCII and each line is
    ``NAME: TEXT\\n``).  Returns the fields of every text when *all* of them
    are probes that :func:`parse_probe` accepts; ``None`` when any one is
    not -- or is one this path does not handle (a field that is not plain
    digits or over 18 digits) -- so the caller can take the per-line path,
    which then tells damaged lines from foreign ones exactly.

    The check of every text is *one* CRC call: a copy of the block with the
    ``NAME: `` prefixes zeroed has raw CRC 0 when every ``TEXT\\n`` does (see
    the module docstring; damage on two or more lines cancels out with
    probability 2**-32).
    """
    import numpy as np

    starts, ends, spaces = layout.starts, layout.ends, layout.spaces
    n = len(ends)
    if n == 0 or spaces.shape[1] != PROBE_SPACES + 1:
        return None
    spaces_t = np.ascontiguousarray(spaces.T)  # field-major rows: contiguous for what follows
    sep = spaces_t[0]  # the space of ": "
    w = words_view(np, block)
    # Each text is "~cb2 " ... " " + CHECK: the tag (read with the ": " in
    # front of it), and the check field's 8 bytes before the newline.
    if not ((spaces_t[1] - sep == len(_TAG_PREFIX)).all() and (ends - spaces_t[5] == 9).all()):
        return None
    if not ((w[sep - 1] & _LOW7) == _SEP_TAG).all():
        return None
    fields = _decimal_words(np, w, spaces_t[1:4], spaces_t[2:5])
    if fields is None:
        return None
    fields = fields.view(np.int64)
    # The check: zero every "NAME: " (from a line's start to its text) in a
    # copy, then one CRC of the whole copy.
    buf = bytearray(block)
    gap = sep - starts  # prefix length - 1
    shortest, longest = int(gap.min()), int(gap.max())
    if shortest >= 7:
        # 8 bytes at a time: the first word of each prefix, the last one
        # (ending at its space), and any between.
        z = words_view(np, buf)
        z[starts] = 0
        z[sep - 7] = 0
        for col in range(8, longest - 7, 8):
            z[np.minimum(starts + col, sep - 7)] = 0
    else:
        cols = np.arange(longest + 1)
        np.frombuffer(buf, dtype=np.uint8)[np.minimum(starts[:, None] + cols, sep[:, None])] = 0
    if zlib.crc32(buf, 0xFFFFFFFF) != 0xFFFFFFFF:
        return None
    return ProbeBlock(sender=fields[0], seq=fields[1], intended_ns=fields[2])


def _np_constants() -> tuple[Any, ...]:
    import numpy as np

    u = np.uint64
    return (
        np.array(
            [
                (1 << 64) - (1 << (64 - 8 * c)) if c else 0
                for c in (min(max(i - _MASK_OFFSET, 0), 8) for i in range(64))
            ],
            dtype=np.uint64,
        ),
        u(0xF0F0F0F0F0F0F0F0),
        u(0x3030303030303030),
        u(0x0606060606060606),
        u(0x0F0F0F0F0F0F0F0F),
        u(0x00FF00FF00FF00FF),
        u(0x0000FFFF0000FFFF),
        u(1 + (10 << 8)),
        u(1 + (100 << 16)),
        u(1 + (10000 << 32)),
        u(8),
        u(16),
        u(32),
        u((1 << 56) - 1),
        u(int.from_bytes((": " + _TAG_PREFIX).encode("ascii"), "little")),
    )


try:
    (
        _BYTE_MASKS,
        _HIGH_NIBBLES,
        _ASCII_ZEROS,
        _SIXES,
        _LOW_NIBBLES,
        _PAIRS,
        _QUADS,
        _MUL_10,
        _MUL_100,
        _MUL_10000,
        _U8,
        _U16,
        _U32,
        _LOW7,
        _SEP_TAG,
    ) = _np_constants()
except ImportError:  # numpy is only needed by the vectorised path
    pass
