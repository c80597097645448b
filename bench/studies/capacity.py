"""Capacity search: how many clients does the server hold within a latency bound?

The search raises the client count step by step (``start``, then times
``growth``, or plus ``step``) at a fixed offered rate from a few concurrent
senders (default 4, as the websocket shootout's broadcast benchmark does),
until a point *fails*:

- p95 broadcast latency above the bound (default 500 ms), or
- any delivery lost (or another integrity fault), or
- any client failed to connect, or
- the run itself failed (the harness could not carry it out).

A point that fails on latency alone is run again (``confirm`` times) and
passes if any attempt passes: on a shared machine one slow run is often
other load, not the server.  Lost deliveries and failed connections are
never retried.  The search then bisects ``refine`` times between the last
passing and the first failing count, and reports the largest passing count and why the smallest
failing one failed.  A point where the load generator was saturated is
still judged, but the result says so: the limit found may be the
harness's, not the server's.

This module is the logic and its rendering; running points and writing
their JSON is the caller's (``python -m bench capacity`` in
:mod:`bench.__main__`), so the search itself is tested without sockets.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import results

CAPACITY_JSON = "capacity.json"
CAPACITY_MD = "capacity.md"
CAPACITY_KIND = "chatbench.capacity"
SCHEMA_VERSION = 1

#: Default p95 bound, as in the websocket shootout ("500 ms at the 95th percentile").
DEFAULT_P95_BOUND_MS = 500.0
#: Default concurrent senders, as in the websocket shootout.
DEFAULT_SENDERS = 4


class CapacityError(Exception):
    """Bad search parameters or an unreadable capacity.json."""


@dataclass(frozen=True)
class SearchConfig:
    start: int = 100
    growth: float = 2.0  #: next = ceil(count * growth), unless ``step`` is set
    step: int | None = None  #: next = count + step
    max_clients: int = 5000
    refine: int = 3  #: bisection steps between the last pass and the first failure
    confirm: int = 1  #: re-runs of a point that failed on latency alone
    p95_bound_ms: float = DEFAULT_P95_BOUND_MS

    def __post_init__(self) -> None:
        if self.start < 2:
            raise CapacityError("--start must be at least 2 (a sender and a receiver)")
        if self.step is None and self.growth <= 1.0:
            raise CapacityError("--growth must be above 1")
        if self.step is not None and self.step < 1:
            raise CapacityError("--step must be at least 1")
        if self.max_clients < self.start:
            raise CapacityError("--max-clients must be at least --start")
        if self.refine < 0:
            raise CapacityError("--refine must be >= 0")
        if self.confirm < 0:
            raise CapacityError("--confirm must be >= 0")
        if self.p95_bound_ms <= 0:
            raise CapacityError("--p95-bound must be positive")

    def next_count(self, count: int) -> int:
        nxt = count + self.step if self.step is not None else max(count + 1, int(-(-count * self.growth // 1)))
        return min(nxt, self.max_clients)


def judge(doc: dict[str, Any], p95_bound_ms: float) -> list[str]:
    """Why a run fails the capacity criteria, in plain words ([] = it passes)."""
    reasons = []
    p95 = doc["latency_us"].get("p95_us")
    if p95 is not None and p95 > p95_bound_ms * 1000:
        reasons.append(f"p95 latency {p95 / 1000:.1f} ms is above the {p95_bound_ms:g} ms bound")
    i = doc["integrity"]
    if i["lost"]:
        reasons.append(f"{i['lost']:,} {'delivery' if i['lost'] == 1 else 'deliveries'} lost")
    other = {k: i[k] for k in ("duplicated", "reordered", "corrupted") if i[k]}
    if other:
        reasons.append("integrity faults: " + ", ".join(f"{v:,} {k}" for k, v in other.items()))
    c = doc["connections"]
    if c["failed"]:
        why = ", ".join(f"{n}x {r}" for r, n in sorted(c.get("failures", {}).items()))
        reasons.append(f"{c['failed']} of {c['requested']} clients failed to connect" + (f" ({why})" if why else ""))
    if doc["latency_us"]["count"] == 0 and not reasons:
        reasons.append("no delivery was measured")
    return reasons


def _step_record(clients: int, doc: dict[str, Any] | None, error: str | None, bound: float) -> dict[str, Any]:
    if doc is None:
        return {
            "clients": clients,
            "passed": False,
            "reasons": [f"the run failed: {error}"],
            "error": error,
            "saturated": False,
        }
    lat = doc["latency_us"]
    reasons = judge(doc, bound)
    slow = lat.get("p95_us") is not None and lat["p95_us"] > bound * 1000
    return {
        "clients": clients,
        "passed": not reasons,
        "reasons": reasons,
        "latency_only": bool(reasons) and slow and len(reasons) == 1,
        "p50_us": lat["p50_us"],
        "p95_us": lat["p95_us"],
        "p99_us": lat["p99_us"],
        "max_us": lat["max_us"],
        "delivered_ratio": doc["deliveries"]["delivered_ratio"],
        "deliveries_per_s": doc["deliveries"]["per_s"],
        "faults": doc["integrity"]["faults"],
        "failed_connections": doc["connections"]["failed"],
        "saturated": bool(doc.get("load_generator_saturated")),
    }


#: run_point(clients) -> (run document, None) or (None, error message)
RunPoint = Callable[[int], tuple[dict[str, Any] | None, str | None]]


def search(
    run_point: RunPoint,
    config: SearchConfig,
    *,
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Carry out one search; returns ``{"steps": [...], "result": {...}}``."""
    steps: list[dict[str, Any]] = []

    def try_count(n: int) -> bool:
        for attempt in range(1 + config.confirm):
            doc, error = run_point(n)
            step = _step_record(n, doc, error, config.p95_bound_ms)
            step["attempt"] = attempt + 1
            steps.append(step)
            if on_step is not None:
                on_step(step)
            if step["passed"] or not step.get("latency_only"):
                break
        return bool(step["passed"])

    last_pass: int | None = None
    first_fail: int | None = None
    n = config.start
    while True:
        if try_count(n):
            last_pass = n
            if n >= config.max_clients:
                break
            n = config.next_count(n)
        else:
            first_fail = n
            break
    low = last_pass if last_pass is not None else 1
    for _ in range(config.refine):
        if first_fail is None or first_fail - low <= 1:
            break
        mid = (low + first_fail) // 2
        if mid < 2:
            break
        if try_count(mid):
            last_pass = low = mid
        else:
            first_fail = mid
    return {"steps": steps, "result": _result(steps, last_pass, first_fail, config)}


def _result(
    steps: list[dict[str, Any]], last_pass: int | None, first_fail: int | None, config: SearchConfig
) -> dict[str, Any]:
    by_count = {s["clients"]: s for s in steps}  # the last attempt at each count
    fail = by_count.get(first_fail) if first_fail is not None else None
    passing = by_count.get(last_pass) if last_pass is not None else None
    saturated_at_limit = bool((fail or {}).get("saturated") or (passing or {}).get("saturated"))
    if first_fail is None:
        summary = (
            f"every point passed up to the {config.max_clients}-client limit of the search; the capacity is "
            f"at least {last_pass} clients"
        )
    elif last_pass is None:
        summary = f"even the first point ({first_fail} clients) failed: " + "; ".join(fail["reasons"] if fail else [])
    else:
        summary = f"{last_pass} clients pass; {first_fail} fail: " + "; ".join(fail["reasons"] if fail else [])
    if saturated_at_limit:
        summary += (
            " (the load generator was saturated at the limit, so this may be the harness's capacity on this "
            "machine rather than the server's)"
        )
    return {
        "largest_passing": last_pass,
        "smallest_failing": first_fail,
        "why": list(fail["reasons"]) if fail else [],
        "reached_max_clients": first_fail is None,
        "load_generator_saturated_at_limit": saturated_at_limit,
        "summary": summary,
    }


def document(
    searches: list[dict[str, Any]],
    config: SearchConfig,
    parameters: dict[str, Any],
    command: list[str] | None = None,
) -> dict[str, Any]:
    """The capacity.json document.  ``searches``: one per strategy/target,
    each ``{"label", "directory", "steps", "result"}``."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": CAPACITY_KIND,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command,
        "criteria": {
            "p95_bound_ms": config.p95_bound_ms,
            "fail_on": ["p95 above the bound", "any integrity fault (lost first)", "any failed connection"],
        },
        "search": asdict(config),
        "parameters": parameters,
        "searches": searches,
    }


def write(directory: str | Path, doc: dict[str, Any]) -> tuple[Path, Path]:
    """capacity.json and capacity.md into ``directory``."""
    d = Path(directory)
    js = results.write_json(d / CAPACITY_JSON, doc)
    md = d / CAPACITY_MD
    md.write_text(render_markdown(doc) + "\n", encoding="utf-8")
    return js, md


def load(directory: str | Path) -> dict[str, Any]:
    p = Path(directory) / CAPACITY_JSON
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CapacityError(f"cannot read {p}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("kind") != CAPACITY_KIND or doc.get("schema_version") != SCHEMA_VERSION:
        raise CapacityError(f"{p} is not a {CAPACITY_KIND} document of schema_version {SCHEMA_VERSION}")
    return doc


def _ms(us: float | None) -> str:
    return "-" if us is None else f"{us / 1000:.1f}"


def _criteria_text(doc: dict[str, Any]) -> str:
    p = doc.get("parameters", {})
    rate = p.get("rate")
    return (
        f"Client count raised until p95 latency passed {doc['criteria']['p95_bound_ms']:g} ms, a delivery was "
        f"lost (or any other integrity fault), or a client failed to connect; {p.get('senders')} concurrent "
        f"senders, {rate:g} msg/s in total, {p.get('duration_s'):g} s measured per point, "
        f"{p.get('payload_bytes')} B payload. A point that failed on latency alone was run again "
        f"(up to {doc['search'].get('confirm', 0)} times) and passes if any attempt passed."
        if rate
        else "Client count raised until a point failed."
    )


def render_markdown(doc: dict[str, Any], heading: str = "#") -> str:
    lines = [f"{heading} Capacity", "", _criteria_text(doc), ""]
    for s in doc["searches"]:
        r = s["result"]
        largest = r["largest_passing"]
        lines.append(f"- **{s['label']}: {largest if largest is not None else 'none'}** — {r['summary']}.")
    lines.append("")
    for s in doc["searches"]:
        lines += [
            f"{heading}# Steps: {s['label']}",
            "",
            "| clients | result | p50 ms | p95 ms | p99 ms | max ms | delivered | why |",
            "|---:|---|---:|---:|---:|---:|---:|---|",
        ]
        for st in s["steps"]:
            ratio = st.get("delivered_ratio")
            delivered = "-" if ratio is None else f"{100 * ratio:.2f}%"
            verdict = "pass" if st["passed"] else "FAIL"
            if st.get("attempt", 1) > 1:
                verdict += f" (attempt {st['attempt']})"
            if st.get("saturated"):
                verdict += " (load generator saturated)"
            why = "; ".join(st["reasons"]).replace("|", "\\|")
            lines.append(
                f"| {st['clients']} | {verdict} | {_ms(st.get('p50_us'))} | {_ms(st.get('p95_us'))} | "
                f"{_ms(st.get('p99_us'))} | {_ms(st.get('max_us'))} | {delivered} | {why} |"
            )
        lines.append("")
    return "\n".join(lines).rstrip()


def render_html(doc: dict[str, Any]) -> str:
    e = html.escape
    out = ["<h2>Capacity</h2>", f"<p>{e(_criteria_text(doc))}</p><ul>"]
    for s in doc["searches"]:
        r = s["result"]
        largest = r["largest_passing"]
        out.append(
            f"<li><strong>{e(s['label'])}: {largest if largest is not None else 'none'}</strong> — "
            f"{e(r['summary'])}.</li>"
        )
    out.append("</ul>")
    for s in doc["searches"]:
        out.append(f"<h3>Steps: {e(s['label'])}</h3><table><tr>")
        out.append("".join(f"<th>{h}</th>" for h in ("clients", "result", "p50 ms", "p95 ms", "p99 ms", "why")))
        out.append("</tr>")
        for st in s["steps"]:
            verdict = ("pass" if st["passed"] else "FAIL") + (" (saturated)" if st.get("saturated") else "")
            out.append(
                f'<tr><td class="n">{st["clients"]}</td><td>{verdict}</td><td class="n">{_ms(st.get("p50_us"))}</td>'
                f'<td class="n">{_ms(st.get("p95_us"))}</td><td class="n">{_ms(st.get("p99_us"))}</td>'
                f"<td>{e('; '.join(st['reasons']))}</td></tr>"
            )
        out.append("</table>")
    return "\n".join(out)
