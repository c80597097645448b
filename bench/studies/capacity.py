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
passing and the first failing count.  With ``repeat_boundary`` N, both are
then run N times in all, and the headline is the largest count that passed
every one of its N runs: a last passing count that failed a repeat sends the
search down to the next passing count, repeated in turn (the boundary is a
band on this machine, and the report shows it).  It reports that count, the
spread of its runs, and why the smallest failing one failed.  A point where the load generator was saturated is
still judged, but the result says so: the limit found may be the
harness's, not the server's.

:func:`search` is the logic, tested without sockets; :func:`run` is
``python -m bench capacity`` (points through :mod:`bench.studies.sweep`,
rendering in :mod:`bench.report.capacity`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import cli
from bench.report import capacity as capacity_report
from bench.report import fmt
from bench.results import schema
from bench.results.schema import (
    CAPACITY_JSON,
    CAPACITY_MD,
    CapacityDocument,
    CapacityFound,
    CapacityResult,
    CapacitySearch,
    CapacityStep,
    RunDocument,
)
from bench.results.store import write_json
from bench.results.summary import summarize_into
from bench.studies import sweep

#: The offered rate and measured time of every point: short points, so a
#: search of ten points stays within a few minutes.
CAPACITY_RATE = 100.0
CAPACITY_DURATION_S = 3.0
LATEST_CAPACITY = "latest-capacity"

#: Default p95 bound, as in the websocket shootout ("500 ms at the 95th percentile").
DEFAULT_P95_BOUND_MS = 500.0
#: Default concurrent senders, as in the websocket shootout.
DEFAULT_SENDERS = 4
#: Runs of each boundary count (last pass, first failure) on the command line:
#: three show whether the boundary is a line or a band on this machine, for
#: four more points per search.
DEFAULT_REPEAT_BOUNDARY = 3
#: The strategies searched without --fanout: the sweep's.
DEFAULT_FANOUTS = sweep.DEFAULT_FANOUTS


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
    #: runs in all of the last passing and the first failing count, once found
    #: (1: no repeat; the command line's default is DEFAULT_REPEAT_BOUNDARY)
    repeat_boundary: int = 1

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
        if self.repeat_boundary < 1:
            raise CapacityError("--repeat-boundary must be at least 1 (1: no repeat)")

    def next_count(self, count: int) -> int:
        nxt = count + self.step if self.step is not None else max(count + 1, int(-(-count * self.growth // 1)))
        return min(nxt, self.max_clients)


def judge(doc: RunDocument, p95_bound_ms: float) -> list[str]:
    """Why a run fails the capacity criteria, in plain words ([] = it passes)."""
    reasons = []
    p95 = doc["latency_us"].get("p95_us")
    if p95 is not None and p95 > p95_bound_ms * 1000:
        reasons.append(f"p95 latency {p95 / 1000:.1f} ms is above the {p95_bound_ms:g} ms bound")
    i = doc["integrity"]
    if i["lost"]:
        reasons.append(f"{i['lost']:,} {'delivery' if i['lost'] == 1 else 'deliveries'} lost")
    other = fmt.counts({"duplicated": i["duplicated"], "reordered": i["reordered"], "corrupted": i["corrupted"]})
    if other:
        reasons.append("integrity faults: " + other)
    c = doc["connections"]
    if c["failed"]:
        why = fmt.reasons(c.get("failures", {}))
        reasons.append(f"{c['failed']} of {c['requested']} clients failed to connect" + (f" ({why})" if why else ""))
    if doc["latency_us"]["count"] == 0 and not reasons:
        reasons.append("no delivery was measured")
    return reasons


def _step_record(clients: int, doc: RunDocument | None, error: str | None, bound: float) -> CapacityStep:
    if doc is None:
        return {
            "clients": clients,
            "passed": False,
            "reasons": [f"the run failed: {error}"],
            "error": error,
            "saturated": False,
        }
    reasons = judge(doc, bound)
    step: CapacityStep = {"clients": clients, "passed": not reasons, "reasons": reasons, "saturated": False}
    summarize_into(step, doc)
    p95 = step["p95_us"]
    slow = p95 is not None and p95 > bound * 1000
    step["latency_only"] = bool(reasons) and slow and len(reasons) == 1
    step["saturated"] = step["load_generator_saturated"]
    return step


#: run_point(clients) -> (run document, None) or (None, error message)
RunPoint = Callable[[int], tuple[RunDocument | None, str | None]]


def search(
    run_point: RunPoint,
    config: SearchConfig,
    *,
    on_step: Callable[[CapacityStep], None] | None = None,
) -> CapacityFound:
    """Carry out one search; returns ``{"steps": [...], "result": {...}}``."""
    steps: list[CapacityStep] = []

    def run_once(n: int) -> CapacityStep:
        doc, error = run_point(n)
        step = _step_record(n, doc, error, config.p95_bound_ms)
        step["attempt"] = 1 + sum(1 for s in steps if s["clients"] == n)
        steps.append(step)
        if on_step is not None:
            on_step(step)
        return step

    def try_count(n: int) -> bool:
        for _ in range(1 + config.confirm):
            step = run_once(n)
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
    held = last_pass
    if last_pass is not None and first_fail is not None:
        held = _hold(run_once, steps, last_pass, first_fail, config.repeat_boundary)
    return {"steps": steps, "result": _result(steps, held, first_fail, config)}


def _repeat(
    run_once: Callable[[int], CapacityStep], steps: list[CapacityStep], counts: tuple[int, ...], runs: int
) -> None:
    """Run each of ``counts`` until ``steps`` holds ``runs`` runs of it."""
    for n in counts:
        while sum(1 for s in steps if s["clients"] == n) < runs:
            run_once(n)


def holds(steps: list[CapacityStep], n: int) -> bool:
    """Whether ``n`` clients passed, and every run of it since (the boundary
    repeats) passed too; failed attempts before its first pass are the
    search's latency confirmations."""
    runs = [s["passed"] for s in steps if s["clients"] == n]
    return True in runs and all(runs[runs.index(True) :])


def _hold(
    run_once: Callable[[int], CapacityStep], steps: list[CapacityStep], last_pass: int, first_fail: int, runs: int
) -> int | None:
    """The headline count: the largest passing count that passes every one of
    ``runs`` runs.  The search's last passing and first failing counts are run
    ``runs`` times each (the spread at the boundary); if a run of the last
    passing count failed, the next passing count below it is repeated in turn,
    and so on down.  None when no count holds."""
    _repeat(run_once, steps, (last_pass, first_fail), runs)
    for n in sorted({s["clients"] for s in steps if s["passed"] and s["clients"] <= last_pass}, reverse=True):
        _repeat(run_once, steps, (n,), runs)
        if holds(steps, n):
            return n
    return None


def runs_passed(steps: list[CapacityStep], n: int) -> tuple[int, int]:
    """(runs of ``n`` that passed, runs of ``n``)."""
    runs = [s["passed"] for s in steps if s["clients"] == n]
    return sum(runs), len(runs)


def _p95_range(steps: list[CapacityStep], n: int) -> str:
    """`` (p95 310-450 ms)`` over the runs of ``n`` (empty for one run)."""
    p95 = [v for s in steps if s["clients"] == n and (v := s.get("p95_us")) is not None]
    if len(p95) < 2:
        return ""
    return f" (p95 {min(p95) / 1000:.0f}-{max(p95) / 1000:.0f} ms)"


def _runs_text(steps: list[CapacityStep], n: int) -> str:
    passed, runs = runs_passed(steps, n)
    return "" if runs == 1 else f"{passed} of {runs} runs"


def _headline(steps: list[CapacityStep], held: int | None, first_fail: int, fail: CapacityStep | None) -> str:
    """``375 clients pass all 3 runs (p95 ...); 400 passed 1 of 3 runs; 500 fail (0 of 3 runs passed): ...``."""
    band = sorted({s["clients"] for s in steps if s["passed"] and (held or 0) < s["clients"] < first_fail})
    parts = []
    if held is not None:
        runs = runs_passed(steps, held)[1]
        every = f" all {runs} runs" if runs > 1 else ""
        parts.append(f"{held} clients pass{every}{_p95_range(steps, held)}")
    else:
        parts.append("no count passed every run")
    parts += [f"{n} passed {_runs_text(steps, n)}{_p95_range(steps, n)}" for n in band]
    failed = _runs_text(steps, first_fail)
    return (
        "; ".join(parts)
        + f"; {first_fail} fail"
        + (f" ({failed} passed)" if failed else "")
        + ": "
        + ("; ".join(fail["reasons"] if fail else []))
    )


def _result(
    steps: list[CapacityStep], last_pass: int | None, first_fail: int | None, config: SearchConfig
) -> CapacityResult:
    by_count = {s["clients"]: s for s in steps}  # the last attempt at each count
    fail = by_count.get(first_fail) if first_fail is not None else None
    passing = by_count.get(last_pass) if last_pass is not None else None
    saturated_at_limit = bool((fail and fail["saturated"]) or (passing and passing["saturated"]))
    if first_fail is None:
        summary = (
            f"every point passed up to the {config.max_clients}-client limit of the search; the capacity is "
            f"at least {last_pass} clients"
        )
    elif last_pass is None and not any(st["passed"] for st in steps):
        summary = f"even the first point ({first_fail} clients) failed: " + "; ".join(fail["reasons"] if fail else [])
    else:
        summary = _headline(steps, last_pass, first_fail, fail)
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
    searches: list[CapacitySearch],
    config: SearchConfig,
    parameters: dict[str, object],
    command: list[str] | None = None,
) -> CapacityDocument:
    """The capacity.json document.  ``searches``: one per strategy/target,
    each ``{"label", "directory", "steps", "result"}``."""
    return {
        "schema_version": schema.CAPACITY_SCHEMA_VERSION,
        "kind": schema.CAPACITY_KIND,
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


def write(directory: str | Path, doc: CapacityDocument) -> tuple[Path, Path]:
    """capacity.json and capacity.md into ``directory``."""
    d = Path(directory)
    js = write_json(d / CAPACITY_JSON, doc)
    md = d / CAPACITY_MD
    md.write_text(capacity_report.render_markdown(doc) + "\n", encoding="utf-8")
    return js, md


# ---------------------------------------------------------------------------
# python -m bench capacity
# ---------------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Raise the client count from --start (x --growth, or + --step) until a point fails: p95 latency above "
        "--p95-bound, any lost delivery (or other integrity fault), or any failed connection; then bisect "
        "--refine times. Reports the largest passing count and why the next one failed, per strategy. "
        "Writes reports/<timestamp>-capacity/ (capacity.json, capacity.md, runs, charts, report) and "
        "reports/latest-capacity."
    )
    parser.epilog = f"Fan-out strategies without --fanout: {','.join(DEFAULT_FANOUTS)}."
    d = SearchConfig()
    g = parser.add_argument_group("search")
    g.add_argument("--start", type=int, default=d.start, help="first client count")
    g.add_argument("--growth", type=float, default=d.growth, help="next count = count x growth")
    g.add_argument("--step", type=int, help="next count = count + step (instead of --growth)")
    g.add_argument("--max-clients", type=int, default=d.max_clients, help="stop searching here")
    g.add_argument("--refine", type=int, default=d.refine, help="bisection steps after the first failure")
    g.add_argument(
        "--confirm",
        type=int,
        default=d.confirm,
        help="re-runs of a point that failed on latency alone (it passes if any attempt passes; "
        "lost deliveries and failed connections are never retried)",
    )
    g.add_argument("--p95-bound", type=float, default=d.p95_bound_ms, help="p95 latency bound, ms")
    g.add_argument(
        "--repeat-boundary",
        type=int,
        default=DEFAULT_REPEAT_BOUNDARY,
        metavar="N",
        help="once found, run the last passing and the first failing count N times in all; the headline is the "
        "largest count that passed every one of its N runs (a count whose runs did not all pass sends the "
        "search to the next passing count below, repeated in turn), with the spread beside it (1: no repeat)",
    )
    cli.add_parents(parser, *cli.swarm_parents())
    parser.set_defaults(rate=CAPACITY_RATE, duration=CAPACITY_DURATION_S, senders=DEFAULT_SENDERS)


def _search_config(args: argparse.Namespace) -> SearchConfig:
    try:
        return SearchConfig(
            start=args.start,
            growth=args.growth,
            step=args.step,
            max_clients=args.max_clients,
            refine=args.refine,
            confirm=args.confirm,
            p95_bound_ms=args.p95_bound,
            repeat_boundary=args.repeat_boundary,
        )
    except CapacityError as exc:
        raise cli.UsageError(str(exc)) from None


def _print_step(name: str, step: CapacityStep) -> None:
    verdict = "pass" if step["passed"] else "FAIL: " + "; ".join(step["reasons"])
    if step.get("attempt", 1) > 1:
        verdict += f" (attempt {step.get('attempt')})"
    p95 = step.get("p95_us")
    p95_text = "" if p95 is None else f" p95 {p95 / 1000:.1f} ms"
    print(f"{name} clients={step['clients']}{p95_text}: {verdict}", flush=True)


@dataclass
class SearchProgress:
    """The progress line's estimate of the time left: at most the steps up to
    --max-clients, the bisection and the boundary repeats, each timed by
    ``estimate`` (seconds for a count) scaled by how long the steps so far took."""

    config: SearchConfig
    estimate: Callable[[int], float]
    t0: float = field(default_factory=time.monotonic)
    steps: int = 0
    estimated_so_far: float = 0.0
    first_failure_at: int | None = None  #: steps done when the first one failed

    def counts_left(self, n: int) -> list[int]:
        """The counts still to run, at most, when ``n`` is next."""
        cfg = self.config
        if self.first_failure_at is None:
            up = [n]
            while up[-1] < cfg.max_clients:
                up.append(cfg.next_count(up[-1]))
            bisect = [cfg.max_clients] * cfg.refine
        else:
            up = [n]
            bisect = [n] * max(0, cfg.refine - (self.steps - self.first_failure_at) - 1)
        return up + bisect + [up[-1]] * (2 * (cfg.repeat_boundary - 1))

    def line(self, n: int) -> str:
        elapsed = time.monotonic() - self.t0
        scale = elapsed / self.estimated_so_far if self.estimated_so_far > 0 else 1.0
        left = scale * sum(self.estimate(c) for c in self.counts_left(n))
        times = f"elapsed {fmt.clock(elapsed)}, ~{fmt.clock(left)} left at most"
        return f"  trying {n} clients (step {self.steps + 1}; {times})"

    def done(self, step: CapacityStep) -> None:
        self.steps += 1
        self.estimated_so_far += self.estimate(step["clients"])
        if not step["passed"] and self.first_failure_at is None:
            self.first_failure_at = self.steps


def _search_one(series: sweep.Series, cfg: SearchConfig, quiet: bool) -> CapacitySearch:
    name = series.writer.label
    print(f"capacity search: {name}, from {cfg.start} clients, p95 bound {cfg.p95_bound_ms:g} ms", file=sys.stderr)
    progress = SearchProgress(cfg, lambda n: sweep.estimate_point_s(series.base, n))

    def run_point(n: int) -> tuple[RunDocument | None, str | None]:
        if not quiet:
            print(progress.line(n), file=sys.stderr, flush=True)
        entries = len(series.writer.index["runs"])
        doc = sweep.run_point(series, n)
        error = None if doc is not None else series.writer.index["runs"][entries].get("error")
        return doc, error

    def on_step(step: CapacityStep) -> None:
        progress.done(step)
        _print_step(name, step)

    found = search(run_point, cfg, on_step=on_step)
    print(f"{name}: {found['result']['summary']}", flush=True)
    return {"label": name, "directory": name, **found}


def run(args: argparse.Namespace) -> int:
    cfg = _search_config(args)
    if args.senders == DEFAULT_SENDERS and not cli.workload_of(args)[0].one_room:
        args.senders = None  # the default is one room's; a workload of rooms has senders per room
    strategies = cli.fanouts(args, DEFAULT_FANOUTS)
    cli.validate(args, [cfg.start, cfg.max_clients], strategies)
    out = sweep.out_dir(args, "-capacity")
    searches = [_search_one(s, cfg, args.quiet) for s in sweep.make_series(args, [cfg.max_clients], strategies, out)]
    params: dict[str, object] = dict(cli.swarm_config(args, cfg.max_clients).parameters())
    params.pop("clients")
    params["senders"] = args.senders
    write(out, document(searches, cfg, params, list(args.argv)))
    return sweep.finish_report(out, args, "chatbench capacity report", LATEST_CAPACITY)
