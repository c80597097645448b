"""``python -m bench gate``: the fan-out regression gate's command line.

:func:`configure` adds the gate's options to the subparser the single
command line (:mod:`bench.__main__`) creates; :func:`run` runs it.  Exit
codes: 0 pass, 1 regression, 2 the measurement itself failed.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import TypedDict

from bench.cli import UsageError, add_parents, client_security, security_options
from bench.gate.baseline import (
    BASELINE_PATH,
    DEFAULT_TOLERANCES,
    build_baseline,
    load_baseline,
    parse_tolerances,
    write_baseline,
)
from bench.gate.run import Measurement, MeasurementDoc, Progress, run_gate
from bench.gate.scenario import GateError, Scenario
from bench.gate.verdict import check
from bench.progname import PROG
from bench.targets.relay import run_relay
from bench.wire.client import Access

#: Runs ``--write-baseline`` measures by default; the median is recorded.
DEFAULT_BASELINE_RUNS = 7
#: Measurements before a failure counts (see :func:`bench.gate.verdict.check`).
DEFAULT_ATTEMPTS = 2
#: Exit codes.
EXIT_PASS, EXIT_REGRESSION, EXIT_FAILED = 0, 1, 2

DESCRIPTION = (
    "Fan-out regression gate: measure the chat server's broadcast fan-out against a calibration relay "
    "in the same run, and compare the ratio with the committed baseline (exit 1 on regression)."
)
EPILOG = (
    f"Examples:  {PROG} gate            (check against bench/gate/baseline.json)\n"
    f"           {PROG} gate --write-baseline --runs 5\n"
    f"           {PROG} gate --fanout direct --stalled 1   (a regression the gate must catch)\n"
    f"           {PROG} gate --target redis   (the same bursts against another server: measured, no baseline)"
)


class CheckDocument(TypedDict):
    """What ``bench gate --json`` prints: the verdict and every attempt measured."""

    ok: bool
    verdict: str
    attempts: list[MeasurementDoc]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the gate's options to ``parser``."""
    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    _add_baseline_options(parser)
    _add_scenario_options(parser)
    parser.add_argument(
        "--attempts",
        type=int,
        default=DEFAULT_ATTEMPTS,
        help="measurements before a failure counts: the gate fails only if all fail (default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the full measurement as JSON on stdout")
    parser.add_argument("-q", "--quiet", action="store_true", help="no per-round progress on stderr")
    add_parents(parser, security_options())
    relay = parser.add_argument_group("calibration relay (internal; also `python -m bench.targets.relay`)")
    relay.add_argument("--relay", action="store_true", help="only run the calibration relay until killed")
    relay.add_argument("--host", default="127.0.0.1", help="relay listen address")
    relay.add_argument("--port", type=int, default=0, help="relay port; 0 picks one (logged on stderr)")


def _add_baseline_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baseline", type=Path, default=BASELINE_PATH, help="baseline JSON (default: %(default)s)")
    parser.add_argument(
        "--write-baseline", action="store_true", help="measure --runs times and write the baseline instead of checking"
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=DEFAULT_BASELINE_RUNS,
        help="runs for --write-baseline; the median is recorded (default: %(default)s)",
    )
    parser.add_argument(
        "--tolerance",
        action="append",
        default=[],
        metavar="METRIC=FRACTION",
        help="with --write-baseline: tolerance for a metric, e.g. fanout_ratio=0.5 "
        "(default: keep the existing baseline's, else "
        + ", ".join(f"{k}={v}" for k, v in DEFAULT_TOLERANCES.items())
        + ")",
    )
    parser.add_argument("--note", default="", help="with --write-baseline: free text stored in the baseline")


def _add_scenario_options(parser: argparse.ArgumentParser) -> None:
    d = Scenario()
    parser.add_argument("--fanout", choices=("queued", "direct"), default=d.fanout, help="server --fanout strategy")
    parser.add_argument("--stalled", type=int, default=d.stalled, help="registered clients that never read")
    parser.add_argument(
        "--server-command",
        metavar="CMD",
        help="start the server under test with this command instead of `python -m server` "
        "(it must log 'listening on HOST:PORT' on stderr); --fanout is then ignored",
    )
    parser.add_argument(
        "--target",
        help="measure another server instead of ours, in its own protocol (a --target of `run`: redis, nats, "
        "mosquitto, embedded-ws, ngircd, HOST:PORT, ...); the ratio to the relay is reported, no baseline applies",
    )
    parser.add_argument("--protocol", help="the protocol of a HOST:PORT or ws:// --target")
    parser.add_argument("--clients", type=int, default=d.clients, help="receivers (default: %(default)s)")
    parser.add_argument("--lines", type=int, default=d.lines, help="lines per burst (default: %(default)s)")
    parser.add_argument("--payload", type=int, default=d.payload, help="payload characters per line")
    parser.add_argument(
        "--rounds", type=int, default=d.rounds, help="measured rounds per target (default: %(default)s)"
    )
    parser.add_argument("--warmup", type=int, default=d.warmup, help="discarded rounds per target")
    parser.add_argument(
        "--burst-timeout", type=float, default=d.burst_timeout, help="seconds before a burst is stalled"
    )


def scenario_from(args: argparse.Namespace) -> Scenario:
    """The scenario the options describe (ValueError if they make no sense)."""
    try:
        tls, logins = client_security(args)
    except UsageError as exc:
        raise ValueError(str(exc)) from None
    return Scenario(
        clients=args.clients,
        lines=args.lines,
        payload=args.payload,
        rounds=args.rounds,
        warmup=args.warmup,
        burst_timeout=args.burst_timeout,
        fanout=args.fanout,
        stalled=args.stalled,
        server_command=tuple(shlex.split(args.server_command)) if args.server_command else None,
        target=args.target,
        protocol=args.protocol,
        access=Access(tls, logins),
    )


def run(args: argparse.Namespace) -> int:
    """Check (or with ``--write-baseline`` record) the fan-out ratio."""
    if args.relay:
        return run_relay(args.host, args.port)
    try:
        scenario = scenario_from(args)
    except ValueError as exc:
        print(f"bench gate: error: {exc}", file=sys.stderr)
        return EXIT_FAILED

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"[gate] {message}", file=sys.stderr, flush=True)

    try:
        if scenario.target is not None:
            return _measure_only(args, scenario, progress)
        if args.write_baseline:
            return _write_baseline(args, scenario, progress)
        baseline = load_baseline(args.baseline)
        verdict, measurements = check(scenario, baseline, progress, attempts=args.attempts)
    except GateError as exc:
        print(f"bench gate: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        document: CheckDocument = {
            "ok": verdict.ok,
            "verdict": verdict.message,
            "attempts": [m.to_json() for m in measurements],
        }
        print(json.dumps(document, indent=2))
    else:
        print(verdict.message)
    return EXIT_PASS if verdict.ok else EXIT_REGRESSION


def _measure_only(args: argparse.Namespace, scenario: Scenario, progress: Progress) -> int:
    """Another target: the same bursts, the ratios printed; the committed
    baseline is our server's, so nothing is judged."""
    if args.write_baseline:
        raise GateError("--write-baseline records our server's baseline: not with --target")
    measurement = run_gate(scenario, progress)
    if args.json:
        print(json.dumps(measurement.to_json(), indent=2))
        return EXIT_PASS
    server, relay = measurement.server, measurement.relay
    print(
        f"{scenario.target}: burst to {scenario.clients} receivers in {server.median_fanout_us / 1000:.2f} ms "
        f"(median; the calibration relay {relay.median_fanout_us / 1000:.2f} ms); "
        + ", ".join(f"{k} {v:.3f}" for k, v in measurement.ratios.items())
        + " (measured only: the baseline is our server's)"
    )
    return EXIT_PASS


def baseline_command(args: argparse.Namespace) -> str:
    """The command that re-measures this baseline, every scenario option spelled out."""
    argv = ["--write-baseline", "--runs", str(args.runs)]
    if args.server_command:
        argv += ["--server-command", args.server_command]
    else:
        argv += ["--fanout", args.fanout]
    for option in ("stalled", "clients", "lines", "payload", "rounds", "warmup", "burst_timeout"):
        argv += ["--" + option.replace("_", "-"), str(getattr(args, option))]
    for item in args.tolerance:
        argv += ["--tolerance", item]
    if args.note:
        argv += ["--note", args.note]
    return "python -m bench gate " + shlex.join(argv)


def _write_baseline(args: argparse.Namespace, scenario: Scenario, progress: Progress) -> int:
    if args.runs < 1:
        raise GateError("--runs must be at least 1")
    existing: dict[str, float] = {}
    if args.baseline.exists():
        try:
            existing = {k: m.tolerance for k, m in load_baseline(args.baseline).metrics.items()}
        except GateError as exc:
            progress(f"ignoring the existing baseline's tolerances: {exc}")
    tolerances = parse_tolerances(args.tolerance, existing)
    measurements: list[Measurement] = []
    for i in range(args.runs):
        progress(f"run {i + 1}/{args.runs}")
        m = run_gate(scenario, progress)
        ratios = ", ".join(f"{k} {v:.3f}" for k, v in m.ratios.items())
        progress(f"run {i + 1}/{args.runs}: {ratios} ({m.seconds:.1f}s)")
        measurements.append(m)
    document = build_baseline(measurements, tolerances, baseline_command(args), args.note)
    write_baseline(args.baseline, document)
    recorded = ", ".join(f"{k} {v['value']} (+{v['tolerance']:.0%})" for k, v in document["metrics"].items())
    print(f"wrote {args.baseline}: {recorded}")
    return EXIT_PASS
