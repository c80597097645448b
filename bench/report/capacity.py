"""The capacity section: a capacity search's document as report blocks
(``capacity.md`` on its own, a section of the sweep report with its runs)."""

from __future__ import annotations

from pathlib import Path

from bench.report import doc, plots
from bench.report.fmt import ms, plural, ratio_pct
from bench.results.schema import CapacityDocument, CapacitySearch, CapacityStep


def _ms1(us: float | None) -> str:
    return ms(us, digits=1)


def _criteria_text(capacity: CapacityDocument) -> str:
    p = capacity.get("parameters", {})
    rate = p.get("rate")
    return (
        f"Client count raised until p95 latency passed {capacity['criteria']['p95_bound_ms']:g} ms, a delivery was "
        f"lost (or any other integrity fault), or a client failed to connect; {p.get('senders')} concurrent "
        f"senders, {rate:g} msg/s in total, {p.get('duration_s'):g} s measured per point, "
        f"{p.get('payload_bytes')} B payload. A point that failed on latency alone was run again "
        f"(up to {plural(capacity['search'].get('confirm', 0), 'time')}) and passes if any attempt passed."
        if rate
        else "Client count raised until a point failed."
    )


STEPS_HEADER = ("clients", "result", "p50 ms", "p95 ms", "p99 ms", "max ms", "delivered", "why")


def _verdict(st: CapacityStep) -> str:
    verdict = "pass" if st["passed"] else "FAIL"
    attempt = st.get("attempt", 1)
    if attempt > 1:
        verdict += f" (attempt {attempt})"
    if st.get("saturated"):
        verdict += " (load generator saturated)"
    return verdict


def _steps_table(search: CapacitySearch) -> doc.Table:
    rows: list[list[doc.Cell]] = [
        [
            str(st["clients"]),
            _verdict(st),
            _ms1(st.get("p50_us")),
            _ms1(st.get("p95_us")),
            _ms1(st.get("p99_us")),
            _ms1(st.get("max_us")),
            ratio_pct(st.get("delivered_ratio")),
            "; ".join(st["reasons"]),
        ]
        for st in search["steps"]
    ]
    return doc.Table(STEPS_HEADER, rows, "rlrrrrrl")


BOUNDARY_HEADER = ("clients", "side", "runs", "passed", "p95 ms min", "p95 ms max", "spread")


def boundary_rows(search: CapacitySearch) -> list[list[doc.Cell]]:
    """The headline count (the largest that passed every run), any count
    above it that passed only some runs, and the first failing count: every
    run of each (``--repeat-boundary``, confirmations), how many passed, the p95 spread."""
    r = search["result"]
    held, first_fail = r["largest_passing"], r["smallest_failing"]
    if first_fail is None:
        return []
    steps = search["steps"]
    band = sorted({st["clients"] for st in steps if st["passed"] and (held or 0) < st["clients"] < first_fail})
    if held is None and not band:
        return []
    sides = [(held, "passed every run")] if held is not None else []
    sides += [(n, "passed some runs") for n in band] + [(first_fail, "first failing")]
    rows: list[list[doc.Cell]] = []
    for n, side in sides:
        runs = [st for st in steps if st["clients"] == n]
        p95 = [v for v in (st.get("p95_us") for st in runs) if v is not None]
        lo, hi = (min(p95), max(p95)) if p95 else (None, None)
        spread = f"{100 * (hi - lo) / lo:.0f}%" if lo and hi is not None else "-"
        passed = sum(1 for st in runs if st["passed"])
        rows.append([str(n), side, str(len(runs)), f"{passed} of {len(runs)}", _ms1(lo), _ms1(hi), spread])
    return rows


def chart_lines(capacity: CapacityDocument) -> list[plots.CapacityLine]:
    """Every step of every search, by client count, for the capacity chart."""
    out = []
    for s in capacity["searches"]:
        line = plots.CapacityLine(s["label"])
        for st in sorted(s["steps"], key=lambda st: st["clients"]):
            line.clients.append(st["clients"])
            line.p50_us.append(st.get("p50_us"))
            line.p95_us.append(st.get("p95_us"))
            line.p99_us.append(st.get("p99_us"))
            line.passed.append(st["passed"])
        out.append(line)
    return out


def draw(capacity: CapacityDocument, out: Path) -> Path:
    """The capacity chart (``capacity.png``) into ``out``."""
    return plots.capacity_chart(
        chart_lines(capacity), capacity["criteria"]["p95_bound_ms"], out / plots.CAPACITY_PNG, _criteria_short(capacity)
    )


def _criteria_short(capacity: CapacityDocument) -> str:
    p = capacity.get("parameters", {})
    rate = p.get("rate")
    return f"{p.get('senders')} senders, {rate:g} msg/s, {p.get('duration_s'):g} s per step" if rate else ""


def blocks(capacity: CapacityDocument, level: int = 1, chart: str | None = None) -> list[doc.Block]:
    """The capacity section: criteria, one line per search, the chart, each
    search's boundary spread and steps."""
    summary = []
    for s in capacity["searches"]:
        r = s["result"]
        largest = r["largest_passing"]
        summary.append(f"**{s['label']}: {largest if largest is not None else 'none'}** — {r['summary']}.")
    out: list[doc.Block] = [doc.Heading(level, "Capacity"), doc.Para(_criteria_text(capacity)), doc.Bullets(summary)]
    if chart:
        out.append(doc.Image("Capacity search: p95 of each step against the bound (failed steps: red crosses)", chart))
    for s in capacity["searches"]:
        rows = boundary_rows(s)
        if rows:
            out += [
                doc.Heading(level + 1, f"Boundary: {s['label']}"),
                doc.Para(BOUNDARY_NOTE),
                doc.Table(BOUNDARY_HEADER, rows, "rlrlrrr"),
            ]
        out += [doc.Heading(level + 1, f"Steps: {s['label']}"), _steps_table(s)]
    return out


BOUNDARY_NOTE = (
    "Every run at the boundary (`--repeat-boundary` runs each, with any confirmations): the headline is the "
    "largest count that passed every one of its runs; a count above it that passed only some is where this "
    "machine draws the line as a band, not a line."
)


def render_markdown(capacity: CapacityDocument) -> str:
    """``capacity.md``."""
    return doc.to_markdown(blocks(capacity)).rstrip()
