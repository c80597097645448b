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
