"""Server and harness on separate CPUs (``--server-cpus``, ``--harness-cpus``).

On a machine with enough cores the server is measured best when the load
generator cannot take its CPUs: the swarm pins the server process (every
thread it has, and so every thread it starts later, which inherits its
creator's affinity), the worker processes and its own process to the CPU
sets given, with ``sched_setaffinity`` (what ``taskset -a -p`` does).
This works for every target with a pid: the servers the harness starts and
a HOST:PORT server given with ``--server-pid``.

CPU lists are written as for ``taskset -c``: ``2``, ``0-3``, ``0-3,8,10-11``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

#: The CPU numbers the kernel accepts (``CONFIG_NR_CPUS`` is at most 8192);
#: a larger number is a typo, said so before anything runs.
MAX_CPU = 8191


class PinningError(Exception):
    """A CPU list cannot be applied; the message says why."""


def parse_cpus(text: str) -> tuple[int, ...]:
    """``0-3,8`` -> ``(0, 1, 2, 3, 8)``; ValueError with a one-line reason."""
    cpus: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        lo_text, sep, hi_text = part.partition("-")
        try:
            lo = int(lo_text)
            hi = int(hi_text) if sep else lo
        except ValueError:
            raise ValueError(f"bad CPU list {text!r}: expected numbers and ranges like 0-3,8") from None
        if lo < 0 or hi < lo or hi > MAX_CPU:
            raise ValueError(f"bad CPU range {part!r} in {text!r}")
        cpus.update(range(lo, hi + 1))
    if not cpus:
        raise ValueError(f"empty CPU list {text!r}")
    return tuple(sorted(cpus))


def cpu_list(text: str) -> tuple[int, ...]:
    """:func:`parse_cpus` as an argparse type."""
    try:
        return parse_cpus(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def format_cpus(cpus: Iterable[int]) -> str:
    """``(0, 1, 2, 3, 8)`` -> ``0-3,8`` (the form :func:`parse_cpus` reads)."""
    ranges: list[str] = []
    values = sorted(set(cpus))
    start = prev = values[0] if values else 0
    for cpu in [*values[1:], None]:
        if cpu is not None and cpu == prev + 1:
            prev = cpu
            continue
        ranges.append(str(start) if start == prev else f"{start}-{prev}")
        if cpu is not None:
            start = prev = cpu
    return ",".join(ranges) if values else ""


def available_cpus() -> tuple[int, ...]:
    """The CPUs this process may run on (its own affinity: a container's or taskset's limit)."""
    return tuple(sorted(os.sched_getaffinity(0)))


def check_cpus(server: tuple[int, ...], harness: tuple[int, ...]) -> str | None:
    """Why the two sets cannot be used here, or None."""
    allowed = set(available_cpus())
    for name, cpus in (("--server-cpus", server), ("--harness-cpus", harness)):
        outside = sorted(set(cpus) - allowed)
        if outside:
            return (
                f"{name} {format_cpus(cpus)}: CPU {format_cpus(outside)} not available here "
                f"(allowed: {format_cpus(allowed)})"
            )
    shared = sorted(set(server) & set(harness))
    if shared:
        return (
            f"--server-cpus and --harness-cpus share CPU {format_cpus(shared)}: pinning them apart needs disjoint sets"
        )
    return None


def threads_of(pid: int) -> list[int]:
    """The thread ids of a process (``/proc/PID/task``)."""
    try:
        return [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()]
    except OSError as exc:
        raise PinningError(f"cannot list the threads of process {pid}: {exc}") from None


def pin_process(pid: int, cpus: Iterable[int]) -> None:
    """Every thread of ``pid`` may run on ``cpus`` only (threads it starts later inherit it)."""
    wanted = set(cpus)
    for tid in threads_of(pid):
        try:
            os.sched_setaffinity(tid, wanted)
        except ProcessLookupError:
            continue  # a thread that ended meanwhile
        except OSError as exc:
            raise PinningError(f"cannot pin process {pid} to CPUs {format_cpus(wanted)}: {exc}") from None


def process_cpus(pid: int) -> tuple[int, ...]:
    """The CPUs any thread of ``pid`` may run on (the union over its threads)."""
    cpus: set[int] = set()
    for tid in threads_of(pid):
        try:
            cpus |= os.sched_getaffinity(tid)
        except ProcessLookupError:
            continue
    return tuple(sorted(cpus))


@contextmanager
def pinned_self(cpus: Iterable[int] | None) -> Iterator[None]:
    """This process (all its threads) on ``cpus`` for the block, then as before;
    None: nothing changes.  Processes started inside inherit the pinning."""
    if cpus is None:
        yield
        return
    pid = os.getpid()
    before = {tid: os.sched_getaffinity(tid) for tid in threads_of(pid)}
    pin_process(pid, cpus)
    try:
        yield
    finally:
        for tid, old in before.items():
            try:
                os.sched_setaffinity(tid, old)
            except OSError:
                continue  # that thread ended
        restored = set().union(*before.values()) if before else set(available_cpus())
        for tid in set(threads_of(pid)) - set(before):  # threads started inside the block
            try:
                os.sched_setaffinity(tid, restored)
            except OSError:
                continue
