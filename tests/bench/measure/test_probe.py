"""The probe format (bench/probe.py): CHECK characters that make the raw
CRC-32 of every text plus its newline 0, so one CRC call checks a text --
or a whole buffer of chat lines once the ``NAME: `` prefixes are zeroed."""

from __future__ import annotations

import random
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.measure import probe
from server import protocol


def _raw_crc(data: bytes) -> int:
    """Raw CRC-32 written out bit by bit (no zlib): register 0, reflected
    polynomial 0xEDB88320, no final inversion."""
    reg = 0
    for byte in data:
        reg ^= byte
        for _ in range(8):
            reg = (reg >> 1) ^ (0xEDB88320 if reg & 1 else 0)
    return reg


def test_raw_crc_is_zlibs_without_the_inversions() -> None:
    for data in (b"", b"\n", b"hello world", bytes(range(256))):
        assert probe.raw_crc(data) == _raw_crc(data)
    assert probe.raw_crc(b"world", probe.raw_crc(b"hello ")) == _raw_crc(b"hello world")


@given(
    st.integers(0, 2**64),
    st.integers(0, 10**12),
    st.integers(0, 2**63),
    st.text(st.characters(blacklist_characters=" \n", blacklist_categories=("Cs",)), max_size=80),
)
@settings(max_examples=300, deadline=None)
def test_every_probe_text_plus_newline_has_raw_crc_zero(sender: int, seq: int, intended: int, payload: str) -> None:
    text = probe.encode_probe(sender, seq, intended, payload)
    check = text[-probe.CHECK_CHARS :]
    assert text[-probe.CHECK_CHARS - 1] == " "
    assert all("@" <= ch <= "W" for ch in check)  # printable, no space
    assert _raw_crc(text.encode("utf-8") + b"\n") == 0
    assert zlib.crc32(text.encode("utf-8"), 0xFFFFFFFF) == probe.TEXT_CRC
    assert probe.parse_probe(text) == probe.Probe(sender, seq, intended, payload)
    if payload.isprintable():
        assert protocol.sanitize_text(text) == text  # the server relays it untouched


def test_seal_forces_any_head() -> None:
    rng = random.Random(1)
    for _ in range(200):
        head = "".join(rng.choice("ab 01~+_") for _ in range(rng.randrange(40))) + " "
        assert _raw_crc(probe.seal(head).encode("ascii") + b"\n") == 0


def test_any_changed_character_is_a_corrupt_probe() -> None:
    text = probe.encode_probe(7, 12, 10**15, probe.make_payload(32, 7, 12))
    rng = random.Random(2)
    for i in range(len(text)):
        for _ in range(5):
            bad = text[:i] + rng.choice("0123456789@ABCDEFGWxyz~ ") + text[i + 1 :]
            if bad != text:
                with pytest.raises(probe.CorruptProbe):
                    probe.parse_probe(bad)


def test_malformed_probes_are_refused() -> None:
    good = probe.encode_probe(1, 2, 3, "pay")
    for bad in (
        good[: -probe.CHECK_CHARS],  # no check field
        good[:-1],  # short check field
        probe.seal("~cb2 1 2 pay "),  # a field missing
        probe.seal("~cb2 1 x 3 pay "),  # not a number
        "~cb1 1 2 3 pay 0000abcd",  # the previous format
    ):
        with pytest.raises(probe.CorruptProbe):
            probe.parse_probe(bad)


def test_a_buffer_of_lines_checks_with_one_crc_once_the_names_are_zeroed() -> None:
    texts = [probe.encode_probe(s, q, 10**12 + q, probe.make_payload(20, s, q)) for q in range(5) for s in (1, 22)]
    lines = [protocol.encode_message(f"user{len(t) % 7}", t) for t in texts]
    buf = bytearray(b"".join(lines))
    assert zlib.crc32(buf, 0xFFFFFFFF) != 0xFFFFFFFF  # the names are in it
    pos = 0
    for line in lines:
        name_end = line.index(b": ") + 2
        buf[pos : pos + name_end] = bytes(name_end)
        pos += len(line)
    assert zlib.crc32(buf, 0xFFFFFFFF) == 0xFFFFFFFF
    # A damaged byte in any text shows.
    for i in (30, 200, len(buf) - 2):
        if buf[i]:
            damaged = bytearray(buf)
            damaged[i] ^= 0x01
            assert zlib.crc32(damaged, 0xFFFFFFFF) != 0xFFFFFFFF
