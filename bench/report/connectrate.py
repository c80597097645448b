"""The connect-rate study's report: ``connect-rate.md`` / ``.html`` and
``connect-rate.png``, from ``connect-rate.json`` (matplotlib, like
:mod:`bench.report.plots`)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only

import matplotlib.pyplot as plt

from bench.report import doc, plots
from bench.report.fmt import ms
from bench.results import schema
from bench.results.schema import ConnectRateDocument, ConnectRateStep, ConnectRateTarget
from bench.results.store import write_json

CHART = "connect-rate.png"
HTML = "connect-rate.html"
STEPS_HEADER = (
    "offered/s",
    "result",
    "registered/s",
    "p50 ms",
    "p99 ms",
    "TCP p99 ms",
    "registration p99 ms",
    "failed",
    "steady p99 ms",
    "server CPU %",
    "why",
)


def _ms1(us: float | None) -> str:
    return ms(us, digits=1)


def steps_header(tls: bool) -> tuple[str, ...]:
    """The steps' columns; over TLS the handshake's p99 between TCP's and the registration's."""
    if not tls:
        return STEPS_HEADER
    at = STEPS_HEADER.index("registration p99 ms")
    return (*STEPS_HEADER[:at], "TLS p99 ms", *STEPS_HEADER[at:])


def _step_row(step: ConnectRateStep, tls: bool) -> list[doc.Cell]:
    verdict = "pass" if step["passed"] else "FAIL"
    if step["load_generator_saturated"]:
        verdict += " (harness saturated)"
    cpu = step["server_cpu_percent"]
    result: doc.Cell = doc.Link(verdict, step["file"]) if step["file"] else verdict
    handshake = step["tls_us"]
    return [
        f"{step['rate']:g}",
        result,
        f"{step['achieved_per_s']:,.0f}",
        _ms1(step["total_us"]["p50_us"]),
        _ms1(step["total_us"]["p99_us"]),
        _ms1(step["tcp_us"]["p99_us"]),
        *([_ms1(handshake["p99_us"] if handshake is not None else None)] if tls else []),
        _ms1(step["registration_us"]["p99_us"]),
        str(sum(step["failures"].values())),
        _ms1(step["steady_p99_us"]),
        f"{cpu:.0f}" if cpu is not None else "",
        "; ".join(step["why"]),
    ]


def blocks(study: ConnectRateDocument) -> list[doc.Block]:
    p = study["parameters"]
    tls = p.get("transport") == "tls"
    over = " Every connection is over TLS." if tls else ""
    out: list[doc.Block] = [
        doc.Heading(1, "New connections per second"),
        doc.Para(
            f"Each step offers new connections at a fixed rate for {p['step_duration_s']:g} s; each one registers "
            f"and leaves at once ({p['mode']}), while {p['clients']} steady clients exchange {p['rate']:g} msg/s. "
            f"A step passes when the p99 of the connect latency is within {p['p99_bound_ms']:g} ms, no connection "
            "failed, and 90% of the offered rate was registered; the rate then grows "
            f"x{p['factor']:g} (from {p['start']:g}/s up to {p['max_rate']:g}/s). Connect latency runs from "
            f"connect() to registered: TCP connect, then (for TLS) the handshake, then the registration.{over}"
        ),
        doc.Table(
            ("target", "protocol", "registered means", "capacity (new connections/s)", "first failing step"),
            [_summary_row(t) for t in study["targets"]],
            "lllrl",
        ),
        doc.Image("p99 connect latency and registered rate against the offered rate", CHART),
    ]
    for target in study["targets"]:
        out.append(doc.Heading(2, target["target"]))
        header = steps_header(tls)
        rows = [_step_row(s, tls) for s in target["steps"]]
        out.append(doc.Table(header, rows, "rl" + "r" * (len(header) - 3) + "l", flag_column=len(header) - 1))
    return out


def _summary_row(target: ConnectRateTarget) -> list[doc.Cell]:
    capacity = target["capacity_per_s"]
    failing = next((s for s in target["steps"] if not s["passed"]), None)
    first = f"{failing['rate']:g}/s: {'; '.join(failing['why'])}" if failing else "none (all passed)"
    return [
        target["target"],
        target["protocol"],
        target["registration"],
        f"{capacity:g}" if capacity is not None else "below the first step",
        first,
    ]


def chart(study: ConnectRateDocument, path: Path) -> Path:
    """Left: p99 (solid) and p50 (dotted) connect latency against the offered
    rate, the bound dashed; right: registered against offered per second."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), layout="constrained")
    names = [t["target"] for t in study["targets"]]
    colour = plots.colours(names)
    for target in study["targets"]:
        steps = [s for s in target["steps"] if s["registered"]]
        x = [s["rate"] for s in steps]
        c = colour[target["target"]]
        left.plot(x, [_ms(s["total_us"]["p99_us"]) for s in steps], "-o", color=c, label=target["target"])
        left.plot(x, [_ms(s["total_us"]["p50_us"]) for s in steps], ":", color=c)
        right.plot(x, [s["achieved_per_s"] for s in steps], "-o", color=c, label=target["target"])
    bound = study["parameters"]["p99_bound_ms"]
    left.axhline(bound, linestyle="--", color="grey", linewidth=1, label=f"bound {bound:g} ms")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel("new connections offered per second")
        ax.grid(True, which="both", alpha=0.3)
    left.set_yscale("log")
    left.set_ylabel("connect latency (ms): p99 solid, p50 dotted")
    right.set_ylabel("registered per second")
    lo, hi = right.get_xlim()
    right.plot([lo, hi], [lo, hi], "--", color="grey", linewidth=1, label="all offered")
    right.set_yscale("log")
    left.legend(fontsize=8)
    fig.suptitle("New connections per second: connect latency and what was registered")
    return plots.save(fig, path)


def _ms(us: int | None) -> float:
    return math.nan if not us else us / 1000


def write(out: Path, study: ConnectRateDocument) -> Path:
    """``connect-rate.json``, ``.md``, ``.html`` and the chart in ``out``; the markdown's path."""
    write_json(out / schema.CONNECT_RATE_JSON, study)
    chart(study, out / CHART)
    content = blocks(study)
    md = out / schema.CONNECT_RATE_MD
    md.write_text(doc.to_markdown(content), encoding="utf-8")
    (out / HTML).write_text(doc.to_html("chatbench connect rate", content), encoding="utf-8")
    return md
