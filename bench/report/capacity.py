"""The capacity section: a capacity search's document as report blocks
(``capacity.md`` on its own, a section of the sweep report with its runs)."""

from __future__ import annotations

from bench.report import doc
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


def blocks(capacity: CapacityDocument, level: int = 1) -> list[doc.Block]:
    """The capacity section: criteria, one line per search, each search's steps."""
    summary = []
    for s in capacity["searches"]:
        r = s["result"]
        largest = r["largest_passing"]
        summary.append(f"**{s['label']}: {largest if largest is not None else 'none'}** — {r['summary']}.")
    out: list[doc.Block] = [doc.Heading(level, "Capacity"), doc.Para(_criteria_text(capacity)), doc.Bullets(summary)]
    for s in capacity["searches"]:
        out += [doc.Heading(level + 1, f"Steps: {s['label']}"), _steps_table(s)]
    return out


def render_markdown(capacity: CapacityDocument) -> str:
    """``capacity.md``."""
    return doc.to_markdown(blocks(capacity)).rstrip()
