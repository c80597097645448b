"""The report's Environment table: the machine, the runs' settings, the
quiet-room wait and the servers' effective options."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bench.report import fmt

if TYPE_CHECKING:  # the series type lives with the sweep report, which imports this module
    from bench.report.sweep import SeriesData


def environment_rows(series: Sequence[SeriesData]) -> list[tuple[str, str]]:
    runs = [r for s in series for r in s.runs]
    if not runs:
        return []
    env = runs[0]["environment"]
    p = runs[0]["parameters"]
    rows: list[tuple[str, str]] = []
    mem = env.get("memory_bytes")
    rows.append(("CPU", f"{env.get('cpu_model') or 'unknown'} x {env.get('cpu_count')}"))
    rows.append(("memory", "-" if mem is None else f"{mem / 2**30:.1f} GiB"))
    rows.append(("Python", f"{env.get('python_implementation')} {env.get('python')}"))
    rows.append(("platform", str(env.get("platform"))))
    commits = sorted({(r["environment"].get("git_commit") or "unknown")[:12] for r in runs})
    dirty = any(r["environment"].get("git_dirty") for r in runs)
    rows.append(("git commit", ", ".join(commits) + (" (with uncommitted changes)" if dirty else "")))
    started = sorted(r.get("started_at") or "" for r in runs)
    rows.append(("runs started", f"{started[0]} .. {started[-1]} ({fmt.plural(len(runs), 'run')})"))
    loads = [load[0] for r in runs if (load := r["environment"]["load_average"])]
    if loads:
        rows.append(
            (
                "load average (1 min, at the end of each run)",
                f"{min(loads):.2f} .. {max(loads):.2f} on {env.get('cpu_count')} CPUs "
                "(includes the server and the load generator themselves; other load on the machine adds to it)",
            )
        )
    targets = sorted({str(r["parameters"]["target"]) for r in runs})
    rows.append(("target", ", ".join(targets)))
    rates = sorted({r["parameters"]["rate"] for r in runs})
    rows.append(("offered rate", ", ".join(f"{x:g} msg/s" if x else "burst" for x in rates) + " over all senders"))
    senders = sorted({r["parameters"]["senders"] for r in runs})
    rows.append(
        (
            "senders",
            ", ".join(map(str, senders))
            + (" (among the clients; a message goes to every other client)" if p.get("senders_receive") else ""),
        )
    )
    rows.append(
        (
            "measured traffic",
            f"{p['duration_s']:g} s after {p['warmup_s']:g} s warm-up; payload {p['payload_bytes']} bytes; "
            f"drain timeout {p['drain_timeout_s']:g} s",
        )
    )
    rows.append(
        (
            "load generator",
            f"{fmt.plural(p['workers'], 'worker process', 'worker processes')} (raw sockets, one selectors loop each)",
        )
    )
    commands = []
    for s in series:
        cmd = s.index.get("command")
        if cmd:
            commands.append(" ".join(cmd))
    if commands:
        rows.append(("command", " ; ".join(sorted(set(commands)))))
    return rows


#: Server settings that say where and how it was run, not how it treats load.
HIDDEN_OPTIONS = frozenset({"host", "port", "log_level"})


def server_rows(series: Sequence[SeriesData]) -> list[tuple[str, str]]:
    """How quiet the room was when traffic began, and the settings each
    series' server said it ran with (its ``options:`` start-up line)."""
    rows: list[tuple[str, str]] = []
    waits = [w for s in series for r in s.runs if (w := r["timing"].get("settle_s")) is not None]
    if waits:
        rows.append(
            (
                "quiet room",
                "traffic began once no client had received anything for 0.3 s (the join notices delivered): "
                f"waited {min(waits):.2f} .. {max(waits):.2f} s after registration",
            )
        )
    for s in series:
        options = next((o for r in s.runs if (o := r["target"].get("effective_options"))), None)
        if options:
            shown = ", ".join(f"{k}={v}" for k, v in options.items() if k not in HIDDEN_OPTIONS)
            rows.append((f"server options ({s.label})", shown))
    return rows
