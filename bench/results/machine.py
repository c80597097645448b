"""What machine a result was measured on: collected once per process (a
series' runs share it: the CPU, the memory, Python, the git checkout), stored
in the series' index and in every run with the load average at that moment."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path
from typing import TypedDict


class Environment(TypedDict):
    """``bench.results.machine.environment()``: where a result was measured."""

    cpu_model: str | None
    cpu_count: int | None
    memory_bytes: int | None
    python: str
    python_implementation: str
    platform: str
    git_commit: str | None
    git_dirty: bool | None
    load_average: list[float] | None  #: 1/5/15 min; None where the OS has no getloadavg


def cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _git(*args: str) -> str | None:
    repo = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip()


def environment() -> Environment:
    """The machine (collected once, :func:`machine`) and its load average now."""
    env = machine().copy()
    env["load_average"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return env


@functools.cache
def machine() -> Environment:
    """What does not change during a series: read once per process (git runs twice)."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": memory_bytes(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "load_average": None,
    }


def memory_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError):
        return None
