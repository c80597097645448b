"""Number and text formats shared by every report, table and summary line
(one place for "microseconds as milliseconds", percentages, sizes, and
markdown table cells)."""

from __future__ import annotations

from collections.abc import Mapping

MISSING = "-"


def ms(us: float | None, digits: int = 2, unit: str = "") -> str:
    """Microseconds -> milliseconds with ``digits`` decimals (and ``unit``)."""
    return MISSING if us is None else f"{us / 1000:.{digits}f}{unit}"


def num(v: float | None, fmt: str = "{:,.0f}") -> str:
    return MISSING if v is None else fmt.format(v)


def pct(v: float | None, unit: str = "") -> str:
    """A CPU share (% of one core) as a whole number."""
    return MISSING if v is None else f"{v:.0f}{unit}"


def ratio_pct(ratio: float | None, digits: int = 2) -> str:
    """0.9876 -> '98.76%'."""
    return MISSING if ratio is None else f"{100 * ratio:.{digits}f}%"


def mib(b: float | None) -> str:
    return MISSING if b is None else f"{b / 2**20:.1f}"


def md_cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|")


def counts(items: Mapping[str, int]) -> str:
    """{"lost": 3, "duplicated": 0, "reordered": 1} -> '3 lost, 1 reordered'."""
    return ", ".join(f"{n:,} {what}" for what, n in items.items() if n)


def reasons(failures: Mapping[str, int]) -> str:
    """{"timed out": 2} -> '2x timed out' (sorted by reason; '' when none)."""
    return ", ".join(f"{n}x {why}" for why, n in sorted(failures.items()))


def plural(n: int, word: str, many: str | None = None) -> str:
    """(1, "point") -> '1 point'; (3, "point") -> '3 points'; ``many`` for
    irregular plurals (1, "process", "processes").  Thousands separated."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def clock(seconds: float) -> str:
    """Seconds as m:ss (90.4 -> '1:30'), for progress lines."""
    s = max(0, round(seconds))
    return f"{s // 60}:{s % 60:02d}"
