"""The one command line, ``python -m bench`` / ``chat-bench``: its subcommands
and the options they share.

Each subcommand is a module with ``configure(parser)`` (adds its own
options to the subparser made here) and ``run(args) -> int`` (the exit
code); :data:`SUBCOMMANDS` is the dispatch table, imported lazily so a
subcommand's dependencies load only when it runs.  The options every
swarm-driving subcommand shares are declared once, in the parent parsers
below (:func:`target_options`, :func:`clients_options`,
:func:`traffic_options`, :func:`output_options`; the workload and churn
groups in :mod:`bench.cliworkload`, TLS and logins in
:mod:`bench.clisecurity`, both re-exported here), and turned into a
:class:`~bench.swarm.SwarmConfig` by one function, :func:`swarm_config`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, NoReturn, Protocol, cast

from bench import progname
from bench.clisecurity import add_login_options as add_login_options
from bench.clisecurity import client_security as client_security
from bench.clisecurity import login_options as login_options
from bench.clisecurity import security_options as security_options
from bench.cliworkload import DEFAULT_PAYLOAD as DEFAULT_PAYLOAD
from bench.cliworkload import churn_of as churn_of
from bench.cliworkload import churn_options as churn_options
from bench.cliworkload import workload_of as workload_of
from bench.cliworkload import workload_options as workload_options
from bench.measure import thresholds
from bench.measure.thresholds import Threshold
from bench.swarm import DEFAULT_SENDERS, SwarmConfig, pinning
from bench.swarm.run import rooms_refusal
from bench.targets import TargetError, make_target, parse_target, registry
from bench.usage import UsageError as UsageError
from bench.wire import PROTOCOLS
from server.config import FANOUT_STRATEGIES, ServerConfig

PROG = progname.PROG  #: chat-bench or python -m bench, as started

#: Defaults of the swarm options: ``make bench``'s sweep.  A subcommand that
#: wants others calls ``parser.set_defaults`` in its ``configure``.
#: Total messages/s over all senders: 1000 clients -> 100 x 999 ~ 100k deliveries/s,
#: within what the load generator handles on a 2-core machine.
DEFAULT_RATE = 100.0
DEFAULT_DURATION_S = 5.0
DEFAULT_WARMUP_S = 1.0
#: Seconds a point waits for late deliveries after its last message was due;
#: bounds the run time of a point that cannot keep up (``direct`` at high counts).
DEFAULT_DRAIN_TIMEOUT_S = 10.0
DEFAULT_REPORTS_ROOT = "reports"
#: The server's own fan-out strategy when started without --fanout (shown in --help).
SERVER_DEFAULT_FANOUT: str = ServerConfig().fanout


class Subcommand(Protocol):
    """What every subcommand module provides."""

    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


@dataclass(frozen=True)
class Entry:
    module: str
    help: str


#: name -> the module that implements it (miniircd-like: one readable table).
SUBCOMMANDS: dict[str, Entry] = {
    "sweep": Entry(
        "bench.studies.sweep", "the default benchmark: client counts x both fan-out strategies, then a stalled reader"
    ),
    "run": Entry("bench.studies.point", "one point (or a list of client counts), one strategy; all swarm options"),
    "capacity": Entry("bench.studies.capacity", "largest client count within a p95 bound, no loss, no failed conn."),
    "compare": Entry(
        "bench.studies.compare",
        f"the same sweep against several servers (default {','.join(registry.COMPARE_DEFAULTS)}); ratios, charts",
    ),
    "gate": Entry("bench.gate.cli", "fan-out regression gate: server vs calibration relay against the baseline"),
    "onebroadcast": Entry("bench.studies.onebroadcast", "time ONE broadcast to N idle clients (the server's floor)"),
    "soak": Entry("bench.studies.soak", "bounded soak: steady traffic, then the server must return to idle"),
    "connect-rate": Entry(
        "bench.studies.connectrate", "new connections per second each target takes within a p99 connect-latency bound"
    ),
    "replay": Entry("bench.studies.replay", "the harness's receive path on a generated stream, no sockets"),
    "cost": Entry("bench.studies.cost", "server CPU time and context switches per delivery, pinned, interleaved"),
    "handshakes": Entry("bench.studies.handshakes", "TLS handshakes per second and their latency, full and resumed"),
    "selftest": Entry("bench.studies.selftest", "the harness against a fault-injecting relay: exact counts, latency"),
    "report": Entry("bench.report.command", "redraw charts and report from saved JSON (no run)"),
    "diff": Entry("bench.studies.diff", "compare two results (or one with a saved baseline): ratios NEW/BASE"),
    "save": Entry("bench.studies.baselines", "keep a results directory as a named baseline for diff --baseline"),
    "export": Entry("bench.studies.export", "every point of a results directory as one flat CSV row"),
    "cluster": Entry("bench.studies.clusterup", "start redis-server and N server nodes on one port until Ctrl-C"),
    "cluster-scaling": Entry("bench.studies.scaling", "deliveries/s and p99 vs nodes of a Redis-backplane cluster"),
    "cluster-paths": Entry("bench.studies.paths", "latency of one line to receivers on the same node vs across nodes"),
    "peers": Entry("bench.peers", "the peer servers the chosen targets need: list them, or --install them"),
}


def load(name: str) -> Subcommand:
    return cast(Subcommand, importlib.import_module(SUBCOMMANDS[name].module))


# ---------------------------------------------------------------------------
# option types
# ---------------------------------------------------------------------------


def client_counts(text: str) -> list[int]:
    """``10,50,100`` -> sorted distinct counts.  One client is allowed here:
    it is a valid run with --dedicated-senders; SwarmConfig says when not."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or a comma-separated list, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("client counts must be positive")
    return sorted(set(values))


def fanout_list(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in FANOUT_STRATEGIES]
    if not values or bad:
        raise argparse.ArgumentTypeError(f"fan-out strategies are {', '.join(FANOUT_STRATEGIES)}; got {text!r}")
    return list(dict.fromkeys(values))


def target_list(text: str) -> list[str]:
    """``embedded,redis,cluster:2`` -> the targets, each a ``--target`` value (checked)."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of targets")
    for name in names:
        try:
            parse_target(name)
        except TargetError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError("a target is listed twice")
    return names


# ---------------------------------------------------------------------------
# shared parent parsers
# ---------------------------------------------------------------------------


def target_options() -> argparse.ArgumentParser:
    """Which server: --target, --protocol, --fanout, --send-queue-bytes, --server-arg, --server-pid."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("target")
    g.add_argument("--target", default="embedded", help=registry.target_help())
    g.add_argument("--protocol", choices=list(PROTOCOLS), help=registry.protocol_help())
    g.add_argument(
        "--fanout",
        type=fanout_list,
        metavar="LIST",
        help="embedded server: comma-separated fan-out strategies, one series each (queued: bounded per-client "
        "queues sent in batches by one flusher thread; threads: a writer thread per client; direct: the sender's "
        "thread writes to every socket)",
    )
    g.add_argument("--send-queue-bytes", type=int, help="embedded server: per-client send queue limit")
    g.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="embedded server: one more option passed verbatim (repeatable), e.g. --server-arg=--max-clients=20000; "
        "a broker: one more config line, e.g. --server-arg='client-output-buffer-limit pubsub 64kb 0 0'",
    )
    g.add_argument(
        "--server-pid",
        type=int,
        help="HOST:PORT target: the server's pid, to sample its CPU/RSS/threads; it must be the process listening "
        "on the target's port (checked; the error names the one that is)",
    )
    return p


def clients_options() -> argparse.ArgumentParser:
    """Who connects: --senders, roles, stalled clients, workers, ramp, clocks."""
    d = SwarmConfig()
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("clients")
    g.add_argument("--senders", type=int, help="sending clients")
    g.add_argument(
        "--dedicated-senders",
        action="store_true",
        help="senders are extra connections, not receivers (default: the first S clients send)",
    )
    g.add_argument("--stalled-clients", type=int, default=d.stalled_clients, help="clients that never read")
    g.add_argument("--stalled-rcvbuf", type=int, default=d.stalled_rcvbuf, help="SO_RCVBUF of stalled clients")
    g.add_argument(
        "--workers", type=int, help="load-generator processes (default: CPU count - 1, one left for the server)"
    )
    g.add_argument("--ramp", type=float, default=d.ramp_per_s, help="new connections per second (0: no limit)")
    g.add_argument("--connect-timeout", type=float, default=d.connect_timeout_s, help="seconds to register")
    g.add_argument(
        "--quickack",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="ACK every read at once (TCP_QUICKACK); without it a server that leaves Nagle on (no TCP_NODELAY, "
        "e.g. ngircd, miniircd) waits up to ~40 ms for the harness's delayed ACKs, as it would for most clients",
    )
    g.add_argument(
        "--rx-clock",
        choices=("kernel", "read"),
        default=d.rx_clock,
        help="where a delivery's latency ends. kernel: when the kernel queued the bytes on the receiving socket "
        "(SO_TIMESTAMPNS), so the harness's own delay in reading is reported apart (receive lag); read: right "
        "after the harness's recv returned. Either way it starts at the intended send time",
    )
    g.add_argument(
        "--connect-batch",
        type=int,
        help="registrations in flight at once over all workers (default: 64 per worker; ngircd 8, miniircd 4: "
        "their listen backlogs are tiny)",
    )
    g.add_argument(
        "--server-cpus",
        type=pinning.cpu_list,
        metavar="CPUS",
        help="pin the server (every thread) to these CPUs, e.g. 0-3 (taskset -c syntax); with --harness-cpus the "
        "load generator cannot take the server's cores. A HOST:PORT target needs --server-pid",
    )
    g.add_argument(
        "--harness-cpus",
        type=pinning.cpu_list,
        metavar="CPUS",
        help="pin the harness (its worker processes and this process) to these CPUs, e.g. 4-15; disjoint from "
        "--server-cpus (default --workers: one per CPU listed)",
    )
    return p


def traffic_options() -> argparse.ArgumentParser:
    """What is sent: --rate, --messages, --duration, --warmup, --payload, --drain-timeout, pacing, sampling."""
    d = SwarmConfig()
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("traffic")
    g.add_argument("--rate", type=float, default=DEFAULT_RATE, help="total messages/s over all senders; 0 = a burst")
    g.add_argument("--messages", type=int, help="measured messages (default: rate x duration; needed with --rate 0)")
    g.add_argument("--duration", type=float, default=DEFAULT_DURATION_S, help="measured seconds per point")
    g.add_argument("--warmup", type=float, default=DEFAULT_WARMUP_S, help="unmeasured seconds of traffic first")
    g.add_argument("--payload", type=int, help="payload bytes per message (a distribution: --payload-sizes)")
    g.add_argument(
        "--drain-timeout",
        type=float,
        default=DEFAULT_DRAIN_TIMEOUT_S,
        help="seconds a point waits for late deliveries after the last message is due (bounds its run time)",
    )
    g.add_argument(
        "--pacing-spin-us",
        type=int,
        default=d.spin_us,
        help="busy-poll when the next send is due within this many us (more precise pacing, more harness CPU)",
    )
    g.add_argument("--sample-interval", type=float, default=d.sample_interval_s, help="seconds between psutil samples")
    g.add_argument(
        "--interval",
        type=float,
        default=d.interval_s,
        metavar="S",
        help="seconds per interval of the run's time axis: one HDR histogram per interval (deliveries by arrival), "
        "in the run JSON's intervals, the .hlog beside it, the charts over time and the live outputs",
    )
    workload_options(p)
    churn_options(p)
    return p


def output_options() -> argparse.ArgumentParser:
    """Where results go: --reports-root, --out, --no-latest, --label, --quiet."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("output")
    g.add_argument("--reports-root", default=DEFAULT_REPORTS_ROOT, help="where timestamped report directories go")
    g.add_argument("--out", help="write into this (new or empty) directory instead; the latest link is not touched")
    g.add_argument("--no-latest", action="store_true", help="do not update the latest link")
    g.add_argument("--label", help="free text stored in every run's JSON")
    g.add_argument("--quiet", action="store_true", help="no progress output on stderr")
    return p


def threshold_arg(text: str) -> Threshold:
    try:
        return thresholds.parse(text)
    except thresholds.ThresholdError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def port_arg(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a TCP port is 0-65535 (0 picks a free one), got {text!r}")
    return port


def live_options() -> argparse.ArgumentParser:
    """The run shown and exported while it goes (bench.live), and its thresholds."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("live view, outputs and thresholds")
    g.add_argument(
        "--live",
        choices=("auto", "table", "lines", "off"),
        default="auto",
        help="one row per interval on stderr while a run goes: table (a live table), lines (a plain line each), "
        "auto (table on a terminal, lines when piped), off; --quiet turns it off",
    )
    g.add_argument("--web", type=port_arg, metavar="PORT", help="serve a page with live charts on PORT (0: a free one)")
    g.add_argument("--web-host", default="127.0.0.1", help="the address --web listens on")
    g.add_argument("--out-jsonl", metavar="FILE", help="append one JSON object per interval (and per run) to FILE")
    g.add_argument(
        "--prometheus", type=port_arg, metavar="PORT", help="serve Prometheus metrics on http://HOST:PORT/metrics"
    )
    g.add_argument("--prometheus-host", default="127.0.0.1", help="the address --prometheus listens on")
    g.add_argument(
        "--otlp", metavar="URL", help="export OpenTelemetry metrics (OTLP/HTTP) to URL, e.g. http://127.0.0.1:4318"
    )
    g.add_argument(
        "--threshold",
        type=threshold_arg,
        action="append",
        default=[],
        metavar="EXPR",
        help="pass/fail criterion as k6 writes it, repeatable: 'p99<50ms', 'delivered>=99.9%%', 'lost==0', "
        "'p99{path=cross}<80ms', 'max<1s abort-on-fail' (stops the run when crossed); any failed: exit 99",
    )
    return p


def add_parents(parser: argparse.ArgumentParser, *parents: argparse.ArgumentParser) -> None:
    """What ``ArgumentParser(parents=...)`` does, for a subparser that already
    exists (the CLI makes it, the subcommand's ``configure`` fills it)."""
    for parent in parents:
        # argparse's own way of copying a parent's groups and options (what
        # ``parents=`` calls); there is no public spelling for an existing parser.
        parser._add_container_actions(parent)


def swarm_parents() -> list[argparse.ArgumentParser]:
    """All five groups, for the subcommands that drive the swarm at one target."""
    return [target_options(), security_options(), clients_options(), traffic_options(), output_options()]


# ---------------------------------------------------------------------------
# args -> SwarmConfig (the one place)
# ---------------------------------------------------------------------------


def swarm_config(args: argparse.Namespace, clients: int, *, fanout: str | None = None) -> SwarmConfig:
    """The SwarmConfig the options describe, for ``clients`` clients and one
    fan-out strategy (subcommands without the target group get the defaults
    for its options).  ValueError says what is wrong."""
    get = args.__dict__.get
    rate = float(args.rate)
    workload, payload = workload_of(args)
    tls, logins = client_security(args)
    return SwarmConfig(
        clients=clients,
        senders=get("senders"),
        dedicated_senders=bool(get("dedicated_senders", False)),
        stalled_clients=get("stalled_clients", 0),
        stalled_rcvbuf=get("stalled_rcvbuf", SwarmConfig.stalled_rcvbuf),
        rate=rate,
        messages=get("messages"),
        duration_s=args.duration,
        warmup_s=args.warmup if rate > 0 else 0.0,
        payload_bytes=payload,
        workload=workload,
        churn=churn_of(args),
        workers=get("workers"),
        ramp_per_s=get("ramp", SwarmConfig.ramp_per_s),
        connect_timeout_s=get("connect_timeout", SwarmConfig.connect_timeout_s),
        drain_timeout_s=args.drain_timeout,
        sample_interval_s=get("sample_interval", SwarmConfig.sample_interval_s),
        interval_s=get("interval", SwarmConfig.interval_s),
        spin_us=get("pacing_spin_us", SwarmConfig.spin_us),
        target=get("target", "embedded"),
        protocol=get("protocol"),
        connect_batch=get("connect_batch"),
        quickack=bool(get("quickack", False)),
        rx_clock=get("rx_clock", SwarmConfig.rx_clock),
        fanout=fanout,
        send_queue_bytes=get("send_queue_bytes"),
        server_args=tuple(get("server_arg", ())),
        server_pid=get("server_pid"),
        server_cpus=get("server_cpus"),
        harness_cpus=get("harness_cpus"),
        progress=not get("quiet", False),
        label=get("label"),
        tls=tls,
        logins=logins,
    )


def point_config(base: SwarmConfig, clients: int) -> SwarmConfig:
    """``base`` at another client count; --senders is capped at the count
    when the senders are among the clients."""
    senders = base.senders
    if senders is not None and not base.dedicated_senders:
        senders = min(senders, clients)
    return replace(base, clients=clients, senders=senders)


def fanouts(args: argparse.Namespace, default: Sequence[str]) -> list[str | None]:
    """The strategies to run: --fanout, or ``default`` for the embedded server."""
    if args.target != "embedded":
        if args.fanout:
            raise UsageError("--fanout applies to the embedded server only; a running server has its own")
        return [None]
    return list(args.fanout or default)


def validate(args: argparse.Namespace, clients: Sequence[int], strategies: Sequence[str | None]) -> None:
    """Every point can be configured and its target made (clear errors before any run)."""
    for f in strategies:
        base = swarm_config(args, max(clients), fanout=f)
        point_config(base, min(clients))  # the smallest point is valid too (SwarmConfig checks)
        target = make_target(base.target, base.all_server_args, base.server_pid, base.protocol, base.security)
        why = rooms_refusal(base, target)  # the most rooms: the largest point's
        if why is not None:
            raise UsageError(why)


def command_line(argv: Sequence[str] | None) -> list[str]:
    """What was typed, for the result documents."""
    return [*PROG.split(), *(sys.argv[1:] if argv is None else argv)]


# ---------------------------------------------------------------------------
# the parser
# ---------------------------------------------------------------------------


#: What an option left unset (None) means, for --help: the value the run computes.
NONE_DEFAULTS: dict[str, str] = {"senders": f"min(clients, {DEFAULT_SENDERS})", "payload": str(DEFAULT_PAYLOAD)}


def default_text(value: object) -> str | None:
    """A default as a user would type it: ``10,50,100`` for a list, ``100``
    for 100.0; None for the ones not worth showing (unset, a flag's False)."""
    if value is None or isinstance(value, bool) or value == argparse.SUPPRESS:
        return None
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or None
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class HelpFormatter(argparse.HelpFormatter):
    """Shows each option's real default once, as typed on the command line:
    the value the subcommand uses (its ``set_defaults`` included), or for an
    unset option what the run computes (:data:`NONE_DEFAULTS`, ``none_defaults``);
    nothing when the help text already says it."""

    none_defaults: dict[str, str] = NONE_DEFAULTS

    @classmethod
    def showing(cls, extra: dict[str, str]) -> type[HelpFormatter]:
        """This formatter with more unset-option texts (one subcommand's)."""
        return type("SubcommandHelpFormatter", (cls,), {"none_defaults": {**cls.none_defaults, **extra}})

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "(default" in text or "%(default)" in text:
            return text
        shown = self.none_defaults.get(action.dest) if action.default is None else default_text(action.default)
        return text if shown is None else f"{text} (default: {shown})"


class Parser(argparse.ArgumentParser):
    """Usage errors in one line plus where to look, not the whole usage."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: subcommand name -> its parser (filled by :func:`build_parser`), so an
        #: unknown option is reported by the subcommand it was given to.
        self.subcommands: dict[str, Parser] = {}

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n(see `{self.prog} --help`)\n")

    def subcommand(self, name: str) -> Parser:
        return self.subcommands.get(name, self)


def build_parser() -> Parser:
    p = Parser(
        prog=PROG,
        description=(
            "chatbench: measure how the chat server's broadcast fan-out holds up as clients are added. "
            "Each point starts a fresh server, connects N clients, sends chat messages at a fixed total rate "
            "(open loop) and times every delivery from the message's intended send time. Results go to "
            "reports/<timestamp>/ as JSON, PNG charts, report.md and report.html."
        ),
        epilog=(
            f"Start with `{PROG} sweep` (what `make bench` runs, a few minutes), then open "
            "reports/latest/report.html. Each subcommand has its own --help."
        ),
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for name, entry in SUBCOMMANDS.items():
        s = sub.add_parser(name, help=entry.help, description=entry.help)
        p.subcommands[name] = s
        try:
            module = load(name)
            module.configure(s)
        except (ImportError, AttributeError) as exc:  # a subcommand not there yet must not break the others
            s.set_defaults(unavailable=f"{name} is not available: {exc}")
            continue
        # after configure: one way of showing defaults for every subcommand, whatever it set
        s.formatter_class = HelpFormatter.showing(fanout_default(module))
        s.set_defaults(handler=module.run)
    return p


def fanout_default(module: object) -> dict[str, str]:
    """--fanout's default in a subcommand's help: the strategies it runs
    without the option (its ``DEFAULT_FANOUTS``), the server's own default named."""
    strategies = getattr(module, "DEFAULT_FANOUTS", None)
    if not strategies:
        return {}
    text = ",".join(strategies)
    if text != SERVER_DEFAULT_FANOUT:
        text += f"; the server alone defaults to {SERVER_DEFAULT_FANOUT}"
    return {"fanout": text}


def main(argv: Sequence[str] | None = None, parser: Parser | None = None) -> int:
    """Parse ARGV and run its subcommand; PARSER is :func:`build_parser`'s,
    built beforehand by ``python -m bench`` while Ctrl-C still ends at once
    (building it imports every subcommand: numpy, matplotlib)."""
    parser = parser or build_parser()
    args, unknown = parser.parse_known_args(argv)
    args.argv = command_line(argv)
    prog = f"{PROG} {args.command}"
    if getattr(args, "unavailable", None):
        parser.exit(2, f"{prog}: error: {args.unavailable}\n")
    if unknown:
        parser.subcommand(args.command).error(f"unrecognized arguments: {' '.join(unknown)}")
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (UsageError, TargetError, ValueError) as exc:
        parser.exit(2, f"{prog}: error: {exc}\n(see `{prog} --help`)\n")
    except KeyboardInterrupt:
        print(f"\ninterrupted: the results written so far stay readable ({PROG} report DIR)", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout piped into `head` and closed: not an error; keep Python's exit flush quiet too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0
