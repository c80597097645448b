"""``chat-bench connect-rate``: how many new connections per second each
target takes, within a bound on their connect latency.

For each target, the study offers new connections at ``--start`` per second,
then ``--factor`` times more per step up to ``--max``; each connection
registers and leaves at once (a *probe*: :mod:`bench.workload.membership`),
while ``--clients`` steady clients exchange ``--rate`` messages per second,
so the report also says what they saw.  A step passes when

* the p99 of the connect latency (``connect()`` to registered) is within
  ``--bound-ms``,
* no connection failed (refused, reset, timed out), and
* the harness got at least 90% of the offered rate registered over the step;

the target's **capacity** is the highest rate that passed, and its first
failing step is the last one run.  Connect latency is split into TCP
connect, TLS handshake (``--tls``; absent in plaintext) and registration (our
welcome line; IRC ``001``; MQTT ``CONNACK``; Redis's first reply; NATS
``PONG``; WebSocket ``101`` and the welcome): :mod:`bench.measure.connects`.
With ``--tls`` every connection, the probes and the steady clients, is
over TLS (``--tls-resume``: the probes resume the worker's last session),
and without ``--targets`` the targets are the default ones that serve TLS.

Output: ``connect-rate.json`` (:class:`~bench.results.schema.ConnectRateDocument`),
``connect-rate.md`` / ``.html`` and ``connect-rate.png``
(:mod:`bench.report.connectrate`), and every step's run document under
``TARGET/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import cli
from bench.measure.stats import LatencyHistogram
from bench.net.tls import TlsOptions
from bench.progname import PROG
from bench.report import connectrate as report
from bench.results import schema
from bench.results.machine import environment
from bench.results.schema import ConnectRateDocument, ConnectRateParameters, ConnectRateStep, ConnectRateTarget
from bench.results.store import new_report_dir, point_latest, write_json
from bench.swarm import SwarmConfig, SwarmError, run_swarm
from bench.swarm.churn import CHURN_TAIL_S
from bench.targets import TargetError, make_target, registry
from bench.targets.base import Security
from bench.wire.credentials import Logins
from bench.workload.membership import CHURN_MODES, Churn

#: Without --targets: every kind compare runs, and our server over WebSocket.
DEFAULT_TARGETS = (*registry.COMPARE_DEFAULTS, "embedded-ws")
DEFAULT_START = 100.0
DEFAULT_FACTOR = 2.0
DEFAULT_MAX = 6400.0
DEFAULT_BOUND_MS = 100.0
#: Short steps: a target of six steps stays within a minute.
DEFAULT_STEP_S = 3.0
DEFAULT_CLIENTS = 10
DEFAULT_RATE = 20.0
#: A step passes when at least this share of the offered rate was registered.
ACHIEVED_SHARE = 0.9
LATEST = "latest-connect-rate"

#: What "registered" means on each protocol (the report says it).
REGISTRATION = {
    "chat": "the welcome line",
    "ws": "HTTP 101, then the welcome line",
    "irc": "001, then the channel's end of NAMES (366)",
    "mqtt": "CONNACK, then SUBACK",
    "redis": "the SUBSCRIBE confirmation (its first reply)",
    "nats": "PONG to the PING after CONNECT and SUB",
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "New connections per second each target takes: the rate is raised step by step until the p99 of the "
        "connect latency passes a bound or connections fail. Each new connection registers and leaves at once."
    )
    parser.epilog = (
        f"Example: `{PROG} connect-rate --targets embedded,ngircd,mosquitto --max 3200`. "
        "Connect latency is split into TCP connect, TLS handshake and registration."
    )
    g = parser.add_argument_group("connect rate")
    g.add_argument(
        "--targets",
        type=cli.target_list,
        help="targets, each in turn (default: compare's and embedded-ws; with --tls those that serve TLS)",
    )
    g.add_argument("--start", type=float, default=DEFAULT_START, help="new connections per second of the first step")
    g.add_argument("--factor", type=float, default=DEFAULT_FACTOR, help="each step offers this many times more")
    g.add_argument("--max", type=float, default=DEFAULT_MAX, dest="max_rate", help="the last step's rate at most")
    g.add_argument("--bound-ms", type=float, default=DEFAULT_BOUND_MS, help="p99 connect latency bound")
    g.add_argument("--step-duration", type=float, default=DEFAULT_STEP_S, help="seconds of new connections per step")
    g.add_argument("--clients", type=int, default=DEFAULT_CLIENTS, help="steady clients connected meanwhile")
    g.add_argument("--rate", type=float, default=DEFAULT_RATE, help="their messages per second")
    g.add_argument("--mode", choices=CHURN_MODES, default="quit", help="how each new connection leaves")
    g.add_argument("--workers", type=int, help="load-generator processes (default: CPU count - 1)")
    cli.add_parents(parser, cli.security_options(), cli.output_options())


def rates(start: float, factor: float, most: float) -> list[float]:
    """``start``, ``start * factor``, ... up to ``most``."""
    if start <= 0 or factor <= 1 or most < start:
        raise cli.UsageError("--start > 0, --factor > 1 and --max >= --start")
    out = [start]
    while out[-1] * factor <= most * (1 + 1e-9):
        out.append(out[-1] * factor)
    return out


def judge(step: ConnectRateStep, bound_ms: float) -> list[str]:
    """Why a step failed (empty: it passed)."""
    why = []
    p99 = step["total_us"]["p99_us"]
    if step["registered"] == 0:
        why.append("no connection registered")
    elif p99 is not None and p99 > bound_ms * 1000:
        why.append(f"p99 {p99 / 1000:.1f} ms > {bound_ms:g} ms")
    failed = sum(step["failures"].values())
    if failed:
        top = max(step["failures"].items(), key=lambda kv: kv[1])[0]
        why.append(f"{failed} failed ({top})")
    if step["achieved_per_s"] < ACHIEVED_SHARE * step["rate"]:
        why.append(f"{step['achieved_per_s']:.0f}/s registered of {step['rate']:g}/s offered")
    return why


def step_of(rate: float, doc: schema.RunDocument, file: str, bound_ms: float) -> ConnectRateStep:
    """A step's record from its run document."""
    churn = doc.get("churn")
    probe = doc.get("connects", {}).get("probe")
    none = no_latency()
    series = doc.get("intervals")
    span = series["send_end_s"] - series["warmup_s"] if series is not None else doc["parameters"]["duration_s"]
    window = max(1e-9, span - CHURN_TAIL_S)  # when the probes were due (bench.swarm.churn)
    registered = churn["probes"] if churn is not None else 0
    steady = [s for s in doc["labels"] if s["values"].get("membership") == "steady"]
    step: ConnectRateStep = {
        "rate": rate,
        "achieved_per_s": round(registered / window, 1),
        "attempts": churn["attempts"].get("probe", 0) if churn is not None else 0,
        "registered": registered,
        "failures": churn["failures"].get("probe", {}) if churn is not None else {},
        "tcp_us": probe["tcp_us"] if probe is not None else none,
        "tls_us": probe["tls_us"] if probe is not None else None,
        "tls_resumed": probe["tls_resumed_us"]["count"] if probe is not None and probe["tls_resumed_us"] else 0,
        "registration_us": probe["registration_us"] if probe is not None else none,
        "total_us": probe["total_us"] if probe is not None else none,
        "steady_p99_us": steady[0]["latency_us"]["p99_us"] if steady else doc["latency_us"]["p99_us"],
        "server_cpu_percent": schema.server_summary(doc).get("cpu_percent_window"),
        "harness_cpu_percent": doc["resources"].get("harness_cpu_percent_window"),
        "load_generator_saturated": doc["load_generator_saturated"],
        "passed": False,
        "why": [],
        "file": file,
    }
    step["why"] = judge(step, bound_ms)
    step["passed"] = not step["why"]
    return step


@dataclass(frozen=True)
class Access:
    """How the study's clients reach the targets (``--tls`` ..., the logins)."""

    tls: TlsOptions | None = None
    logins: Logins | None = None


def _config(args: argparse.Namespace, target: str, rate: float, access: Access) -> SwarmConfig:
    return SwarmConfig(
        clients=args.clients,
        senders=min(2, args.clients - 1) if args.clients > 1 else None,
        rate=args.rate,
        duration_s=args.step_duration,
        warmup_s=0.5,
        target=target,
        workers=args.workers,
        churn=Churn(probe_rate=rate, mode=args.mode),
        tls=access.tls,
        logins=access.logins,
        progress=False,
        label=f"connect-rate {rate:g}/s",
    )


def search(args: argparse.Namespace, target: str, out: Path, access: Access) -> ConnectRateTarget:
    """One target's steps, until one fails."""
    protocol = registry.parse_target(target).protocols[0]
    steps: list[ConnectRateStep] = []
    (out / _dir_name(target)).mkdir(parents=True, exist_ok=True)
    for rate in rates(args.start, args.factor, args.max_rate):
        file = f"{_dir_name(target)}/run-r{round(rate):06d}.json"
        try:
            doc = run_swarm(_config(args, target, rate, access))
        except (SwarmError, TargetError, ValueError) as exc:
            steps.append(_failed_step(rate, str(exc)))
            _print(target, steps[-1], args.quiet)
            break
        write_json(out / file, doc)
        steps.append(step_of(rate, doc, file, args.bound_ms))
        _print(target, steps[-1], args.quiet)
        if not steps[-1]["passed"]:
            break
    passed = [s["rate"] for s in steps if s["passed"]]
    return {
        "target": target,
        "protocol": protocol,
        "registration": REGISTRATION.get(protocol, "its registration"),
        "capacity_per_s": max(passed) if passed else None,
        "steps": steps,
    }


def no_latency() -> schema.Latency:
    """The summary of no connection at all."""
    return LatencyHistogram().summary()


def _failed_step(rate: float, error: str) -> ConnectRateStep:
    none = no_latency()
    return {
        "rate": rate,
        "achieved_per_s": 0.0,
        "attempts": 0,
        "registered": 0,
        "failures": {},
        "tcp_us": none,
        "tls_us": None,
        "tls_resumed": 0,
        "registration_us": none,
        "total_us": none,
        "steady_p99_us": None,
        "server_cpu_percent": None,
        "harness_cpu_percent": None,
        "load_generator_saturated": False,
        "passed": False,
        "why": [f"the run failed: {error.splitlines()[0][:200]}"],
        "file": None,
        "error": error,
    }


def _dir_name(target: str) -> str:
    return target.replace(":", "_").replace("/", "_")


def _print(target: str, step: ConnectRateStep, quiet: bool) -> None:
    if quiet:
        return
    p99 = step["total_us"]["p99_us"]
    shown = f"p99 {p99 / 1000:.1f} ms" if p99 is not None else "no p99"
    tls = step["tls_us"]
    if tls is not None and tls["p99_us"] is not None:
        shown += f" (TLS handshake p99 {tls['p99_us'] / 1000:.1f} ms)"
    verdict = "pass" if step["passed"] else "FAIL: " + "; ".join(step["why"])
    print(f"{target}: {step['rate']:g}/s -> {step['achieved_per_s']:g}/s registered, {shown}: {verdict}", flush=True)


def default_targets(tls: bool) -> list[str]:
    """Compare's and ``embedded-ws``; with TLS those that can serve it."""
    kinds = {t: registry.parse_target(t).kind for t in DEFAULT_TARGETS}
    return [t for t, kind in kinds.items() if not tls or kind is None or kind.refusal(Security(tls=True)) is None]


def check(args: argparse.Namespace, access: Access) -> None:
    """Every target can be run so (secured, with these logins): a UsageError
    in one line before any run."""
    security = Security(tls=access.tls is not None, logins=access.logins)
    for target in args.targets:
        try:
            make_target(target, security=security)
            _config(args, target, args.start, access)
        except (TargetError, ValueError) as exc:
            raise cli.UsageError(f"{target}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    rates(args.start, args.factor, args.max_rate)  # the usage errors first
    if args.clients < 2:
        raise cli.UsageError("--clients must be at least 2 (a sender and a receiver stay connected)")
    access = Access(*cli.client_security(args))
    if args.targets is None:
        args.targets = default_targets(access.tls is not None)
    check(args, access)
    root = Path(args.reports_root)
    out = Path(args.out) if args.out else new_report_dir(root, "-connect-rate")
    out.mkdir(parents=True, exist_ok=True)
    params: ConnectRateParameters = {
        "p99_bound_ms": args.bound_ms,
        "start": args.start,
        "factor": args.factor,
        "max_rate": args.max_rate,
        "step_duration_s": args.step_duration,
        "clients": args.clients,
        "rate": args.rate,
        "mode": args.mode,
        "transport": "tls" if access.tls is not None else "plain",
        "tls": access.tls.describe() if access.tls is not None else None,
        "logins": access.logins.describe() if access.logins is not None else None,
    }
    doc: ConnectRateDocument = {
        "schema_version": schema.CONNECT_RATE_SCHEMA_VERSION,
        "kind": schema.CONNECT_RATE_KIND,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "parameters": params,
        "environment": environment(),
        "command": list(args.argv),
        "targets": [],
    }
    for target in args.targets:
        doc["targets"].append(search(args, target, out, access))
        write_json(out / schema.CONNECT_RATE_JSON, doc)  # readable after each target
    report.write(out, doc)
    if not args.out and not args.no_latest:
        point_latest(root, out, LATEST)
    print(f"{out / schema.CONNECT_RATE_MD}", file=sys.stderr)
    return 0
