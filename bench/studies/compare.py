"""Our server next to other chat servers: the same sweep against each target,
in one run, and a comparison.

``python -m bench compare --help`` for the command line (``make compare``).
For each target the sweep (:func:`bench.studies.sweep.run_series`: one run per
client count, a fresh server each) goes to ``OUT/<target>/`` (run JSONs and
``index.json``, the usual results schema).  Then:

``OUT/compare.json``  per target and client count: the run summary
                      (deliveries/s, delivered ratio, p50/p99, faults, server
                      and harness CPU); and the ratios ours / each peer.
``OUT/COMPARE.md``    the settings (protocol, flood control, TCP_QUICKACK), the
                      ratio table per peer, and the charts.
``OUT/*.png``         one line per target: p99 latency, deliveries/s and
                      server CPU against the client count.

Ratios are *ours / peer*: of the delivered *fractions* (each target's
deliveries over its own expected count: a Redis publisher is a connection of
its own, so there every subscriber gets every message, the sender's too,
where the other servers skip the sender), above 1 means ours delivered a
larger share; of p99, below 1 means ours was faster.  Our server is the ``embedded``
target (the first of ``--targets`` when ``embedded`` is not among them).

Fairness: every target gets the same workload (clients, senders, rate,
payload, warm-up) from the same harness; the peers speak IRC through
:mod:`bench.wire.adapters`, ours its own line protocol.  ngircd runs with
``MaxPenaltyTime = 0`` when the installed version has it; otherwise the rate is
spread over enough senders that none exceeds ngircd's penalty rate, for
*every* target, and the report says so.  By default receivers ACK every read
at once (``--quickack``): ngircd and miniircd do not set TCP_NODELAY, so with
delayed ACKs Nagle holds their next line for up to ~40 ms -- what many real
clients would see, but a property of the socket options, not of fan-out;
``--no-quickack`` measures that instead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench import cli
from bench.progname import PROG
from bench.report import compare as compare_report
from bench.results.machine import environment
from bench.results.schema import CompareMeta, CompareParameters
from bench.results.store import ResultsError, SeriesWriter
from bench.studies import sweep
from bench.swarm import DEFAULT_SENDERS, SwarmConfig
from bench.swarm.run import rooms_refusal
from bench.targets import NGIRCD_PENALTY_RATE_PER_SENDER, NgircdTarget, make_target, parse_target, registry

#: Without --targets: the registry's (bench/targets/registry.py, ``compare=True``).
DEFAULT_TARGETS = registry.COMPARE_DEFAULTS
DEFAULT_CLIENTS = (10, 50, 100, 250, 500)
#: Where comparisons go without --out.
DEFAULT_ROOT = "reports/compare"


def flood_plan(targets: Sequence[str], rate: float, senders: int | None) -> tuple[int | None, str]:
    """The senders to use and a sentence on flood control: ngircd without
    ``MaxPenaltyTime`` needs the rate spread over many senders."""
    notes = []
    for name in targets:
        if name != "ngircd":
            continue
        target = make_target(name)
        assert isinstance(target, NgircdTarget)
        if target.max_rate_per_sender is None:
            notes.append(f"ngircd: {target.flood_control}")
            continue
        need = math.ceil(rate / target.max_rate_per_sender) if rate > 0 else DEFAULT_SENDERS
        spread = max(senders or DEFAULT_SENDERS, need)
        notes.append(
            f"ngircd has no MaxPenaltyTime: the rate is spread over {spread} senders "
            f"(<= {NGIRCD_PENALTY_RATE_PER_SENDER:g} msg/s each) for every target; "
            "client counts below that have fewer senders, each faster"
        )
        return spread, "; ".join(notes)
    return senders, "; ".join(notes) or "no ngircd among the targets"


# ---------------------------------------------------------------------------
# python -m bench compare
# ---------------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run the same fan-out sweep against several servers (ours, IRC servers, pub/sub brokers) and write a "
        "comparison: per-target run JSONs, compare.json, COMPARE.md with ratios ours/peer, and charts."
    )
    parser.epilog = (
        f"Peers: `{PROG} peers --targets LIST --install` installs what the chosen targets need (Debian "
        "packages with apt-get, miniircd with pip; `make compare` does it first). Every target kind: "
        f"`{PROG} run --help`. miniircd's select() loop cannot go past ~1,020 connections. Example: "
        f"`{PROG} compare --targets embedded,redis --clients 10,50,100 --rate 100 --duration 3`."
    )
    g = parser.add_argument_group("targets")
    g.add_argument(
        "--targets",
        type=cli.target_list,
        default=list(DEFAULT_TARGETS),
        help="comma-separated --target values (see `run --help`); 'embedded' is ours, the ratios are against it",
    )
    g.add_argument(
        "--clients", type=cli.client_counts, default=list(DEFAULT_CLIENTS), help="client counts (comma-separated)"
    )
    g.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run each client count N times per target, interleaved (ours, peer, ours, peer ...); the report "
        "gives the median of the runs with (min-max), and marks a ratio whose spread crosses 1.0. Pin the server "
        "and the harness apart with --server-cpus/--harness-cpus on a machine with the cores",
    )
    g.add_argument(
        "--quickack-targets",
        type=cli.target_list,
        metavar="LIST",
        help="only these targets' receivers ACK at once; the others get delayed ACKs (e.g. ngircd,miniircd: the "
        "peers' best case, ours as most clients would see it). Without it --quickack/--no-quickack applies to all",
    )
    g.add_argument(
        "--server-pid",
        type=int,
        help="a HOST:PORT target's pid, to sample its CPU/RSS and pin it with --server-cpus (one HOST:PORT target)",
    )
    g.add_argument(
        "--rebuild",
        metavar="DIR",
        help="run nothing: re-read the sweeps in DIR (a previous --out); rewrite compare.json, COMPARE.md, charts",
    )
    cli.add_parents(parser, cli.security_options(), cli.clients_options(), cli.traffic_options(), cli.output_options())
    # Receivers ACK at once by default: the peers leave Nagle on (see the module's docstring).
    parser.set_defaults(quickack=True, reports_root=DEFAULT_ROOT)


def _parameters(args: argparse.Namespace, base: SwarmConfig, senders: int | None) -> CompareParameters:
    """``meta.parameters``: what every target was given (a workload of rooms included)."""
    out: CompareParameters = {
        "senders": base.sender_count if senders or not base.workload.one_room else f"min(clients, {DEFAULT_SENDERS})",
        "rate": args.rate,
        "payload_bytes": base.payload_bytes,
        "warmup_s": args.warmup,
        "duration_s": args.duration,
    }
    workload = base.parameters().get("workload")
    if workload is not None:
        out["workload"] = workload
    return out


def run(args: argparse.Namespace) -> int:
    if args.rebuild:
        try:
            path = compare_report.write_report(Path(args.rebuild))
        except (ResultsError, OSError, KeyError) as exc:
            raise cli.UsageError(f"cannot rebuild {args.rebuild}: {exc}") from exc
        print(f"comparison: {path}", file=sys.stderr)
        return 0
    targets: list[str] = args.targets
    if args.rate <= 0:
        raise cli.UsageError("--rate must be positive")
    if args.repeat < 1:
        raise cli.UsageError("--repeat must be at least 1")
    if args.server_pid is not None and sum(parse_target(t).address is not None for t in targets) != 1:
        raise cli.UsageError("--server-pid names the pid of the one HOST:PORT target among --targets")
    quick = set(args.quickack_targets or ())
    if quick - set(targets):
        raise cli.UsageError(
            f"--quickack-targets names targets not in --targets: {', '.join(sorted(quick - set(targets)))}"
        )
    senders, flood = flood_plan(targets, args.rate, args.senders)
    if cli.workload_of(args)[0].one_room:
        args.senders = senders
    elif senders != args.senders:  # rooms: each has its senders; ngircd's penalty applies as it is
        flood += "; with rooms the senders are the rooms' (not spread): ngircd's penalty may hold them back"
    base = cli.swarm_config(args, max(args.clients))
    for name in targets:
        # validates the payload, the rooms and the logins against each protocol
        config = replace(base, target=name)
        # installed, and can be so secured?  (clear error otherwise)
        why = rooms_refusal(config, make_target(name, security=base.security))
        if why is not None:
            raise cli.UsageError(why)
    out = sweep.out_dir(args)
    configs = {
        name: replace(
            base,
            target=name,
            label=f"compare:{name}",
            quickack=(name in quick) if args.quickack_targets else base.quickack,
            server_pid=base.server_pid if parse_target(name).address is not None else None,
        )
        for name in targets
    }
    series = [
        sweep.Series(
            config,
            SeriesWriter(
                out / compare_report.dirname(name), config.parameters(), name, [*args.argv, f"# target {name}"]
            ),
        )
        for name, config in configs.items()
    ]
    # Interleaved at each client count (A B C, A B C with --repeat): drift hits every target alike.
    plan = sweep.Plan(interleave=True, keep_going=True, quiet=args.quiet, prefix=True, repeat=args.repeat)
    writers = sweep.run_series(series, args.clients, plan)
    meta: CompareMeta = {
        "targets": targets,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": list(args.argv),
        "clients": list(args.clients),
        "parameters": _parameters(args, base, senders),
        "quickack": args.quickack,
        "flood_plan": flood,
        "environment": environment(),
        "repeat": args.repeat,
        "quickack_targets": [t for t in targets if configs[t].quickack],
        "server_cpus": list(base.server_cpus) if base.server_cpus else None,
        "harness_cpus": list(base.harness_cpus) if base.harness_cpus else None,
    }
    print(f"comparison: {compare_report.write_report(out, meta)}", file=sys.stderr)
    return 0 if all(w.all_ok for w in writers) else 1
