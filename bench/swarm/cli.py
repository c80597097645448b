"""The swarm's output helpers and its command line (``python -m bench.swarm``)."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from bench import results, wire
from bench.swarm import DEFAULT_SENDERS, SwarmConfig, SwarmError, run_swarm
from bench.swarm.worker import RX_CLOCKS
from bench.targets import TargetError, make_target
from server.config import FANOUT_STRATEGIES

# ---------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------


def _ms(us: int | float | None) -> str:
    return "-" if us is None else f"{us / 1000:.2f}ms"


def summary_line(doc: dict[str, Any]) -> str:
    """One human line per run."""
    p = doc["parameters"]
    lat = doc["latency_us"]
    d = doc["deliveries"]
    i = doc["integrity"]
    server = (doc["resources"].get("server") or {}).get("summary", {})
    ratio = d["delivered_ratio"]
    rate = f"{p['rate']:g}/s" if p["rate"] else "burst"
    parts = [
        f"clients={p['clients']} senders={p['senders']} rate={rate} msgs={p['measured_messages']}",
        f"delivered {d['delivered']}/{d['expected']} ({100 * ratio:.2f}%)" if ratio is not None else "no deliveries",
        f"{d['per_s'] or 0:,.0f} deliveries/s",
        f"p50 {_ms(lat['p50_us'])} p90 {_ms(lat['p90_us'])} p99 {_ms(lat['p99_us'])} "
        f"p99.9 {_ms(lat['p99_9_us'])} max {_ms(lat['max_us'])}",
        f"lost {i['lost']} dup {i['duplicated']} reord {i['reordered']} corrupt {i['corrupted']}",
    ]
    if server.get("cpu_percent_window") is not None:
        parts.append(f"server CPU {server['cpu_percent_window']:.0f}%")
    if server.get("rss_max_bytes") is not None:
        parts.append(f"server RSS {server['rss_max_bytes'] / 2**20:.0f}MiB threads {server['threads_max']}")
    harness = doc["resources"].get("harness_cpu_percent_window")
    if harness is not None:
        parts.append(f"harness CPU {harness:.0f}%")
    rx_lag = doc.get("receive_lag_us")
    if rx_lag:
        parts.append(f"harness read lag p99 {_ms(rx_lag['p99_us'])}")
    if doc["connections"]["failed"]:
        parts.append(f"FAILED CONNECTIONS {doc['connections']['failed']}")
    if doc["load_generator_saturated"]:
        parts.append("LOAD GENERATOR SATURATED")
    return " | ".join(parts)


def _index_entry(doc: dict[str, Any], file: str) -> dict[str, Any]:
    lat = doc["latency_us"]
    return {
        "clients": doc["parameters"]["clients"],
        "file": file,
        "status": "ok",
        "summary": {
            "p50_us": lat["p50_us"],
            "p90_us": lat["p90_us"],
            "p99_us": lat["p99_us"],
            "p99_9_us": lat["p99_9_us"],
            "max_us": lat["max_us"],
            "deliveries_per_s": doc["deliveries"]["per_s"],
            "delivered_ratio": doc["deliveries"]["delivered_ratio"],
            "faults": doc["integrity"]["faults"],
            "failed_connections": doc["connections"]["failed"],
            "server_cpu_percent": ((doc["resources"].get("server") or {}).get("summary") or {}).get(
                "cpu_percent_window"
            ),
            "harness_cpu_percent": doc["resources"].get("harness_cpu_percent_window"),
            "load_generator_saturated": doc["load_generator_saturated"],
        },
    }


def default_out_dir(root: str | os.PathLike[str] = "reports/runs") -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / stamp
    path, n = base, 1
    while path.exists():
        n += 1
        path = Path(f"{base}-{n}")
    return path


def run_sweep(
    config: SwarmConfig,
    clients: Sequence[int],
    out_dir: str | os.PathLike[str],
    *,
    echo: TextIO | None = None,
    command: Sequence[str] | None = None,
) -> dict[str, Any]:
    """One run per client count (each against a fresh embedded server), one
    JSON file per run plus ``index.json`` in ``out_dir``; returns the index.
    A point that fails is recorded in the index with its error, and the
    sweep goes on."""
    out = Path(out_dir)
    index: dict[str, Any] = {
        "schema_version": results.SCHEMA_VERSION,
        "kind": results.INDEX_KIND,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": list(command) if command is not None else None,
        "sweep": {"variable": "clients", "values": list(clients)},
        "parameters": {k: v for k, v in config.parameters().items() if k != "clients"},
        "runs": [],
    }
    for n in clients:
        senders = config.senders
        if senders is not None and not config.dedicated_senders:
            senders = min(senders, n)
        file = f"run-c{n:05d}.json"
        try:
            point = replace(config, clients=n, senders=senders)
            doc = run_swarm(point)
        except (SwarmError, ValueError) as exc:
            index["runs"].append({"clients": n, "file": None, "status": "error", "error": str(exc)})
            if echo is not None:
                print(f"clients={n}: ERROR {exc}", file=echo, flush=True)
        else:
            results.write_json(out / file, doc)
            index["runs"].append(_index_entry(doc, file))
            if echo is not None:
                print(summary_line(doc), file=echo, flush=True)
        results.write_json(out / results.INDEX_NAME, index)
    return index


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------


def _client_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or a comma-separated list, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("client counts must be positive")
    return values


def build_parser() -> argparse.ArgumentParser:
    d = SwarmConfig()
    p = argparse.ArgumentParser(
        prog="python -m bench.swarm",
        description=(
            "Measure broadcast fan-out: open N chat clients, send probes at a fixed total rate (open loop, "
            "latency from the intended send time), and record every delivery's latency and integrity. "
            "Writes one JSON per run plus index.json under --out."
        ),
        epilog=(
            "Roles: the first S of the N clients also send; our server does not echo a message to its sender, "
            "so each message is expected at N-1 receivers (N with --dedicated-senders, where the senders are "
            "S extra connections). Stalled clients register and never read; they are closed once the last "
            "message is due. Examples: `python -m bench.swarm --clients 100 --rate 1000 --duration 5`; "
            "`python -m bench.swarm --clients 10,100,500,1000 --rate 100`; "
            "`python -m bench.swarm --rate 0 --messages 200 --clients 20 --fanout direct --stalled-clients 1`."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("target")
    g.add_argument(
        "--target",
        default=d.target,
        help="'embedded' (start `python -m server` on a free loopback port), 'ngircd' or 'miniircd' (start "
        "that IRC server on a free loopback port; `make peers` installs them) or HOST:PORT of a running "
        "server (loopback addresses only)",
    )
    g.add_argument(
        "--protocol",
        choices=list(wire.PROTOCOLS),
        help="HOST:PORT target: what it speaks (default chat; ngircd/miniircd always speak irc)",
    )
    g.add_argument("--fanout", choices=FANOUT_STRATEGIES, help="embedded server: fan-out strategy")
    g.add_argument("--send-queue-bytes", type=int, help="embedded server: per-client send queue limit")
    g.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="embedded server: one more option passed verbatim (repeatable), e.g. --server-arg=--max-clients=20000",
    )
    g.add_argument("--server-pid", type=int, help="HOST:PORT target: the server's pid, to sample its CPU/RSS/threads")

    g = p.add_argument_group("clients")
    g.add_argument(
        "--clients",
        type=_client_list,
        default=[d.clients],
        help="receiving clients; a comma-separated list runs a sweep (one run per value)",
    )
    g.add_argument("--senders", type=int, help=f"sending clients (default: min(clients, {DEFAULT_SENDERS}))")
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
        action="store_true",
        help="ACK every read at once (TCP_QUICKACK); without it a server that leaves Nagle on (no TCP_NODELAY, "
        "e.g. ngircd, miniircd) waits up to ~40 ms for the harness's delayed ACKs, as it would for most clients",
    )
    g.add_argument(
        "--rx-clock",
        choices=RX_CLOCKS,
        default=d.rx_clock,
        help="where a delivery's latency ends. kernel: when the kernel queued the bytes on the receiving socket "
        "(SO_TIMESTAMPNS; for a read that gathers several segments, the last one's time, so never early), so the "
        "harness's own delay in reading is not counted as server latency and is reported apart (receive lag). "
        "read: right after the harness's recv returned (includes that delay). Either way it starts at the "
        "intended send time",
    )
    g.add_argument(
        "--connect-batch",
        type=int,
        help="registrations in flight at once over all workers (default: 64 per worker; ngircd 8, miniircd 4: "
        "their listen backlogs are tiny)",
    )

    g = p.add_argument_group("traffic")
    g.add_argument("--rate", type=float, default=d.rate, help="total messages/s over all senders; 0 = one burst")
    g.add_argument("--messages", type=int, help="measured messages (default: rate x duration; needed with --rate 0)")
    g.add_argument("--duration", type=float, default=d.duration_s, help="measured seconds of traffic")
    g.add_argument("--warmup", type=float, default=d.warmup_s, help="seconds of unmeasured traffic first")
    g.add_argument("--payload", type=int, default=d.payload_bytes, help="payload bytes per message")
    g.add_argument("--drain-timeout", type=float, default=d.drain_timeout_s, help="seconds to wait for stragglers")
    g.add_argument(
        "--pacing-spin-us",
        type=int,
        default=d.spin_us,
        help="busy-poll when the next send is due within this many us (more precise pacing, more harness CPU)",
    )

    g = p.add_argument_group("output")
    g.add_argument("--out", help="directory for the JSON files (default: reports/runs/<timestamp>)")
    g.add_argument("--label", help="free text stored in the results")
    g.add_argument("--sample-interval", type=float, default=d.sample_interval_s, help="seconds between psutil samples")
    g.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    g.add_argument(
        "--strict", action="store_true", help="exit 3 unless every run delivered 100%% with no integrity faults"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = SwarmConfig(
            clients=max(args.clients),  # each sweep point caps --senders at its client count
            senders=args.senders,
            dedicated_senders=args.dedicated_senders,
            stalled_clients=args.stalled_clients,
            stalled_rcvbuf=args.stalled_rcvbuf,
            rate=args.rate,
            messages=args.messages,
            duration_s=args.duration,
            warmup_s=args.warmup if args.rate > 0 else 0.0,
            payload_bytes=args.payload,
            workers=args.workers,
            ramp_per_s=args.ramp,
            connect_timeout_s=args.connect_timeout,
            drain_timeout_s=args.drain_timeout,
            sample_interval_s=args.sample_interval,
            spin_us=args.pacing_spin_us,
            target=args.target,
            protocol=args.protocol,
            connect_batch=args.connect_batch,
            quickack=args.quickack,
            rx_clock=args.rx_clock,
            fanout=args.fanout,
            send_queue_bytes=args.send_queue_bytes,
            server_args=tuple(args.server_arg),
            server_pid=args.server_pid,
            progress=not args.quiet,
            label=args.label,
        )
        make_target(config.target, config.all_server_args, config.server_pid, config.protocol)  # validate early
    except (ValueError, TargetError) as exc:
        parser.error(str(exc))
    out = Path(args.out) if args.out else default_out_dir()
    command = ["python", "-m", "bench.swarm", *(sys.argv[1:] if argv is None else argv)]
    index = run_sweep(config, args.clients, out, echo=sys.stdout, command=command)
    print(f"results: {out / results.INDEX_NAME}", file=sys.stderr)
    if any(r["status"] != "ok" for r in index["runs"]):
        return 1
    if args.strict:
        for r in index["runs"]:
            s = r["summary"]
            if s["delivered_ratio"] != 1 or s["faults"] or s["failed_connections"]:
                return 3
    return 0
