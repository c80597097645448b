"""Where one server's on-CPU time exceeds another's, symbol by symbol.

usage: python reports/perf-round6/symdiff.py A.perf.data B.perf.data [TOP]

Both files are ``perf record -p PID`` profiles of the same length at the same
load (``reports/perf-round3/perf-record.sh``).  Each symbol's share is turned
into milliseconds of CPU with the file's event count, and the symbols are
listed by how many more milliseconds B spent in them than A (round 9 of
reports/perf-server.md compares the floor server with ours this way).
"""

from __future__ import annotations

import re
import subprocess
import sys


def profile(path: str) -> tuple[float, dict[str, float]]:
    """The file's on-CPU milliseconds and each symbol's milliseconds."""
    out = subprocess.run(
        ["perf", "report", "-i", path, "--stdio", "--no-children", "--sort", "sym", "-g", "none"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    total = re.search(r"Event count \(approx\.\): (\d+)", out)
    if total is None:
        raise SystemExit(f"symdiff: no event count in {path}")
    ms = int(total.group(1)) / 1e6  # cpu-clock counts nanoseconds
    symbols: dict[str, float] = {}
    for line in out.splitlines():
        match = re.match(r"\s+([\d.]+)%\s+\[[.k]\]\s+(\S+)", line)
        if match:
            symbols[match.group(2)] = symbols.get(match.group(2), 0.0) + float(match.group(1)) * ms / 100
    return ms, symbols


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    total_a, a = profile(argv[0])
    total_b, b = profile(argv[1])
    print(f"on-CPU ms: A {total_a:.1f}, B {total_b:.1f} ({total_b - total_a:+.1f})")
    print(f"{'symbol':45} {'A ms':>8} {'B ms':>8} {'B-A':>8}")
    rows = sorted(set(a) | set(b), key=lambda s: b.get(s, 0.0) - a.get(s, 0.0), reverse=True)
    for sym in rows[: int(argv[2]) if len(argv) == 3 else 30]:
        print(f"{sym[:45]:45} {a.get(sym, 0.0):8.1f} {b.get(sym, 0.0):8.1f} {b.get(sym, 0.0) - a.get(sym, 0.0):+8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
