"""Memory given back after a storm (server.memory): the trimmer returns the
free pages a thread's arena kept, and stays idle while RSS is near its start."""

from __future__ import annotations

import threading

import pytest

from server import memory

MIB = 1 << 20

pytestmark = pytest.mark.skipif(not memory.Trimmer().enabled, reason="needs glibc (malloc_trim)")


def churn_in_a_thread(total: int, keep: list[bytes]) -> None:
    """What a storm leaves: a thread allocates ``total`` bytes in 64 KiB
    buffers (under glibc's mmap threshold, so in its arena), keeps one small
    object after each, and frees the buffers: RSS stays up, nothing is used."""

    def work() -> None:
        big = []
        for _ in range(total // (64 * 1024)):
            big.append(b"\x01" * (64 * 1024 - 64))  # touched (bytes(n) would be calloc, untouched)
            keep.append(b"\x02" * 1024)  # small survivors (past pymalloc) pin the heap
        big.clear()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()


def test_a_trim_gives_back_what_a_storm_left() -> None:
    trimmer = memory.Trimmer(interval=0.0, growth=32 * MIB, now=0.0)
    keep: list[bytes] = []
    churn_in_a_thread(160 * MIB, keep)
    before = memory.resident_bytes()
    assert before > trimmer.baseline + 64 * MIB, "the churn should have left the pages resident"
    assert trimmer.tick(1.0)
    after = memory.resident_bytes()
    assert before - after > 64 * MIB, (before // MIB, after // MIB)
    assert trimmer.trims == 1
    del keep


def test_no_trim_near_the_start_size_nor_before_the_interval() -> None:
    trimmer = memory.Trimmer(interval=10.0, growth=1 << 40, now=0.0)
    assert not trimmer.tick(5.0)  # too early
    assert not trimmer.tick(11.0)  # RSS is nowhere near baseline + 1 TiB
    assert trimmer.trims == 0


def test_resident_bytes_is_this_process() -> None:
    import psutil

    assert abs(memory.resident_bytes() - psutil.Process().memory_info().rss) < 16 * MIB
