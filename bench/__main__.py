"""``python -m bench`` / ``chat-bench``: the benchmark a user runs first.

Subcommands (``python -m bench SUBCOMMAND --help`` for each):

``sweep``     the default benchmark: client counts 10..1000 at a fixed offered
              rate, for each fan-out strategy (``queued`` and ``direct``);
              writes ``reports/<timestamp>/`` (run JSON per point, one
              ``index.json`` per strategy, four PNG charts, ``report.md``,
              ``report.html``) and points ``reports/latest`` at it.
``run``       one point (one client count, one strategy), same output.
``capacity``  raise the client count until p95 latency passes a bound, a
              delivery is lost or clients fail to connect (``bench.studies.capacity``);
              writes ``reports/<timestamp>-capacity/`` and ``reports/latest-capacity``.
``report``    redraw charts and report from a results directory (no run).

``reports/latest`` is a relative symbolic link to the newest report
directory (replaced atomically).  Where symbolic links cannot be made, a
small text file ``reports/latest.txt`` holds the directory's path instead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from bench import report, results
from bench.studies import capacity
from bench.swarm import SwarmConfig, SwarmError, run_swarm
from bench.swarm.cli import _index_entry, summary_line
from bench.targets import TargetError, make_target
from server.config import FANOUT_STRATEGIES

#: The default sweep (``make bench``).
DEFAULT_CLIENTS = (10, 50, 100, 250, 500, 1000)
#: Total messages/s over all senders: 1000 clients -> 100 x 999 ~ 100k deliveries/s,
#: within what the load generator handles on a 2-core machine.
DEFAULT_RATE = 100.0
DEFAULT_DURATION_S = 5.0
DEFAULT_WARMUP_S = 1.0
DEFAULT_PAYLOAD = 64
#: What `make bench` compares: the default strategy and the seed's (add
#: `--fanout queued,threads,direct` for the per-client-writer design too).
DEFAULT_FANOUTS = ("queued", "direct")
#: Seconds a point waits for late deliveries after its last message was due;
#: bounds the run time of a point that cannot keep up (``direct`` at high counts).
DEFAULT_DRAIN_TIMEOUT_S = 10.0
DEFAULT_REPORTS_ROOT = "reports"
LATEST = "latest"
LATEST_CAPACITY = "latest-capacity"

CAPACITY_RATE = 100.0
CAPACITY_DURATION_S = 3.0


class BenchError(Exception):
    """A command cannot go on; the message says why."""


# ---------------------------------------------------------------------------
# writing results: one series (strategy/target) = one index + its run files
# ---------------------------------------------------------------------------


class SeriesWriter:
    """One directory with ``index.json`` (``docs/results.md``) and one run
    file per point; the index is rewritten after every point, so an
    interrupted sweep still leaves readable results."""

    def __init__(self, directory: Path, config: SwarmConfig, label: str, command: Sequence[str] | None) -> None:
        self.directory = directory
        self.label = label
        self.index: dict[str, Any] = {
            "schema_version": results.SCHEMA_VERSION,
            "kind": results.INDEX_KIND,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": list(command) if command is not None else None,
            "sweep": {"variable": "clients", "values": []},
            "parameters": {k: v for k, v in config.parameters().items() if k != "clients"},
            "runs": [],
        }

    def _entry(self, clients: int) -> None:
        self.index["sweep"]["values"].append(clients)

    def add(self, doc: dict[str, Any]) -> Path:
        clients = int(doc["parameters"]["clients"])
        file = f"run-c{clients:05d}.json"
        path = results.write_json(self.directory / file, doc)
        self._entry(clients)
        self.index["runs"].append(_index_entry(doc, file))
        self._flush()
        return path

    def add_error(self, clients: int, message: str) -> None:
        self._entry(clients)
        self.index["runs"].append({"clients": clients, "file": None, "status": "error", "error": message})
        self._flush()

    def _flush(self) -> None:
        results.write_json(self.directory / results.INDEX_NAME, self.index)


def series_name(target: str, fanout: str | None) -> str:
    """Series label and subdirectory name: the strategy, or the target."""
    if target == "embedded":
        return fanout or report.DEFAULT_FANOUT
    return "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in target)


def new_report_dir(root: Path, suffix: str = "") -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path, n = root / f"{stamp}{suffix}", 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{n}{suffix}"
    return path


def point_latest(root: Path, target: Path, name: str = LATEST) -> Path | None:
    """Make ``root/name`` a relative symlink to ``target`` (atomically); fall
    back to ``root/name.txt`` holding the path.  Returns what was written."""
    link = root / name
    if link.exists() and not link.is_symlink():
        print(f"note: {link} exists and is not a symbolic link; left alone", file=sys.stderr)
        return None
    rel = os.path.relpath(target.resolve(), root.resolve())
    tmp = root / f".{name}.tmp{os.getpid()}"
    try:
        if tmp.is_symlink():
            tmp.unlink()
        os.symlink(rel, tmp, target_is_directory=True)
        os.replace(tmp, link)
        return link
    except OSError:
        text = root / f"{name}.txt"
        text.write_text(rel + "\n", encoding="utf-8")
        return text


# ---------------------------------------------------------------------------
# progress
# ---------------------------------------------------------------------------


def _clock(seconds: float) -> str:
    s = max(0, round(seconds))
    return f"{s // 60}:{s % 60:02d}"


class PointProgress:
    """``[###.....] 3/12 direct, 250 clients  elapsed 0:41, ~1:30 left`` on stderr."""

    WIDTH = 24

    def __init__(self, estimates: Sequence[float], stream: TextIO, enabled: bool) -> None:
        self.estimates = list(estimates)
        self.stream = stream
        self.enabled = enabled
        self.t0 = time.monotonic()
        self.done = 0

    def start(self, what: str) -> None:
        if not self.enabled:
            return
        total = len(self.estimates)
        elapsed = time.monotonic() - self.t0
        done_est = sum(self.estimates[: self.done])
        left_est = sum(self.estimates[self.done :])
        scale = elapsed / done_est if done_est > 0 and self.done else 1.0
        frac = done_est / max(1e-9, done_est + left_est)
        filled = round(frac * self.WIDTH)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(
            f"[{bar}] {self.done + 1}/{total} {what}   elapsed {_clock(elapsed)}, ~{_clock(left_est * scale)} left\n"
        )
        self.stream.flush()

    def finish(self) -> None:
        self.done += 1


def estimate_point_s(config: SwarmConfig, clients: int) -> float:
    """A rough run time for one point (for the progress bar's time left)."""
    ramp = clients / config.ramp_per_s if config.ramp_per_s > 0 else 0.0
    traffic = config.warmup_s + (config.measured_messages / config.rate if config.rate > 0 else 1.0)
    return 2.0 + ramp + traffic + clients / 500


# ---------------------------------------------------------------------------
# the commands
# ---------------------------------------------------------------------------


def _swarm_config(args: argparse.Namespace, clients: int, fanout: str | None) -> SwarmConfig:
    return SwarmConfig(
        clients=clients,
        senders=args.senders,
        rate=args.rate,
        duration_s=args.duration,
        warmup_s=args.warmup,
        payload_bytes=args.payload,
        workers=args.workers,
        drain_timeout_s=args.drain_timeout,
        connect_timeout_s=args.connect_timeout,
        target=args.target,
        fanout=fanout,
        server_args=tuple(args.server_arg),
        server_pid=args.server_pid,
        progress=not args.quiet,
        label=args.label,
    )


def _fanouts(args: argparse.Namespace, default: Sequence[str]) -> list[str | None]:
    if args.target != "embedded":
        if args.fanout:
            raise BenchError("--fanout applies to the embedded server only; a running server has its own")
        return [None]
    return list(args.fanout or default)


def _point_config(base: SwarmConfig, clients: int) -> SwarmConfig:
    senders = base.senders
    if senders is not None and not base.dedicated_senders:
        senders = min(senders, clients)
    return replace(base, clients=clients, senders=senders)


def run_points(
    args: argparse.Namespace,
    clients: Sequence[int],
    fanouts: Sequence[str | None],
    out: Path,
    command: Sequence[str],
    *,
    run: Callable[[SwarmConfig], dict[str, Any]] = run_swarm,
) -> list[SeriesWriter]:
    """Every (client count, strategy) point, interleaved by client count so an
    interrupted sweep still compares the strategies; one SeriesWriter each."""
    writers: dict[str | None, SeriesWriter] = {}
    bases: dict[str | None, SwarmConfig] = {}
    for f in fanouts:
        base = _swarm_config(args, max(clients), f)
        name = series_name(args.target, f)
        bases[f] = base
        writers[f] = SeriesWriter(out / name, base, name, command)
    order = [(n, f) for n in clients for f in fanouts]
    progress = PointProgress(
        [estimate_point_s(bases[f], n) for n, f in order], sys.stderr, enabled=not args.quiet and len(order) > 1
    )
    stopped: dict[str | None, str] = {}
    for n, f in order:
        w = writers[f]
        if f in stopped and not args.keep_going:
            w.add_error(n, f"skipped: {stopped[f]}")
            print(f"{w.label} clients={n}: skipped ({stopped[f]})", flush=True)
            progress.finish()
            continue
        progress.start(f"{w.label}, {n} clients")
        try:
            doc = run(_point_config(bases[f], n))
        except (SwarmError, ValueError) as exc:
            w.add_error(n, str(exc))
            print(f"{w.label} clients={n}: ERROR {exc}", flush=True)
        else:
            w.add(doc)
            print(f"{w.label}: {summary_line(doc)}", flush=True)
            if not doc.get("completed", True):
                stopped[f] = (
                    f"{n} clients did not deliver everything within the {bases[f].drain_timeout_s:g} s drain "
                    "timeout, so larger counts were not run (--keep-going runs them)"
                )
        progress.finish()
    return list(writers.values())


def _finish_report(out: Path, args: argparse.Namespace, title: str, latest_name: str) -> int:
    try:
        written = report.build_report(out, title=title)
    except report.ReportError as exc:
        print(f"no report: {exc}", file=sys.stderr)
        return 1
    series = report.load_series(out)
    warn = report.warnings(series)
    print(f"\nreport: {written['markdown']}\n        {written['html']}")
    if warn:
        print(f"{len(warn)} warning(s) at the top of the report:")
        for w in warn:
            print(textwrap.fill(w.replace("**", ""), width=100, initial_indent="  - ", subsequent_indent="    "))
    if not args.out and not args.no_latest:
        latest = point_latest(out.parent, out, latest_name)
        if latest is not None:
            print(f"        {latest} -> {out.name}")
    return 0


def _exit_code(writers: Sequence[SeriesWriter], strict: bool) -> int:
    entries = [e for w in writers for e in w.index["runs"]]
    if any(e["status"] != "ok" for e in entries):
        return 1
    if strict:
        for e in entries:
            s = e["summary"]
            if s["delivered_ratio"] != 1 or s["faults"] or s["failed_connections"]:
                return 3
    return 0


def _out_dir(args: argparse.Namespace, suffix: str = "") -> Path:
    if args.out:
        out = Path(args.out)
        if out.exists() and any(out.iterdir()):
            raise BenchError(f"--out {out} exists and is not empty")
        return out
    return new_report_dir(Path(args.reports_root), suffix)


def _validate(args: argparse.Namespace, clients: Sequence[int], fanouts: Sequence[str | None]) -> None:
    for f in fanouts:
        config = _swarm_config(args, max(clients), f)
        make_target(config.target, config.all_server_args, config.server_pid)
    if min(clients) < 2:
        raise BenchError("client counts must be at least 2 (a sender and a receiver)")


def cmd_sweep(args: argparse.Namespace, command: Sequence[str]) -> int:
    clients: list[int] = args.clients
    fanouts = _fanouts(args, DEFAULT_FANOUTS if args.command == "sweep" else DEFAULT_FANOUTS[:1])
    _validate(args, clients, fanouts)
    out = _out_dir(args)
    print(
        f"{len(clients) * len(fanouts)} points: clients {','.join(map(str, clients))} x "
        f"{', '.join(series_name(args.target, f) for f in fanouts)}; {args.rate:g} msg/s, "
        f"{args.duration:g} s each; results in {out}",
        file=sys.stderr,
    )
    try:
        writers = run_points(args, clients, fanouts, out, command)
    except KeyboardInterrupt:
        print("\ninterrupted: reporting the points that finished", file=sys.stderr)
        if report.find_indexes(out):
            _finish_report(out, args, "chatbench fan-out report (interrupted)", LATEST)
        return 130
    code = _finish_report(out, args, "chatbench fan-out report", LATEST)
    return _exit_code(writers, args.strict) or code


def cmd_capacity(args: argparse.Namespace, command: Sequence[str]) -> int:
    fanouts = _fanouts(args, DEFAULT_FANOUTS)
    cfg = capacity.SearchConfig(
        start=args.start,
        growth=args.growth,
        step=args.step,
        max_clients=args.max_clients,
        refine=args.refine,
        confirm=args.confirm,
        p95_bound_ms=args.p95_bound,
    )
    _validate(args, [cfg.start, cfg.max_clients], fanouts)
    out = _out_dir(args, "-capacity")
    searches = []
    for f in fanouts:
        base = _swarm_config(args, cfg.max_clients, f)
        name = series_name(args.target, f)
        writer = SeriesWriter(out / name, base, name, command)
        print(f"capacity search: {name}, from {cfg.start} clients, p95 bound {cfg.p95_bound_ms:g} ms", file=sys.stderr)

        def run_point(
            n: int, base: SwarmConfig = base, writer: SeriesWriter = writer
        ) -> tuple[dict[str, Any] | None, str | None]:
            if not args.quiet:
                print(f"  trying {n} clients ...", file=sys.stderr, flush=True)
            try:
                doc = run_swarm(_point_config(base, n))
            except (SwarmError, ValueError) as exc:
                writer.add_error(n, str(exc))
                return None, str(exc)
            writer.add(doc)
            return doc, None

        def on_step(step: dict[str, Any], name: str = name) -> None:
            verdict = "pass" if step["passed"] else "FAIL: " + "; ".join(step["reasons"])
            if step.get("attempt", 1) > 1:
                verdict += f" (attempt {step['attempt']})"
            p95 = step.get("p95_us")
            p95_text = "" if p95 is None else f" p95 {p95 / 1000:.1f} ms"
            print(f"{name} clients={step['clients']}{p95_text}: {verdict}", flush=True)

        found = capacity.search(run_point, cfg, on_step=on_step)
        searches.append({"label": name, "directory": name, **found})
        print(f"{name}: {found['result']['summary']}", flush=True)
    params = {k: v for k, v in _swarm_config(args, cfg.max_clients, None).parameters().items() if k != "clients"}
    params["senders"] = args.senders
    doc = capacity.document(searches, cfg, params, list(command))
    capacity.write(out, doc)
    return _finish_report(out, args, "chatbench capacity report", LATEST_CAPACITY)


def cmd_report(args: argparse.Namespace, command: Sequence[str]) -> int:
    argv = [args.dir] + (["--out", args.out] if args.out else [])
    return report.main(argv)


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------


def _counts(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of numbers, got {text!r}") from None
    if not values or any(v < 2 for v in values):
        raise argparse.ArgumentTypeError("client counts must be at least 2 (a sender and a receiver)")
    return sorted(set(values))


def _fanout_list(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in FANOUT_STRATEGIES]
    if not values or bad:
        raise argparse.ArgumentTypeError(f"fan-out strategies are {', '.join(FANOUT_STRATEGIES)}; got {text!r}")
    return list(dict.fromkeys(values))


def _add_common(
    p: argparse.ArgumentParser, *, rate: float, duration: float, senders_help: str, fanout_default: str
) -> None:
    g = p.add_argument_group("target")
    g.add_argument(
        "--target",
        default="embedded",
        help="'embedded': start this project's server (`python -m server`, flood control off) on a free "
        "loopback port for every point; or HOST:PORT of a server already running on this machine",
    )
    g.add_argument(
        "--fanout",
        type=_fanout_list,
        metavar="LIST",
        help="embedded server: comma-separated fan-out strategies, one series each "
        "(queued: bounded per-client queues sent in batches by one flusher thread; threads: a writer "
        "thread per client; direct: the sender's thread writes to every socket); "
        f"default: {fanout_default}",
    )
    g.add_argument("--server-arg", action="append", default=[], metavar="ARG", help="embedded: extra server option")
    g.add_argument("--server-pid", type=int, help="HOST:PORT target: its pid, to sample CPU and memory")

    g = p.add_argument_group("traffic")
    g.add_argument("--rate", type=float, default=rate, help="offered messages/s over all senders")
    g.add_argument("--duration", type=float, default=duration, help="measured seconds per point")
    g.add_argument("--warmup", type=float, default=DEFAULT_WARMUP_S, help="unmeasured seconds before")
    g.add_argument("--payload", type=int, default=DEFAULT_PAYLOAD, help="payload bytes per message")
    g.add_argument("--senders", type=int, help=senders_help)
    g.add_argument(
        "--workers", type=int, help="load-generator processes (default: CPU count - 1, leaving one for the server)"
    )
    g.add_argument(
        "--drain-timeout",
        type=float,
        default=DEFAULT_DRAIN_TIMEOUT_S,
        help="seconds a point waits for late deliveries after the last message is due (bounds its run time)",
    )
    g.add_argument("--connect-timeout", type=float, default=30.0, help="seconds for all clients to register")

    g = p.add_argument_group("output")
    g.add_argument("--reports-root", default=DEFAULT_REPORTS_ROOT, help="where timestamped report directories go")
    g.add_argument("--out", help="write into this (new or empty) directory instead; reports/latest is not touched")
    g.add_argument("--no-latest", action="store_true", help="do not update the reports/latest link")
    g.add_argument("--label", help="free text stored in every run's JSON")
    g.add_argument("--quiet", action="store_true", help="no progress output on stderr")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, but not the empty ones, nor where the help names its own."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False, [], argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    fmt = _HelpFormatter
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "chatbench: measure how the chat server's broadcast fan-out holds up as clients are added. "
            "Each point starts a fresh server, connects N clients, sends chat messages at a fixed total rate "
            "(open loop) and times every delivery from the message's intended send time. Results go to "
            "reports/<timestamp>/ as JSON, PNG charts, report.md and report.html."
        ),
        epilog=(
            "Start with `python -m bench sweep` (what `make bench` runs, a few minutes), then open "
            "reports/latest/report.html. Each subcommand has its own --help."
        ),
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser(
        "sweep",
        help="the default benchmark: several client counts x both fan-out strategies",
        description=(
            "Run every client count for each fan-out strategy (interleaved: 10 queued, 10 direct, 50 queued, ...), "
            "write the run JSON, index.json per strategy, four charts, report.md and report.html under "
            "reports/<timestamp>/, and point reports/latest at it. Expected deliveries/s = rate x (clients - 1)."
        ),
        formatter_class=fmt,
    )
    s.add_argument(
        "--clients",
        type=_counts,
        default=list(DEFAULT_CLIENTS),
        metavar="N,N,...",
        help=f"comma-separated client counts (default: {','.join(map(str, DEFAULT_CLIENTS))})",
    )
    _add_common(
        s,
        rate=DEFAULT_RATE,
        duration=DEFAULT_DURATION_S,
        senders_help="sending clients (default: min(clients, 10))",
        fanout_default=",".join(DEFAULT_FANOUTS),
    )
    s.add_argument(
        "--keep-going",
        action="store_true",
        help="run larger client counts of a strategy even after one did not finish within the drain timeout",
    )
    s.add_argument("--strict", action="store_true", help="exit 3 unless every point delivered everything, faultless")

    r = sub.add_parser(
        "run",
        help="one point: one client count, one strategy",
        description="One point (same output as sweep, one series). Default: 100 clients, queued fan-out.",
        formatter_class=fmt,
    )
    r.add_argument(
        "--clients", type=_counts, default=[100], metavar="N", help="client count (default: 100; a list runs a sweep)"
    )
    _add_common(
        r,
        rate=DEFAULT_RATE,
        duration=DEFAULT_DURATION_S,
        senders_help="sending clients (default: min(clients, 10))",
        fanout_default=DEFAULT_FANOUTS[0],
    )
    r.add_argument("--keep-going", action="store_true", help=argparse.SUPPRESS)
    r.add_argument("--strict", action="store_true", help="exit 3 unless the point delivered everything, faultless")

    c = sub.add_parser(
        "capacity",
        help="largest client count within a p95 latency bound, without loss or failed connections",
        description=(
            "Raise the client count from --start (x --growth, or + --step) until a point fails: p95 latency above "
            "--p95-bound, any lost delivery (or other integrity fault), or any failed connection; then bisect "
            "--refine times. Reports the largest passing count and why the next one failed, per strategy. "
            "Writes reports/<timestamp>-capacity/ (capacity.json, capacity.md, runs, charts, report) and "
            "reports/latest-capacity."
        ),
        formatter_class=fmt,
    )
    d = capacity.SearchConfig()
    c.add_argument("--start", type=int, default=d.start, help="first client count")
    c.add_argument("--growth", type=float, default=d.growth, help="next count = count x growth")
    c.add_argument("--step", type=int, help="next count = count + step (instead of --growth)")
    c.add_argument("--max-clients", type=int, default=d.max_clients, help="stop searching here")
    c.add_argument("--refine", type=int, default=d.refine, help="bisection steps after the first failure")
    c.add_argument(
        "--confirm",
        type=int,
        default=d.confirm,
        help="re-runs of a point that failed on latency alone (it passes if any attempt passes; "
        "lost deliveries and failed connections are never retried)",
    )
    c.add_argument("--p95-bound", type=float, default=d.p95_bound_ms, help="p95 latency bound, ms")
    _add_common(
        c,
        rate=CAPACITY_RATE,
        duration=CAPACITY_DURATION_S,
        senders_help="concurrent sending clients",
        fanout_default=",".join(DEFAULT_FANOUTS),
    )
    c.set_defaults(senders=capacity.DEFAULT_SENDERS)

    rp = sub.add_parser(
        "report",
        help="redraw charts and report from saved JSON (no run)",
        description="Same as `python -m bench.report DIR`: rewrite report.md, report.html and the PNGs.",
        formatter_class=fmt,
    )
    rp.add_argument("dir", metavar="DIR", help="a report directory, e.g. reports/latest")
    rp.add_argument("--out", help="write the report here instead of DIR")
    return p


COMMANDS: dict[str, Callable[[argparse.Namespace, Sequence[str]], int]] = {
    "sweep": cmd_sweep,
    "run": cmd_sweep,
    "capacity": cmd_capacity,
    "report": cmd_report,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = ["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)]
    try:
        return COMMANDS[args.command](args, command)
    except (BenchError, TargetError, ValueError, capacity.CapacityError) as exc:
        parser.error(str(exc))
    except KeyboardInterrupt:
        print("\ninterrupted: the results written so far stay readable (python -m bench report DIR)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
