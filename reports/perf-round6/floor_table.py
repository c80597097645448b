"""Medians and per-round ratios to Redis of interleaved ``floor.sh`` runs.

usage: python reports/perf-round6/floor_table.py reports/perf-round6/round9-floor-redis.txt

Each line ``floor.sh`` printed is one run (CPU per delivery, delivered, p99);
a round is one run of each of floor, floor-threads, embedded and redis, in
that order.  Prints each server's median (min-max) and, round by round, its
CPU per delivery divided by Redis' in the same round.
"""

from __future__ import annotations

import re
import statistics
import sys

SERVERS = ("floor", "floor-threads", "embedded", "redis")
RUN = re.compile(r"(floor-threads|floor|embedded|redis)\s+([\d.]+) us.*delivered \d+/\d+.*p99 ([\d.]+)ms")


def rounds(path: str) -> list[dict[str, tuple[float, float]]]:
    """Complete rounds: server -> (CPU us per delivery, p99 ms)."""
    found: list[dict[str, tuple[float, float]]] = []
    current: dict[str, tuple[float, float]] = {}
    with open(path, encoding="utf-8") as lines:
        text = lines.read().splitlines()
    for line in text:
        match = RUN.search(line)
        if match is None:
            continue
        if match.group(1) in current:
            found.append(current)
            current = {}
        current[match.group(1)] = (float(match.group(2)), float(match.group(3)))
    found.append(current)
    return [r for r in found if len(r) == len(SERVERS)]


def main(path: str) -> None:
    done = rounds(path)
    print(f"{len(done)} complete rounds")
    for server in SERVERS:
        cpu = [r[server][0] for r in done]
        p99 = [r[server][1] for r in done]
        print(
            f"{server:14} CPU us/delivery {statistics.median(cpu):.2f} ({min(cpu):.2f}-{max(cpu):.2f})"
            f"  p99 ms {statistics.median(p99):.2f} ({min(p99):.2f}-{max(p99):.2f})"
        )
    for server in SERVERS[:-1]:
        ratios = [r[server][0] / r["redis"][0] for r in done]
        print(
            f"{server:14} / redis: median {statistics.median(ratios):.2f}, {min(ratios):.2f}-{max(ratios):.2f},"
            f" below 1.0 in {sum(x < 1 for x in ratios)} of {len(ratios)}: " + " ".join(f"{x:.2f}" for x in ratios)
        )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[2])
    main(sys.argv[1])
